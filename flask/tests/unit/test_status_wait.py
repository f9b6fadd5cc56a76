"""``?wait=`` on the status: the parameter's rules, the app's own waits, the wake-ups.

Against a real SQLite store and no broker (the announcements are then never
heard, which is the case the deadline's re-read exists for).
"""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from iris_service import create_app
from iris_service.job_ends import Waiters, wait_until_final
from iris_service.store import JobStatus, StatusStore, init_schema
from iris_service.validation import WAIT_MESSAGE, InvalidWaitError, wait_seconds

from support.samples import SETOSA
from support.settings import make_settings


@pytest.mark.parametrize(
    ("given", "seconds"),
    [([], None), (["10"], 10.0), (["30"], 30.0), (["0.5"], 0.5), (["1e1"], 10.0), ([".25"], 0.25)],
)
def test_valid_waits(given: list[str], seconds: float | None) -> None:
    assert wait_seconds(given) == seconds


@pytest.mark.parametrize(
    "raw",
    ["", " ", "0", "0.0", "-1", "-0", "30.0001", "31", "1e400", "nan", "NaN", "inf", "-inf",
     "abc", "5s", "1_0", "\uff15", " 5", "5 ", "0x1", "1e-400"],
)  # fmt: skip
def test_invalid_waits(raw: str) -> None:
    with pytest.raises(InvalidWaitError, match="more than 0 and at most 30"):
        wait_seconds([raw])


def test_repeated_wait_is_refused() -> None:
    with pytest.raises(InvalidWaitError, match="more than once"):
        wait_seconds(["1", "2"])


def _pending(app: Flask) -> str:
    task_id = str(uuid.uuid4())
    app.extensions["iris_store"].create_pending(task_id, SETOSA)
    return task_id


@pytest.mark.parametrize(
    "query", ["wait=", "wait", "wait=0", "wait=31", "wait=nan", "wait=1&wait=2"]
)
def test_bad_wait_is_a_json_400_on_both_routes(app: Flask, client: FlaskClient, query: str) -> None:
    task_id = _pending(app)
    for url in (f"/flask/status/{task_id}?{query}", f"/flask/status?task_id={task_id}&{query}"):
        response = client.get(url)
        assert response.status_code == 400, url
        assert response.is_json and "wait" in response.get_json()["error"]


def test_wait_is_checked_before_the_id(client: FlaskClient) -> None:
    # The waiter process checks in the same order, so both answer the same.
    body = client.get("/flask/status/not-an-id?wait=0").get_json()
    assert body == {"error": WAIT_MESSAGE}
    unknown = client.get(f"/flask/status/{uuid.uuid4()}?wait=1")
    assert unknown.status_code == 404


def test_finished_job_answers_at_once(app: Flask, client: FlaskClient) -> None:
    task_id = _pending(app)
    app.extensions["iris_store"].cancel(task_id, "test")
    waited = client.get(f"/flask/status/{task_id}?wait=30")
    assert waited.get_json()["state"] == "REVOKED"
    assert waited.data == client.get(f"/flask/status/{task_id}").data


def test_no_free_slot_answers_at_once_with_the_current_body(
    app: Flask, client: FlaskClient
) -> None:
    # The default with gunicorn's single thread: no waits in the app's threads.
    task_id = _pending(app)
    waited = client.get(f"/flask/status/{task_id}?wait=30")
    assert waited.status_code == 200
    assert waited.data == client.get(f"/flask/status/{task_id}").data


def test_a_wait_in_the_app_runs_out_with_the_current_body(tmp_path: Path) -> None:
    app = create_app({"TESTING": True}, settings=make_settings(tmp_path, status_wait_slots=1))
    client = app.test_client()
    task_id = _pending(app)
    waited = client.get(f"/flask/status?task_id={task_id}&wait=0.2")
    assert waited.get_json()["state"] == "PENDING"


class _EndsUnannounced(StatusStore):
    """A store whose job ends right after the first read, with no announcement."""

    reads = 0

    def get(self, task_id: str) -> JobStatus | None:
        job = super().get(task_id)
        self.reads += 1
        if self.reads == 1:
            self.cancel(task_id, "test")
        return job


def test_an_end_that_was_never_announced_is_read_at_the_deadline(tmp_path: Path) -> None:
    store = _EndsUnannounced(f"sqlite:///{tmp_path / 'results.sqlite'}", busy_timeout_ms=1000)
    init_schema(store.engine)
    task_id = str(uuid.uuid4())
    store.create_pending(task_id, SETOSA)
    job = wait_until_final(store, task_id, 0.2, threading.Event())
    assert job is not None and job.state == "REVOKED"
    assert store.reads == 2  # the first read, and one at the deadline: no polling


def test_wake_reaches_only_the_waits_on_that_job() -> None:
    waiters: Waiters[threading.Event] = Waiters(threading.Event)
    with waiters.registered("a") as a1, waiters.registered("a") as a2:
        with waiters.registered("b") as b:
            assert len(waiters) == 3
            waiters.wake("a")
            assert a1.is_set() and a2.is_set() and not b.is_set()
            waiters.wake_all()
            assert b.is_set()
        assert len(waiters) == 2
    assert len(waiters) == 0
    waiters.wake("a")  # nobody waits: nothing to do


def test_openapi_documents_the_wait(client: FlaskClient) -> None:
    paths = client.get("/flask/openapi.json").get_json()["paths"]
    for path in ("/flask/status/{task_id}", "/flask/status"):
        (wait,) = [p for p in paths[path]["get"]["parameters"] if p["name"] == "wait"]
        assert wait["in"] == "query"
        assert wait["schema"] == {"type": "number", "exclusiveMinimum": 0, "maximum": 30.0}
