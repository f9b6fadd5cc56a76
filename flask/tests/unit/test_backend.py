"""The result backend's one-statement writes keep Celery's rules, on a real SQLite file."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from flask import Flask

from iris_service.result_backend import COMPLETED_AT, SQLResultBackend
from iris_service.store import TASK_STATES, StatusStore

from support.samples import SETOSA


def test_backend_is_ours(app: Flask) -> None:
    assert isinstance(app.extensions["celery"].backend, SQLResultBackend)


def test_states_are_written_and_success_is_final(app: Flask) -> None:
    backend = app.extensions["celery"].backend
    store: StatusStore = app.extensions["iris_store"]
    task_id = str(uuid.uuid4())
    store.create_pending(task_id, SETOSA)

    backend.store_result(task_id, {"stage": "writing report", "progress": 0.6}, "PROGRESS")
    job = store.get(task_id)
    assert job is not None
    assert job.state == "PROGRESS"
    assert job.result == {"stage": "writing report", "progress": 0.6}
    assert job.finished_at is None

    backend.store_result(task_id, {"label": "setosa"}, "SUCCESS")
    # A late write from a redelivered run must not replace the answer.
    backend.store_result(task_id, {"stage": "writing report", "progress": 0.6}, "PROGRESS")
    job = store.get(task_id)
    assert job is not None
    assert job.state == "SUCCESS"
    assert job.result == {"label": "setosa"}
    assert job.finished_at is not None
    # Celery's own (inherited) read path decodes what we wrote.
    meta = backend.get_task_meta(task_id)
    assert meta["status"] == "SUCCESS"
    assert meta["result"] == {"label": "setosa"}


def test_failure_is_stored_as_json(app: Flask) -> None:
    backend = app.extensions["celery"].backend
    task_id = str(uuid.uuid4())
    backend.mark_as_failure(task_id, ValueError("bad input"))
    meta = backend.get_task_meta(task_id)
    assert meta["status"] == "FAILURE"
    assert "bad input" in str(meta["result"])


def test_unrecorded_task_gets_a_row(app: Flask) -> None:
    backend = app.extensions["celery"].backend
    task_id = str(uuid.uuid4())
    backend.store_result(task_id, {"label": "virginica"}, "SUCCESS")
    assert backend.get_task_meta(task_id)["result"] == {"label": "virginica"}


def test_retry_never_reaches_the_status(app: Flask) -> None:
    """Celery marks a job RETRY when it hands it back to the queue (a lost broker
    connection cancels running jobs with ``emit_retry``); RETRY is no API state."""
    backend = app.extensions["celery"].backend
    store: StatusStore = app.extensions["iris_store"]
    task_id = str(uuid.uuid4())
    store.create_pending(task_id, SETOSA)
    assert store.begin_attempt(task_id) is not None
    backend.mark_as_retry(task_id, RuntimeError("connection lost"))
    job = store.get(task_id)
    assert job is not None and job.state == "STARTED"
    assert job.state in TASK_STATES


def test_success_records_the_completion_time_the_task_reported(app: Flask) -> None:
    """The report prints the task's completion time; the row's finish time is the same."""
    backend = app.extensions["celery"].backend
    store: StatusStore = app.extensions["iris_store"]
    task_id = str(uuid.uuid4())
    store.create_pending(task_id, SETOSA)
    completed = datetime(2026, 11, 27, 18, 0, 1, 123456, tzinfo=UTC)
    backend.store_result(
        task_id, {"label": "setosa", COMPLETED_AT: completed.isoformat()}, "SUCCESS"
    )
    job = store.get(task_id)
    assert job is not None and job.finished_at == completed.replace(tzinfo=None)
