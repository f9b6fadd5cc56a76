"""Cancel and retry against the real stack: a running job, a queued one, a worker
killed while it holds a cancelled job, and a retry that runs to SUCCESS.

The private stack has one pool process (``CELERY_CONCURRENCY=1``, so a second
job waits in the queue while the first runs) and the test hooks on: a job with
``sepal_length`` 99.25 stays running for ``TEST_TASK_DELAY_SECONDS`` (testhooks.py).
Each test ends by running a plain job through the same single process and
waiting for an empty queue: every job before it has then been dealt with, so
what the test reads is final (no waiting on a clock).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from iris_service.testhooks import SLOW_JOB_SEPAL_LENGTH

from support.faults import alive, job_row, queue_depth, reports_for, wait_until
from support.samples import SETOSA, VIRGINICA
from support.stack import Stack, running_stack

pytestmark = pytest.mark.stack

SLOW = {**VIRGINICA, "sepal_length": SLOW_JOB_SEPAL_LENGTH}


@pytest.fixture(scope="module")
def single() -> Iterator[Stack]:
    with running_stack(
        {"IRIS_TEST_HOOKS": "1", "TEST_TASK_DELAY_SECONDS": "5", "CELERY_CONCURRENCY": "1"}
    ) as stack:
        yield stack


def running_pid(stack: Stack, task_id: str) -> int:
    """Wait until the slow job is inside its delay; return the pool process running it."""

    def started() -> bool:
        result = job_row(stack, task_id)["result"]
        return isinstance(result, dict) and "pid" in result

    wait_until(started, 60, f"job {task_id} to start")
    return int(job_row(stack, task_id)["result"]["pid"])


def post(stack: Stack, task_id: str, action: str, **kwargs: Any) -> requests.Response:
    return requests.post(f"{stack.base_url}/flask/tasks/{task_id}/{action}", timeout=30, **kwargs)


def status(stack: Stack, task_id: str) -> dict[str, Any]:
    """The status as nginx answers polls (from the status file when there is one)."""
    body: dict[str, Any] = requests.get(
        f"{stack.base_url}/flask/status/{task_id}", timeout=10
    ).json()
    return body


def drain(stack: Stack) -> None:
    """Run a plain job to SUCCESS, then wait for the queue to hold nothing, not even
    an unacknowledged message: every job before it has been dealt with for good."""
    marker = stack.submit(SETOSA)["task_id"]
    assert stack.wait_done(marker, timeout=120)["state"] == "SUCCESS"
    wait_until(lambda: queue_depth(stack) == 0, 60, "the queue to empty")


def assert_revoked_for_good(stack: Stack, task_id: str, by: str) -> dict[str, Any]:
    body = status(stack, task_id)
    assert body["state"] == "REVOKED", body
    assert body["stage"] == "cancelled" and body["result"] is None
    assert body["cancelled"]["by"] == by
    assert job_row(stack, task_id)["state"] == "REVOKED"
    assert reports_for(stack, task_id) == []
    r = requests.get(f"{stack.base_url}/flask/result/{task_id}.pdf", timeout=10)
    assert r.status_code == 409 and r.json()["state"] == "REVOKED"
    return body


def test_running_job_cancelled_stops_without_a_report(single: Stack) -> None:
    task_id = single.submit(SLOW)["task_id"]
    running_pid(single, task_id)
    r = post(single, task_id, "cancel", json={"by": "stack test"})
    assert r.status_code == 202, r.text
    assert r.json()["state"] == "REVOKED"

    drain(single)
    assert_revoked_for_good(single, task_id, "stack test")
    assert job_row(single, task_id)["attempts"] == 1
    # Finished now: a second cancel is refused.
    again = post(single, task_id, "cancel")
    assert again.status_code == 409 and again.json()["state"] == "REVOKED"


def test_queued_job_cancelled_never_starts_and_its_retry_succeeds(single: Stack) -> None:
    busy = single.submit(SLOW)["task_id"]
    queued = single.submit(VIRGINICA)["task_id"]
    running_pid(single, busy)  # the only pool process is taken: `queued` waits
    r = post(single, queued, "cancel", headers={"X-Request-ID": "a0b1c2d3"})
    assert r.status_code == 202, r.text

    drain(single)
    assert single.wait_done(busy, timeout=60)["state"] == "SUCCESS"
    cancelled = assert_revoked_for_good(single, queued, "a0b1c2d3")
    # Workers were told to drop its message: it never started.
    assert job_row(single, queued)["attempts"] == 0

    retried = post(single, queued, "retry")
    assert retried.status_code == 202, retried.text
    new_id = retried.json()["task_id"]
    assert new_id != queued
    done = single.wait_done(new_id, timeout=60)
    assert done["state"] == "SUCCESS", done
    assert done["retry_of"] == queued and done["cancelled"] is None
    assert done["result"]["label"] == "virginica"
    assert reports_for(single, new_id) == [f"{new_id}.pdf"]
    pdf = requests.get(single.base_url + done["result"]["report_url"], timeout=10)
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    # The original is as it was.
    assert status(single, queued) == cancelled

    # A finished job is neither retried nor cancelled.
    for action in ("retry", "cancel"):
        refused = post(single, new_id, action)
        assert refused.status_code == 409, (action, refused.text)
        assert refused.json()["state"] == "SUCCESS"


def test_worker_killed_holding_a_cancelled_job_leaves_it_revoked(single: Stack) -> None:
    """The message of a cancelled job is redelivered when its worker dies: it is
    still never run to SUCCESS."""
    task_id = single.submit(SLOW)["task_id"]
    pid = running_pid(single, task_id)
    cancelled = post(single, task_id, "cancel")
    assert cancelled.status_code == 202
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not alive(pid), 30, f"pool process {pid} to die")

    drain(single)
    # No body and no client id: the cancel is named by the request id nginx gave it.
    assert_revoked_for_good(single, task_id, cancelled.headers["X-Request-ID"])
