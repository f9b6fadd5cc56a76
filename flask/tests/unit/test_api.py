"""Reads of the API against a real SQLite store, without a broker."""

from __future__ import annotations

import errno
import json
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from iris_service import create_app
from iris_service.retention import sweep_status_files
from iris_service.status_files import StatusFiles
from iris_service.store import JobStatus, NoListener, StatusStore, utcnow

from support.samples import SETOSA
from support.settings import make_settings


def store_of(app: Flask) -> StatusStore:
    store: StatusStore = app.extensions["iris_store"]
    return store


def test_status_of_pending_job(app: Flask, client: FlaskClient) -> None:
    task_id = str(uuid.uuid4())
    store_of(app).create_pending(task_id, SETOSA)
    body = client.get(f"/flask/status/{task_id}").get_json()
    assert body["state"] == "PENDING"
    assert body["progress"] == 0.0
    assert body["stage"] == "queued"
    assert body["result"] is None and body["error"] is None and body["finished_at"] is None
    assert body["submitted_at"].endswith("Z")
    same = client.get(f"/flask/status?task_id={task_id}").get_json()
    assert same == body


@pytest.mark.parametrize(
    "bad",
    [
        "123",
        "not-a-uuid",
        "x" * 300,
        # Spellings uuid.UUID would read, refused: one spelling of an id in URLs and files.
        "{6fa5a799-21e9-49d0-8268-be5827d5315f}",
        "urn:uuid:6fa5a799-21e9-49d0-8268-be5827d5315f",
        "6fa5a79921e949d08268be5827d5315f",
        "6fa5a799-21e9-49d0-8268-be5827d5315f%0A",
        "6fa5a799-21e9-49d0-8268-be5827d5315g",
    ],
)
def test_malformed_id_is_400(client: FlaskClient, bad: str) -> None:
    assert client.get(f"/flask/status/{bad}").status_code == 400
    assert client.get(f"/flask/result/{bad}.pdf").status_code == 400
    assert client.get(f"/flask/status?task_id={bad}").status_code == 400


@pytest.mark.parametrize("spell", [str.upper, lambda s: s[:18].upper() + s[18:]])
def test_upper_case_task_id_finds_the_job(
    app: Flask, client: FlaskClient, spell: Callable[[str], str]
) -> None:
    task_id = str(uuid.uuid4())
    store_of(app).create_pending(task_id, SETOSA)
    canonical = client.get(f"/flask/status/{task_id}")
    for url in (f"/flask/status/{spell(task_id)}", f"/flask/status?task_id={spell(task_id)}"):
        r = client.get(url)
        assert r.status_code == 200, (url, r.get_data()[:200])
        assert r.get_json()["task_id"] == task_id
        assert r.data == canonical.data


def test_upper_case_unknown_id_is_404(client: FlaskClient) -> None:
    r = client.get(f"/flask/status/{str(uuid.uuid4()).upper()}")
    assert r.status_code == 404
    assert r.get_json()["error"] == "no task with this id"


def test_unknown_id_is_404(client: FlaskClient) -> None:
    unknown = str(uuid.uuid4())
    assert client.get(f"/flask/status/{unknown}").status_code == 404
    assert client.get(f"/flask/result/{unknown}.pdf").status_code == 404


def test_status_query_needs_task_id(client: FlaskClient) -> None:
    r = client.get("/flask/status")
    assert r.status_code == 400
    assert "task_id" in r.get_json()["error"]


def test_result_before_done_is_409(app: Flask, client: FlaskClient) -> None:
    task_id = str(uuid.uuid4())
    store_of(app).create_pending(task_id, SETOSA)
    r = client.get(f"/flask/result/{task_id}.pdf")
    assert r.status_code == 409
    assert r.get_json()["state"] == "PENDING"


def test_tasks_pagination_and_filter(app: Flask, client: FlaskClient) -> None:
    ids = [str(uuid.uuid4()) for _ in range(5)]
    for task_id in ids:
        store_of(app).create_pending(task_id, SETOSA)
    first = client.get("/flask/tasks?limit=2").get_json()
    assert [t["task_id"] for t in first["tasks"]] == ids[::-1][:2]
    second = client.get(f"/flask/tasks?limit=2&before={first['next']}").get_json()
    assert [t["task_id"] for t in second["tasks"]] == ids[::-1][2:4]
    third = client.get(f"/flask/tasks?limit=2&before={second['next']}").get_json()
    assert [t["task_id"] for t in third["tasks"]] == ids[:1]
    assert third["next"] is None
    assert len(client.get("/flask/tasks?state=PENDING").get_json()["tasks"]) == 5
    assert client.get("/flask/tasks?state=SUCCESS").get_json()["tasks"] == []


@pytest.mark.parametrize(
    "query", ["limit=0", "limit=101", "limit=abc", "before=x", "state=DONE", "state=pending"]
)
def test_tasks_bad_query_is_400(client: FlaskClient, query: str) -> None:
    r = client.get(f"/flask/tasks?{query}")
    assert r.status_code == 400
    assert r.get_json()["error"]


def test_model_card(client: FlaskClient) -> None:
    card = client.get("/flask/model").get_json()
    assert card["classes"] == ["setosa", "versicolor", "virginica"]
    assert card["feature_names"] == list(SETOSA)
    assert card["cv_accuracy"] >= 0.93
    assert len(card["version"]) == 16
    assert {"scikit-learn", "numpy", "python"} <= set(card["library_versions"])
    assert "parameters" not in card


def test_health_names_the_broker(client: FlaskClient) -> None:
    r = client.get("/flask/health")
    assert r.status_code == 503
    body = r.get_json()
    assert body["database"] == "ok"
    assert body["broker"].startswith("down")
    assert "broker" in body["error"]


def _set_state(app: Flask, task_id: str, state: str, result: str | None = None) -> None:
    with store_of(app).engine.begin() as conn:
        conn.exec_driver_sql(
            "UPDATE celery_taskmeta SET status = ?, result = ?, date_done = datetime('now')"
            " WHERE task_id = ?",
            (state, result, task_id),
        )


def test_status_file_is_the_answer_of_the_app(app: Flask, client: FlaskClient) -> None:
    """The file nginx answers polls from holds the bytes the app answers, at each write."""
    store = store_of(app)
    files = store.listener
    assert isinstance(files, StatusFiles)
    task_id = str(uuid.uuid4())
    store.create_pending(task_id, SETOSA)
    assert files.path(task_id).read_bytes() == client.get(f"/flask/status/{task_id}").data
    assert store.begin_attempt(task_id) is not None
    started = client.get(f"/flask/status/{task_id}")
    assert started.get_json()["state"] == "STARTED"
    assert files.path(task_id).read_bytes() == started.data
    # nginx's workers may be another user: readable by all, writable by us only.
    assert oct(files.path(task_id).stat().st_mode & 0o777) == "0o644"
    assert oct(files.folder.stat().st_mode & 0o777) == "0o755"
    store.discard(task_id)
    assert not files.path(task_id).exists()
    assert client.get(f"/flask/status/{task_id}").status_code == 404


def test_status_body_of_each_state(app: Flask, client: FlaskClient) -> None:
    task_id = str(uuid.uuid4())
    store_of(app).create_pending(task_id, SETOSA)
    result = '{"label": "setosa", "probabilities": {"setosa": 1.0}, "model_version": "v"}'
    _set_state(app, task_id, "SUCCESS", result)
    body = client.get(f"/flask/status/{task_id}").get_json()
    assert body["result"] == {
        "label": "setosa",
        "probabilities": {"setosa": 1.0},
        "model_version": "v",
        "report_url": f"/flask/result/{task_id}.pdf",
    }
    assert body["progress"] == 1.0 and body["stage"] == "done" and body["finished_at"]
    _set_state(app, task_id, "FAILURE", '{"exc_type": "PoisonJobError", "exc_message": ["x"]}')
    body = client.get(f"/flask/status/{task_id}").get_json()
    assert body["error"] == "PoisonJobError: x" and body["stage"] == "failed"


def test_status_files_can_be_turned_off(tmp_path: Path) -> None:
    app = create_app({"TESTING": True}, settings=make_settings(tmp_path, status_files=False))
    assert isinstance(store_of(app).listener, NoListener)
    store_of(app).create_pending(str(uuid.uuid4()), SETOSA)
    assert not (tmp_path / "reports" / "status").exists()


def test_a_failed_status_write_leaves_no_stale_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = StatusFiles(tmp_path / "status")
    files.prepare()
    task_id = str(uuid.uuid4())
    files.published(JobStatus(task_id, "PENDING", utcnow(), None, None, attempts=0, job_id=1))
    assert json.loads(files.path(task_id).read_bytes())["state"] == "PENDING"

    def disk_full(*_: object, **__: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    # The next write fails: the old copy must go, so that nginx asks the app.
    monkeypatch.setattr("iris_service.files.tempfile.mkstemp", disk_full)
    files.published(JobStatus(task_id, "STARTED", utcnow(), None, None, attempts=1, job_id=1))
    assert not files.path(task_id).exists()


def test_old_status_files_are_swept(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, status_dir=tmp_path / "status", status_file_seconds=120)
    files = StatusFiles(tmp_path / "status")
    files.prepare()
    old, fresh = str(uuid.uuid4()), str(uuid.uuid4())
    for task_id in (old, fresh):
        files.published(JobStatus(task_id, "PENDING", utcnow(), None, None, attempts=0, job_id=1))
    stray_tmp = files.folder / f".{old}.abc.tmp"
    stray_tmp.write_bytes(b"{")
    three_minutes_ago = time.time() - 180
    for path in (files.path(old), stray_tmp):
        os.utime(path, (three_minutes_ago, three_minutes_ago))
    assert sweep_status_files(settings) == 2
    assert not files.path(old).exists() and not stray_tmp.exists()
    assert files.path(fresh).is_file()


def test_upper_case_id_downloads_the_report(app: Flask, client: FlaskClient) -> None:
    """The files of a job are named by its stored (lower-case) id, whatever the URL's spelling."""
    task_id = str(uuid.uuid4())
    store_of(app).create_pending(task_id, SETOSA)
    _set_state(app, task_id, "SUCCESS", '{"label": "setosa"}')
    settings = app.extensions["iris_settings"]
    settings.reports_dir.mkdir(parents=True, exist_ok=True)
    (settings.reports_dir / f"{task_id}.pdf").write_bytes(b"%PDF-1.4 test")
    with client.get(f"/flask/result/{task_id.upper()}.pdf") as r:
        assert r.status_code == 200
        assert r.data == b"%PDF-1.4 test"
    behind_nginx = client.get(
        f"/flask/result/{task_id.upper()}.pdf", headers={"X-Sendfile-Type": "X-Accel-Redirect"}
    )
    assert behind_nginx.headers["X-Accel-Redirect"] == f"/_reports/{task_id}.pdf"
