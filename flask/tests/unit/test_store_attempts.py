"""The worker's start of a job: attempt counter and STARTED state in one write, on real SQLite."""

from __future__ import annotations

import uuid

from flask import Flask
from sqlalchemy import update

from iris_service.store import TASKMETA, StatusStore

from support.samples import SETOSA


def test_begin_attempt_counts_and_marks_started(app: Flask) -> None:
    store: StatusStore = app.extensions["iris_store"]
    task_id = str(uuid.uuid4())
    submitted = store.create_pending(task_id, SETOSA)
    first = store.begin_attempt(task_id)
    assert first is not None
    assert first.number == 1 and first.submitted_at == submitted
    job = store.get(task_id)
    assert job is not None and job.state == "STARTED" and job.finished_at is None
    second = store.begin_attempt(task_id)
    assert second is not None and second.number == 2


def test_begin_attempt_never_reopens_a_finished_job(app: Flask) -> None:
    store: StatusStore = app.extensions["iris_store"]
    task_id = str(uuid.uuid4())
    store.create_pending(task_id, SETOSA)
    with store.engine.begin() as conn:
        conn.execute(update(TASKMETA).where(TASKMETA.c.task_id == task_id).values(status="SUCCESS"))
    attempt = store.begin_attempt(task_id)
    assert attempt is not None and attempt.number == 1
    job = store.get(task_id)
    assert job is not None and job.state == "SUCCESS"


def test_begin_attempt_of_unknown_job_is_none(app: Flask) -> None:
    store: StatusStore = app.extensions["iris_store"]
    assert store.begin_attempt(str(uuid.uuid4())) is None
