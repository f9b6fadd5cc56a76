"""Request ids and log formats (logs.py): the ids on every record, text and JSON lines,
the id of a request straight to the app, and the id sent with the task."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from pydantic import ValidationError

from iris_service import group_commit, logs
from iris_service.config import GunicornSettings, Settings

from support.samples import SETOSA

ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00")
JSON_FIELDS = {"timestamp", "level", "logger", "message", "request_id", "task_id"}


def _logger(
    capsys: pytest.CaptureFixture[str], log_format: logs.LogFormat
) -> tuple[logging.Logger, Any]:
    """A private logger configured as configure() configures the root one."""
    root = logging.Logger(f"test-{log_format}")
    logs.configure("INFO", log_format, root=root)

    def lines() -> list[str]:
        return capsys.readouterr().out.splitlines()

    return root, lines


def _record(**extra: Any) -> logging.LogRecord:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello %s", ("there",), None)
    record.__dict__.update(extra)
    return record


def test_the_filter_puts_the_bound_ids_on_every_record() -> None:
    keep = logs.ContextFilter()
    outside = _record()
    assert keep.filter(outside)
    assert (outside.request_id, outside.task_id) == (None, None)
    token = logs.bind("req-1", "task-1")
    try:
        inside = _record()
        keep.filter(inside)
        assert (inside.request_id, inside.task_id) == ("req-1", "task-1")
        # An id the caller gives in extra wins.
        given = _record(task_id="task-2")
        keep.filter(given)
        assert (given.request_id, given.task_id) == ("req-1", "task-2")
    finally:
        logs.unbind(token)
    after = _record()
    keep.filter(after)
    assert (after.request_id, after.task_id) == (None, None)


def test_celerys_received_line_gets_the_task_id_from_its_data() -> None:
    # Logged by the worker's main process, outside any task.
    record = _record(data={"id": "3f0c", "name": "iris.predict"})
    logs.ContextFilter().filter(record)
    assert record.task_id == "3f0c"


def test_json_lines_parse_with_every_field(capsys: pytest.CaptureFixture[str]) -> None:
    log, lines = _logger(capsys, "json")
    log.info("outside")
    token = logs.bind("req-7")
    try:
        log.warning("queued %s", "it", extra={"task_id": "task-7"})
        try:
            raise ValueError("boom\nsecond line")
        except ValueError:
            log.exception("failed")
    finally:
        logs.unbind(token)
    out = lines()
    assert len(out) == 3  # a traceback stays inside its one line
    objects = [json.loads(line) for line in out]
    for obj in objects:
        assert set(obj) >= JSON_FIELDS
        assert ISO_UTC.fullmatch(obj["timestamp"]), obj["timestamp"]
        assert obj["logger"] == log.name
    assert (objects[0]["request_id"], objects[0]["task_id"]) == (None, None)
    assert objects[1] == {
        **objects[1],
        "level": "WARNING",
        "message": "queued it",
        "request_id": "req-7",
        "task_id": "task-7",
    }
    assert "ValueError: boom" in objects[2]["exc_info"]


def test_text_lines_stay_readable_with_the_ids(capsys: pytest.CaptureFixture[str]) -> None:
    log, lines = _logger(capsys, "text")
    log.info("outside")
    token = logs.bind("req-8", "task-8")
    try:
        log.info("inside")
    finally:
        logs.unbind(token)
    outside, inside = lines()
    assert re.fullmatch(rf"\S+ \S+ INFO {log.name}: outside", outside), outside
    assert inside.endswith(f"INFO {log.name} [request_id=req-8 task_id=task-8]: inside"), inside


def test_configure_twice_keeps_one_handler(capsys: pytest.CaptureFixture[str]) -> None:
    log, lines = _logger(capsys, "text")
    logs.configure("INFO", "json", root=log)
    log.info("once")
    (line,) = lines()
    assert json.loads(line)["message"] == "once"


def test_gunicorns_log_config_sends_its_lines_through_ours() -> None:
    # What gunicorn does with logconfig_dict in JSON mode (gunicorn_conf.py), in
    # a process of its own: it replaces the root logger's handlers.
    program = (
        "import logging, logging.config\n"
        "from iris_service import logs\n"
        "logging.config.dictConfig(logs.gunicorn_logconfig('INFO', 'json'))\n"
        "logging.getLogger('gunicorn.error').info('Booting worker with pid: 1')\n"
        "logging.getLogger('gunicorn.access').info('GET / 200')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=True
    )
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(obj["logger"], obj["message"]) for obj in lines] == [
        ("gunicorn.error", "Booting worker with pid: 1"),
        ("gunicorn.access", "GET / 200"),
    ]
    assert result.stderr == ""


@pytest.mark.parametrize("value", ["abc", "A.b_c-9", "0" * 128, "d2f1c3a48e5b4a0f9d8c7b6a5f4e3d2c"])
def test_well_formed_ids(value: str) -> None:
    assert logs.well_formed(value)


@pytest.mark.parametrize("value", ["", "a b", "a\nb", "0" * 129, "a,b", "é", "<x>", None])
def test_malformed_ids(value: str | None) -> None:
    assert not logs.well_formed(value)


def test_a_direct_request_without_an_id_gets_one(client: FlaskClient) -> None:
    first = client.get("/flask/tasks").headers.get(logs.REQUEST_ID_HEADER)
    second = client.get("/flask/nowhere").headers.get(logs.REQUEST_ID_HEADER)
    assert first and re.fullmatch(r"[0-9a-f]{32}", first)
    assert second and re.fullmatch(r"[0-9a-f]{32}", second)
    assert first != second


def test_a_direct_request_keeps_a_well_formed_id(client: FlaskClient) -> None:
    r = client.get("/flask/tasks", headers={logs.REQUEST_ID_HEADER: "client-id.1"})
    assert r.headers[logs.REQUEST_ID_HEADER] == "client-id.1"


def test_a_direct_request_with_a_malformed_id_gets_a_new_one(client: FlaskClient) -> None:
    r = client.get("/flask/tasks", headers={logs.REQUEST_ID_HEADER: "two words"})
    assert re.fullmatch(r"[0-9a-f]{32}", r.headers[logs.REQUEST_ID_HEADER])


def test_the_id_is_unbound_after_the_request(client: FlaskClient) -> None:
    client.get("/flask/tasks", headers={logs.REQUEST_ID_HEADER: "gone-after"})
    assert logs.current() == logs.Ids()


def test_a_submit_sends_the_id_with_the_task_and_logs_both(
    app: Flask,
    client: FlaskClient,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    sent: list[group_commit.Job] = []

    def publish(jobs: Sequence[group_commit.Job]) -> list[None]:
        sent.extend(jobs)
        return [None for _ in jobs]

    monkeypatch.setattr(app.extensions["iris_committer"], "publish", publish)
    caplog.handler.addFilter(logs.ContextFilter())
    caplog.set_level(logging.INFO, logger="iris_service.views")
    r = client.post("/flask/predict", json=SETOSA, headers={logs.REQUEST_ID_HEADER: "submit-1"})
    assert r.status_code == 202, r.get_json()
    task_id = r.get_json()["task_id"]
    (job,) = sent
    assert (job.task_id, job.request_id) == (task_id, "submit-1")
    queued = [
        (rec.request_id, rec.task_id)
        for rec in caplog.records
        if rec.name == "iris_service.views" and rec.getMessage() == "job queued"
    ]
    assert queued == [("submit-1", task_id)]


def test_log_format_is_read_by_the_app_and_gunicorn(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOG_FORMAT", "json")
    assert GunicornSettings().log_format == "json"
    assert Settings().log_format == "json"
    monkeypatch.setenv("LOG_FORMAT", "yaml")
    with pytest.raises(ValidationError, match="LOG_FORMAT"):
        GunicornSettings()
    monkeypatch.delenv("LOG_FORMAT")
    assert GunicornSettings().log_format == "text"
