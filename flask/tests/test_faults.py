"""Worker faults on a private stack: a pool process killed mid-job, SIGTERM, a poison job.

The stack runs with ``IRIS_TEST_HOOKS=1`` (see tasks.py): a job with
``sepal_length`` 99.25 stays running for ``TEST_TASK_DELAY_SECONDS`` so it can
be killed while it runs, and one with 99.75 kills its own worker process every
time it starts. Each test leaves the stack healthy for the next.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pytest
import requests

from iris_service.tasks import POISON_JOB_SEPAL_LENGTH, SLOW_JOB_SEPAL_LENGTH

from conftest import SETOSA, VIRGINICA, Stack, start_stack
from faultkit import (
    alive,
    children,
    job_row,
    queue_depth,
    reports_for,
    role_pid,
    start_worker,
    wait_until,
)

pytestmark = pytest.mark.stack

SLOW = {**VIRGINICA, "sepal_length": SLOW_JOB_SEPAL_LENGTH}
POISON = {**SETOSA, "sepal_length": POISON_JOB_SEPAL_LENGTH}


@pytest.fixture(scope="module")
def hooked() -> Iterator[Stack]:
    stack = start_stack(
        {"IRIS_TEST_HOOKS": "1", "TEST_TASK_DELAY_SECONDS": "4", "CELERY_CONCURRENCY": "2"}
    )
    try:
        yield stack
    finally:
        stack.stop()


def _running_pid(stack: Stack, task_id: str) -> int:
    """Wait until the slow job is inside its delay; return the pool process running it."""

    def started() -> bool:
        result = job_row(stack, task_id)["result"]
        return isinstance(result, dict) and "pid" in result

    wait_until(started, 60, f"job {task_id} to start")
    pid = int(job_row(stack, task_id)["result"]["pid"])
    assert pid in children(role_pid(stack, "worker"))
    return pid


def test_pool_process_killed_mid_job_is_redelivered(hooked: Stack) -> None:
    task_id = hooked.submit(SLOW)["task_id"]
    victim = _running_pid(hooked, task_id)
    os.kill(victim, signal.SIGKILL)
    killed = time.monotonic()

    done = hooked.wait_done(task_id, timeout=120)
    recovery = time.monotonic() - killed
    assert done["state"] == "SUCCESS", done
    row = job_row(hooked, task_id)
    assert row["attempts"] == 2  # the killed start, then the redelivery
    # Exactly one report, and no temporary file left by the killed attempt.
    assert reports_for(hooked, task_id) == [f"{task_id}.pdf"]
    assert not alive(victim)
    print(f"\npool kill: 1 submitted, 1 completed, recovered in {recovery:.1f}s")


def test_sigterm_lets_the_running_job_finish(hooked: Stack) -> None:
    task_id = hooked.submit(SLOW)["task_id"]
    _running_pid(hooked, task_id)
    worker = role_pid(hooked, "worker")
    os.kill(worker, signal.SIGTERM)
    # Warm shutdown: the worker exits only once its running job is done.
    wait_until(lambda: not alive(worker), 90, "the worker to exit after SIGTERM")
    row = job_row(hooked, task_id)
    assert row["state"] == "SUCCESS", row
    assert row["attempts"] == 1  # finished by the first start, not redelivered
    assert reports_for(hooked, task_id) == [f"{task_id}.pdf"]

    ready = start_worker(hooked)
    again = hooked.submit(SETOSA)["task_id"]
    assert hooked.wait_done(again, timeout=60)["state"] == "SUCCESS"
    print(f"\nSIGTERM: 1 submitted, 1 completed; worker back in {ready:.1f}s")


def test_poison_job_fails_after_bounded_attempts(hooked: Stack) -> None:
    task_id = hooked.submit(POISON)["task_id"]
    started = time.monotonic()
    done = hooked.wait_done(task_id, timeout=180)
    took = time.monotonic() - started
    assert done["state"] == "FAILURE", done
    assert "PoisonJobError" in done["error"]
    assert "gave up after 3 attempts" in done["error"]
    assert job_row(hooked, task_id)["attempts"] == 4  # three deaths, then refused
    assert reports_for(hooked, task_id) == []
    r = requests.get(f"{hooked.base_url}/flask/result/{task_id}.pdf", timeout=10)
    assert r.status_code == 409

    # It is not redelivered again: the queue is empty and the worker serves others.
    wait_until(lambda: queue_depth(hooked) == 0, 30, "the queue to empty")
    assert job_row(hooked, task_id)["attempts"] == 4
    other = hooked.submit(SETOSA)["task_id"]
    assert hooked.wait_done(other, timeout=60)["state"] == "SUCCESS"
    print(f"\npoison: 1 submitted, ended FAILURE after 4 starts in {took:.1f}s")
