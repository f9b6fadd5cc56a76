"""Cancel and retry of jobs (POST /flask/tasks/<id>/cancel and /retry), the REVOKED
state and its rules in the store, the result backend and the task, and the
migration of an older database, on a real SQLite file without a broker.

The app fixture's broker is a closed port: a retry that really publishes gets
503 here (the real publish is covered by stack/test_job_control_stack.py), so
the tests of a retry's routing replace ``send_task`` alone.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from celery.exceptions import Ignore
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import inspect, update

from iris_service import create_app, group_commit, reports, store, tasks
from iris_service.openapi import openapi_document
from iris_service.status_body import encode, status_body
from iris_service.store import JOBS, TASKMETA, StatusStore, init_schema

from support.models import register_forest, registry_of
from support.samples import SETOSA, VIRGINICA
from support.settings import make_settings
from support.tasks import FakeTask


def store_of(app: Flask) -> StatusStore:
    found: StatusStore = app.extensions["iris_store"]
    return found


def pending(app: Flask, values: dict[str, float] = SETOSA) -> str:
    task_id = str(uuid.uuid4())
    store_of(app).create_pending(task_id, values)
    return task_id


def set_state(app: Flask, task_id: str, state: str) -> None:
    with store_of(app).engine.begin() as conn:
        conn.execute(update(TASKMETA).where(TASKMETA.c.task_id == task_id).values(status=state))


def status_file(app: Flask, task_id: str) -> Path:
    return app.extensions["iris_settings"].reports_dir / "status" / f"{task_id}.json"


def cancel(client: FlaskClient, task_id: str, **kwargs: Any) -> Any:
    return client.post(f"/flask/tasks/{task_id}/cancel", **kwargs)


# ---------------------------------------------------------------- cancel


def test_cancel_of_a_queued_job_revokes_it(app: Flask, client: FlaskClient) -> None:
    task_id = pending(app)
    r = cancel(client, task_id, json={"by": "operator on call"})
    assert r.status_code == 202, r.get_data(as_text=True)
    body = r.get_json()
    assert body["state"] == "REVOKED"
    assert body["stage"] == "cancelled" and body["progress"] == 1.0
    assert body["cancelled"]["by"] == "operator on call"
    assert body["cancelled"]["at"] == body["finished_at"] is not None
    assert body["result"] is None and body["error"] is None and body["retry_of"] is None
    # The answer is the status, the same bytes polls get from the app and from nginx's copy.
    polled = client.get(f"/flask/status/{task_id}")
    assert polled.data == r.data
    assert status_file(app, task_id).read_bytes() == r.data


@pytest.mark.parametrize(
    ("kwargs", "by"),
    [
        ({}, "api"),
        (
            {"headers": {"X-Request-ID": "7f3c9a0e5b2d4c1f8e6a9b0c3d2e1f40"}},
            "7f3c9a0e5b2d4c1f8e6a9b0c3d2e1f40",
        ),
        # A request id that is no fit "by" is not recorded.
        ({"headers": {"X-Request-ID": "x" * 65}}, "api"),
        ({"json": {}}, "api"),
        ({"json": {"by": "ui"}, "headers": {"X-Request-ID": "abc"}}, "ui"),
    ],
)
def test_who_cancelled(app: Flask, client: FlaskClient, kwargs: dict[str, Any], by: str) -> None:
    r = cancel(client, pending(app), **kwargs)
    assert r.status_code == 202
    assert r.get_json()["cancelled"]["by"] == by


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"json": {"by": ""}}, 400),
        ({"json": {"by": "x" * 65}}, 400),
        ({"json": {"by": "line\nbreak"}}, 400),
        ({"json": {"by": 7}}, 400),
        ({"json": {"who": "me"}}, 400),
        ({"json": ["by"]}, 400),
        ({"data": "{not json", "content_type": "application/json"}, 400),
        ({"data": "by=me", "content_type": "application/x-www-form-urlencoded"}, 415),
    ],
)
def test_bad_cancel_body_is_refused_and_changes_nothing(
    app: Flask, client: FlaskClient, kwargs: dict[str, Any], code: int
) -> None:
    task_id = pending(app)
    r = cancel(client, task_id, **kwargs)
    assert r.status_code == code, r.get_data(as_text=True)
    assert r.is_json and r.get_json()["error"]
    assert client.get(f"/flask/status/{task_id}").get_json()["state"] == "PENDING"


@pytest.mark.parametrize("finished", ["SUCCESS", "FAILURE"])
def test_cancel_of_a_finished_job_is_409(app: Flask, client: FlaskClient, finished: str) -> None:
    task_id = pending(app)
    set_state(app, task_id, finished)
    r = cancel(client, task_id)
    assert r.status_code == 409
    assert r.get_json()["state"] == finished
    body = client.get(f"/flask/status/{task_id}").get_json()
    assert body["state"] == finished and body["cancelled"] is None


def test_second_cancel_is_409_and_keeps_the_first(app: Flask, client: FlaskClient) -> None:
    task_id = pending(app)
    first = cancel(client, task_id, json={"by": "first"}).get_json()
    r = cancel(client, task_id, json={"by": "second"})
    assert r.status_code == 409
    assert r.get_json()["state"] == "REVOKED"
    assert client.get(f"/flask/status/{task_id}").get_json()["cancelled"] == first["cancelled"]


def test_cancel_of_unknown_or_malformed_id(client: FlaskClient) -> None:
    assert cancel(client, str(uuid.uuid4())).status_code == 404
    r = cancel(client, "not-a-uuid")
    assert r.status_code == 400 and r.is_json


def test_cancel_accepts_an_upper_case_id(app: Flask, client: FlaskClient) -> None:
    task_id = pending(app)
    r = cancel(client, task_id.upper())
    assert r.status_code == 202
    assert r.get_json()["task_id"] == task_id


def test_cancel_of_a_running_job_revokes_it_and_removes_its_pdf(
    app: Flask, client: FlaskClient
) -> None:
    """A run that passed its last check before the cancel wrote its PDF and can no
    longer record SUCCESS: the cancel removes that PDF."""
    task_id = pending(app)
    assert store_of(app).begin_attempt(task_id) is not None
    pdf = reports.path(app.extensions["iris_settings"].reports_dir, task_id)
    pdf.write_bytes(b"%PDF-1.7 a report written just before the cancel")
    r = cancel(client, task_id)
    assert r.status_code == 202
    assert r.get_json()["state"] == "REVOKED"
    assert not pdf.exists()


def test_listing_filters_revoked(app: Flask, client: FlaskClient) -> None:
    kept, cancelled = pending(app), pending(app)
    assert cancel(client, cancelled).status_code == 202
    listed = client.get("/flask/tasks?state=REVOKED")
    assert listed.status_code == 200
    assert [t["task_id"] for t in listed.get_json()["tasks"]] == [cancelled]
    assert kept in [t["task_id"] for t in client.get("/flask/tasks").get_json()["tasks"]]


# ---------------------------------------------------------------- what a cancel survives


def test_backend_writes_after_revoked_keep_it(app: Flask, client: FlaskClient) -> None:
    """A worker that held the job when it was cancelled writes PROGRESS, SUCCESS or
    FAILURE; Celery writes REVOKED when a worker drops a revoked message. None of
    them changes the cancel."""
    backend = app.extensions["celery"].backend
    task_id = pending(app)
    cancelled = cancel(client, task_id, json={"by": "me"}).data
    backend.store_result(task_id, {"stage": "writing report", "progress": 0.6}, "PROGRESS")
    backend.store_result(task_id, {"label": "setosa"}, "SUCCESS")
    backend.mark_as_failure(task_id, RuntimeError("late failure"))
    backend.mark_as_revoked(task_id, "revoked")
    assert client.get(f"/flask/status/{task_id}").data == cancelled
    assert status_file(app, task_id).read_bytes() == cancelled


def test_celery_revoke_of_a_queued_job_is_shown(app: Flask, client: FlaskClient) -> None:
    """A revoke from outside the API (celery control, Flower): REVOKED, by "celery"."""
    task_id = pending(app)
    app.extensions["celery"].backend.mark_as_revoked(task_id, "revoked")
    body = client.get(f"/flask/status/{task_id}").get_json()
    assert body["state"] == "REVOKED" and body["stage"] == "cancelled"
    assert body["cancelled"] == {"at": body["finished_at"], "by": "celery"}
    assert body["error"] is None


def test_celery_revoke_never_replaces_a_finished_state(app: Flask) -> None:
    backend = app.extensions["celery"].backend
    task_id = pending(app)
    backend.mark_as_failure(task_id, RuntimeError("it failed"))
    backend.mark_as_revoked(task_id, "revoked")
    job = store_of(app).get(task_id)
    assert job is not None and job.state == "FAILURE"


def test_a_redelivered_cancelled_job_stays_revoked(app: Flask) -> None:
    task_id = pending(app)
    job, revoked = store_of(app).cancel(task_id, "me")
    assert revoked and job is not None
    attempt = store_of(app).begin_attempt(task_id)
    assert attempt is not None and attempt.state == "REVOKED"
    after = store_of(app).get(task_id)
    assert after is not None and after.state == "REVOKED"
    assert after.cancelled_at == job.cancelled_at and after.cancelled_by == "me"


# ---------------------------------------------------------------- the task's safe points


def run_task(app: Flask, task: FakeTask) -> dict[str, Any]:
    with app.app_context():
        return tasks.predict(task, dict(VIRGINICA))  # type: ignore[arg-type]


def pdf_of(app: Flask, task_id: str) -> Path:
    return reports.path(app.extensions["iris_settings"].reports_dir, task_id)


def test_task_succeeds_when_not_cancelled(app: Flask) -> None:
    task_id = pending(app, VIRGINICA)
    result = run_task(app, FakeTask(app, task_id))
    assert result["label"] == "virginica"
    assert pdf_of(app, task_id).is_file()


def test_task_does_not_run_a_cancelled_job(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    task_id = pending(app, VIRGINICA)
    store_of(app).cancel(task_id, "me")
    monkeypatch.setattr(tasks, "write_report", lambda *_: pytest.fail("it ran"))
    with pytest.raises(Ignore):
        run_task(app, FakeTask(app, task_id))
    assert not pdf_of(app, task_id).exists()
    job = store_of(app).get(task_id)
    assert job is not None and job.state == "REVOKED"


def test_task_leaves_no_pdf_when_cancelled_before_its_report(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    task_id = pending(app, VIRGINICA)
    write_report = tasks.write_report

    def get_cancelled_then_write(*args: Any) -> int:
        store_of(app).cancel(task_id, "me")
        return write_report(*args)

    monkeypatch.setattr(tasks, "write_report", get_cancelled_then_write)
    with pytest.raises(Ignore):
        run_task(app, FakeTask(app, task_id))
    assert not pdf_of(app, task_id).exists()
    job = store_of(app).get(task_id)
    assert job is not None and job.state == "REVOKED"


def test_task_removes_its_pdf_when_cancelled_while_writing_it(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    task_id = pending(app, VIRGINICA)
    write_report = tasks.write_report

    def write_then_get_cancelled(*args: Any) -> int:
        size = write_report(*args)
        assert pdf_of(app, task_id).is_file()
        store_of(app).cancel(task_id, "me")
        return size

    monkeypatch.setattr(tasks, "write_report", write_then_get_cancelled)
    with pytest.raises(Ignore):
        run_task(app, FakeTask(app, task_id))
    assert not pdf_of(app, task_id).exists()


# ---------------------------------------------------------------- retry


@pytest.fixture
def published(monkeypatch: pytest.MonkeyPatch, app: Flask) -> list[group_commit.Job]:
    """Replace the publish alone (the fixture's broker is a closed port); record each."""
    sent: list[group_commit.Job] = []

    def publish(jobs: Sequence[group_commit.Job]) -> list[None]:
        sent.extend(jobs)
        return [None for _ in jobs]

    monkeypatch.setattr(app.extensions["iris_committer"], "publish", publish)
    return sent


@pytest.mark.parametrize("retryable", ["FAILURE", "REVOKED"])
def test_retry_submits_the_same_measurements_as_a_new_job(
    app: Flask, client: FlaskClient, published: list[group_commit.Job], retryable: str
) -> None:
    original = pending(app, VIRGINICA)
    set_state(app, original, retryable)
    r = client.post(f"/flask/tasks/{original}/retry")
    assert r.status_code == 202, r.get_data(as_text=True)
    body = r.get_json()
    new_id = body["task_id"]
    assert new_id != original
    assert body["state"] == "PENDING"
    assert r.headers["Location"] == body["status_url"] == f"/flask/status/{new_id}"
    assert body["report_url"] == f"/flask/result/{new_id}.pdf"
    # The request's id travels with the job (logs.py), checked elsewhere.
    # A job recorded without a model version (before issue 16) is retried with the default.
    version = {"model_version": registry_of(app).default_version()}
    assert [(job.task_id, job.values, job.retry_of, job.model_version) for job in published] == [
        (new_id, VIRGINICA, original, version["model_version"])
    ]
    status = client.get(f"/flask/status/{new_id}").get_json()
    assert status["retry_of"] == original and status["state"] == "PENDING"
    assert store_of(app).inputs_of(new_id) == VIRGINICA | version
    # The original is untouched.
    assert client.get(f"/flask/status/{original}").get_json()["state"] == retryable


@pytest.mark.parametrize("named", [False, True], ids=["default-at-submit", "named"])
def test_retry_predicts_with_the_original_jobs_model(
    app: Flask, client: FlaskClient, published: list[group_commit.Job], named: bool
) -> None:
    """Not with the default of the time of the retry (issue 16): a retry is the same job."""
    registry = registry_of(app)
    first_default, forest = registry.default_version(), register_forest(app)
    original_version = forest if named else first_default
    body = VIRGINICA | ({"model_version": forest} if named else {})
    original = client.post("/flask/predict", json=body).get_json()["task_id"]
    # Another model becomes the default before the retry.
    registry.promote(first_default if named else forest)
    assert registry.default_version() != original_version
    set_state(app, original, "FAILURE")

    r = client.post(f"/flask/tasks/{original}/retry")
    assert r.status_code == 202, r.get_data(as_text=True)
    assert r.get_json()["model_version"] == original_version
    assert [job.model_version for job in published] == [original_version] * 2
    assert store_of(app).inputs_of(r.get_json()["task_id"]) == VIRGINICA | {
        "model_version": original_version
    }


@pytest.mark.parametrize("state", ["PENDING", "STARTED", "PROGRESS", "SUCCESS"])
def test_retry_of_other_states_is_409(
    app: Flask, client: FlaskClient, published: list[group_commit.Job], state: str
) -> None:
    task_id = pending(app)
    set_state(app, task_id, state)
    r = client.post(f"/flask/tasks/{task_id}/retry")
    assert r.status_code == 409
    assert r.get_json()["state"] == state
    assert published == []


def test_retry_of_unknown_or_malformed_id(client: FlaskClient) -> None:
    assert client.post(f"/flask/tasks/{uuid.uuid4()}/retry").status_code == 404
    assert client.post("/flask/tasks/nope/retry").status_code == 400


def test_retry_with_the_broker_down_is_503_and_leaves_no_job(
    app: Flask, client: FlaskClient
) -> None:
    original = pending(app)
    set_state(app, original, "FAILURE")
    r = client.post(f"/flask/tasks/{original}/retry")
    assert r.status_code == 503
    assert int(r.headers["Retry-After"]) > 0
    jobs, _ = store_of(app).list(limit=10)
    assert [job.task_id for job in jobs] == [original]


def test_the_routes_and_the_new_state_are_described(app: Flask) -> None:
    doc = openapi_document()
    assert "/flask/tasks/{task_id}/cancel" in doc["paths"]
    assert "/flask/tasks/{task_id}/retry" in doc["paths"]
    status = doc["components"]["schemas"]["Status"]
    assert "REVOKED" in status["properties"]["state"]["enum"]
    assert {"retry_of", "cancelled"} <= set(status["required"])
    task_id = pending(app)
    body = status_body(store_of(app).cancel(task_id, "me")[0])  # type: ignore[arg-type]
    assert set(body) <= set(status["properties"])
    assert encode(body) == app.test_client().get(f"/flask/status/{task_id}").data


# ---------------------------------------------------------------- migration

# iris_jobs as the first release created it, before retry_of and the cancel columns.
OLD_JOBS_TABLE = """
CREATE TABLE iris_jobs (
    id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    task_id VARCHAR(36) NOT NULL UNIQUE,
    submitted_at DATETIME NOT NULL,
    inputs TEXT NOT NULL,
    attempts INTEGER NOT NULL
)
"""


def test_an_older_database_gets_the_new_columns(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    path = tmp_path / "results.sqlite"
    old_id = str(uuid.uuid4())
    with sqlite3.connect(path) as conn:
        conn.execute(OLD_JOBS_TABLE)
        conn.execute(
            "INSERT INTO iris_jobs (task_id, submitted_at, inputs, attempts) VALUES (?, ?, ?, 0)",
            (old_id, "2026-11-21 12:00:00.000000", json.dumps(SETOSA)),
        )
    conn.close()
    app = create_app({"TESTING": True}, settings=settings)
    columns = {c["name"] for c in inspect(store_of(app).engine).get_columns("iris_jobs")}
    assert {"retry_of", "cancelled_at", "cancelled_by"} <= columns
    old = store_of(app).get(old_id)
    assert old is not None and old.retry_of is None and old.cancelled_at is None
    # Jobs of the old release can be cancelled and retried like new ones.
    assert app.test_client().post(f"/flask/tasks/{old_id}/cancel").status_code == 202
    # Again, as every process does at start: nothing to add, no error.
    init_schema(store_of(app).engine)


def test_a_column_added_by_another_process_first_is_no_error(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two processes migrating at once: both see the column missing, one adds it,
    the other's ALTER TABLE fails with "duplicate column" and must go on."""
    engine = store_of(app).engine
    current = inspect(engine).get_columns(JOBS.name)
    stale = [c for c in current if c["name"] not in ("retry_of", "cancelled_at", "cancelled_by")]

    class StaleInspector:
        def get_columns(self, table: str) -> list[Any]:
            assert table == JOBS.name
            return stale

    monkeypatch.setattr(store, "inspect", lambda _engine: StaleInspector())
    init_schema(engine)
    columns = [c["name"] for c in inspect(engine).get_columns(JOBS.name)]
    assert columns.count("retry_of") == 1
