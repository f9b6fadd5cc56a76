"""Overload on a private stack: a full queue answers 503, a flood loses nothing.

The queue holds 10 jobs and one pool process works through jobs slowed to
0.2 s each (``IRIS_TEST_HOOKS``), so the stack's capacity is small and known:
a flood from 16 threads is well beyond it.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator

import pytest
import requests

from iris_service.testhooks import SLOW_JOB_SEPAL_LENGTH

from support.faults import (
    assert_clean_503,
    db,
    kill_group,
    queue_depth,
    role_pid,
    start_worker,
    states,
    submit_many,
    wait_all_finished,
    wait_until,
)
from support.samples import SETOSA
from support.stack import Stack, running_stack

pytestmark = pytest.mark.stack

QUEUE_MAX_LENGTH = 10
SLOWISH = {**SETOSA, "sepal_length": SLOW_JOB_SEPAL_LENGTH}


@pytest.fixture(scope="module")
def small() -> Iterator[Stack]:
    with running_stack(
        {
            "QUEUE_MAX_LENGTH": str(QUEUE_MAX_LENGTH),
            "IRIS_TEST_HOOKS": "1",
            "TEST_TASK_DELAY_SECONDS": "0.2",
            "CELERY_CONCURRENCY": "1",
        }
    ) as stack:
        yield stack


def _job_count(stack: Stack) -> int:
    with db(stack) as conn:
        count: int = conn.execute("SELECT count(*) FROM iris_jobs").fetchone()[0]
    return count


def test_full_queue_answers_503_then_drains(small: Stack) -> None:
    kill_group(role_pid(small, "worker"), signal.SIGTERM, timeout=90)
    before = _job_count(small)
    answers = [
        requests.post(f"{small.base_url}/flask/predict", json=SETOSA, timeout=30)
        for _ in range(QUEUE_MAX_LENGTH + 8)
    ]
    codes = [r.status_code for r in answers]
    assert codes == [202] * QUEUE_MAX_LENGTH + [503] * 8, codes
    for refused in answers[QUEUE_MAX_LENGTH:]:
        assert_clean_503(refused)
        assert "queue is full" in refused.json()["error"]
    # The refused submits left no job behind; the queue holds exactly the accepted.
    assert _job_count(small) == before + QUEUE_MAX_LENGTH
    assert queue_depth(small) == QUEUE_MAX_LENGTH

    start_worker(small)
    accepted = [r.json()["task_id"] for r in answers[:QUEUE_MAX_LENGTH]]
    drained = wait_all_finished(small, accepted, timeout=120)
    assert set(states(small, accepted).values()) == {"SUCCESS"}
    assert queue_depth(small) == 0
    # Room again: a submit is accepted.
    assert requests.post(f"{small.base_url}/flask/predict", json=SETOSA, timeout=30).ok
    print(f"\nqueue full: {len(answers)} submitted, 10 accepted and completed in {drained:.1f}s")


def test_concurrent_submits_into_a_full_queue(small: Stack) -> None:
    """Submits that arrive together share a transaction and a confirm wait
    (group_commit.py): of one batch, those the broker refuses get a 503 and leave
    no job, the others are recorded, queued once each, and run."""
    kill_group(role_pid(small, "worker"), signal.SIGTERM, timeout=90)
    before = _job_count(small)
    # A message the stopped worker had prefetched went back to the queue.
    room = QUEUE_MAX_LENGTH - queue_depth(small)
    tally = submit_many(small, QUEUE_MAX_LENGTH + 30, SETOSA, threads=16)
    assert set(tally.codes) == {202, 503}, tally.codes
    assert len(tally.accepted) == len(set(tally.accepted)) == room
    for refused in tally.unavailable:
        assert_clean_503(refused)
        assert "queue is full" in refused.json()["error"]
    with db(small) as conn:
        recorded = {row[0] for row in conn.execute("SELECT task_id FROM iris_jobs")}
    assert set(tally.accepted) <= recorded
    assert _job_count(small) == before + room
    assert queue_depth(small) == QUEUE_MAX_LENGTH

    start_worker(small)
    wait_all_finished(small, tally.accepted, timeout=120)
    assert set(states(small, tally.accepted).values()) == {"SUCCESS"}
    wait_until(lambda: queue_depth(small) == 0, 60, "the queue to drain")


def test_flood_beyond_capacity_loses_nothing(small: Stack) -> None:
    started = time.monotonic()
    tally = submit_many(small, 250, SLOWISH, threads=16)
    flood = time.monotonic() - started
    # Only 202 (accepted) or 503 (refused, try later): no other error, ever.
    assert set(tally.codes) <= {202, 503}, tally.codes
    assert tally.codes.get(503, 0) > 0, "the flood did not exceed the capacity"
    for refused in tally.unavailable:
        assert_clean_503(refused)
    drained = wait_all_finished(small, tally.accepted, timeout=240)
    assert set(states(small, tally.accepted).values()) == {"SUCCESS"}
    wait_until(lambda: queue_depth(small) == 0, 60, "the queue to drain")
    print(
        f"\nflood: 250 submitted in {flood:.1f}s, {len(tally.accepted)} accepted and completed, "
        f"{len(tally.unavailable)} refused with 503; drained {drained:.1f}s after the flood"
    )
