"""nginx keeps finished statuses and nothing else, on a stack with a slow test job.

A finished status never changes, so nginx answers repeated reads of it itself
(``X-Accel-Expires`` from the app); a job still running is always read from the
result backend. The proof: a job seen running through nginx is later seen
finished through nginx, and a finished job whose rows are deleted behind the
cache's back still reads through nginx, while the uncached form of the same
read (``/flask/status?task_id=``) reaches the app and answers 404.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from iris_service.tasks import SLOW_JOB_SEPAL_LENGTH

from conftest import VIRGINICA, Stack, start_stack
from faultkit import db, wait_until

pytestmark = pytest.mark.stack

SLOW = {**VIRGINICA, "sepal_length": SLOW_JOB_SEPAL_LENGTH}


@pytest.fixture(scope="module")
def slow_stack() -> Iterator[Stack]:
    stack = start_stack({"IRIS_TEST_HOOKS": "1", "TEST_TASK_DELAY_SECONDS": "2"})
    try:
        yield stack
    finally:
        stack.stop()


def _status(stack: Stack, task_id: str, query: bool = False) -> requests.Response:
    path = f"/flask/status?task_id={task_id}" if query else f"/flask/status/{task_id}"
    return requests.get(stack.base_url + path, timeout=10, allow_redirects=False)


def test_running_job_is_never_served_from_the_cache(slow_stack: Stack) -> None:
    task_id = slow_stack.submit(SLOW)["task_id"]
    seen: list[str] = []

    def finished() -> bool:
        seen.append(_status(slow_stack, task_id).json()["state"])
        return seen[-1] == "SUCCESS"

    wait_until(finished, 30, "the slow job to finish", step=0.05)
    # It was read many times while running (the delay is 2 s), each time afresh.
    assert "PROGRESS" in seen and seen.count("SUCCESS") == 1


def test_finished_status_is_answered_by_nginx(slow_stack: Stack) -> None:
    task_id = slow_stack.submit(VIRGINICA)["task_id"]
    done = slow_stack.wait_done(task_id)
    assert done["state"] == "SUCCESS"
    first = _status(slow_stack, task_id)
    # Clients are still told not to store it; nginx's own header is not passed on.
    assert first.headers["Cache-Control"] == "no-store"
    assert "X-Accel-Expires" not in first.headers
    # The query form answers the same (from the app) while the rows exist.
    assert _status(slow_stack, task_id, query=True).json() == first.json()

    with db(slow_stack) as conn:
        conn.execute("DELETE FROM celery_taskmeta WHERE task_id = ?", (task_id,))
        conn.execute("DELETE FROM iris_jobs WHERE task_id = ?", (task_id,))

    cached = _status(slow_stack, task_id)
    assert cached.status_code == 200
    body: dict[str, Any] = cached.json()
    assert body == first.json() == done
    assert _status(slow_stack, task_id, query=True).status_code == 404
