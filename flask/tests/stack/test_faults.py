"""Faults on one private stack: a pool process killed mid-job, SIGTERM, a poison job,
the whole worker SIGKILLed during a burst, the broker killed during a burst, and
SQLite under sustained contention.

The stack runs with ``IRIS_TEST_HOOKS=1`` (see testhooks.py): a job with
``sepal_length`` 99.25 stays running for ``TEST_TASK_DELAY_SECONDS`` so it can
be killed while it runs, and one with 99.75 kills its own worker process every
time it starts. Each test leaves the stack healthy for the next.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from iris_service.testhooks import POISON_JOB_SEPAL_LENGTH, SLOW_JOB_SEPAL_LENGTH

from support.faults import (
    Tally,
    alive,
    assert_clean_503,
    children,
    db,
    job_row,
    kill_group,
    queue_depth,
    reports_for,
    role_pid,
    start_rabbitmq,
    start_worker,
    states,
    stop_rabbitmq,
    submit_many,
    wait_all_finished,
    wait_until,
)
from support.samples import SETOSA, VERSICOLOR, VIRGINICA
from support.stack import Stack, running_stack

pytestmark = pytest.mark.stack

SLOW = {**VIRGINICA, "sepal_length": SLOW_JOB_SEPAL_LENGTH}
POISON = {**SETOSA, "sepal_length": POISON_JOB_SEPAL_LENGTH}


@pytest.fixture(scope="module")
def hooked() -> Iterator[Stack]:
    with running_stack(
        {
            "IRIS_TEST_HOOKS": "1",
            "TEST_TASK_DELAY_SECONDS": "4",
            # Several writers on each side for the contention test.
            "CELERY_CONCURRENCY": "3",
            "WEB_CONCURRENCY": "4",
            # The retention purge runs too, adding its writes (nothing is old enough).
            "RESULT_CLEANUP_INTERVAL_SECONDS": "1",
        }
    ) as stack:
        yield stack


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


def test_worker_sigkilled_during_burst_then_restarted(hooked: Stack) -> None:
    tally = Tally()
    with ThreadPoolExecutor(1) as background:
        burst = background.submit(submit_many, hooked, 100, VERSICOLOR, 4, tally)
        wait_until(lambda: len(tally.accepted) >= 30, 60, "30 accepted submits")
        kill_group(role_pid(hooked, "worker"))  # main process and pool, at once
        finished_before = sum(s == "SUCCESS" for s in states(hooked, tally.accepted).values())
        burst.result()
    # The broker was up all along: every submit was accepted.
    assert tally.codes == {202: 100}, tally.codes
    restarted = time.monotonic()
    start_worker(hooked)
    wait_all_finished(hooked, tally.accepted, timeout=240)
    recovery = time.monotonic() - restarted
    final = states(hooked, tally.accepted)
    assert list(final.values()).count("SUCCESS") == 100, final
    assert all((hooked.reports_dir / f"{t}.pdf").is_file() for t in tally.accepted)
    print(
        f"\nworker SIGKILL: 100 submitted, {finished_before} done at the kill, "
        f"100 completed {recovery:.1f}s after the restart"
    )


def test_broker_outage_during_burst(hooked: Stack) -> None:
    tally = Tally()
    stop = threading.Event()

    def keep_submitting() -> None:
        while not stop.is_set():
            submit_many(hooked, 4, SETOSA, threads=2, tally=tally)
            time.sleep(0.05)

    health = f"{hooked.base_url}/flask/health"
    with ThreadPoolExecutor(1) as background:
        burst = background.submit(keep_submitting)
        try:
            wait_until(lambda: len(tally.accepted) >= 20, 60, "20 accepted submits")
            stop_rabbitmq(hooked)
            down_at = time.monotonic()
            accepted_at_stop = len(tally.accepted)
            r = requests.get(health, timeout=30)
            assert r.status_code == 503
            assert r.json()["broker"].startswith("down")
            assert "broker" in r.json()["error"]
            assert r.headers["Retry-After"]
            wait_until(lambda: len(tally.unavailable) >= 10, 120, "503s during the outage")
            refused_during = len(tally.unavailable)

            broker_back = start_rabbitmq(hooked)
            # Both sides reconnect on their own: nothing is restarted but the broker.
            healthy = wait_until(
                lambda: requests.get(health, timeout=30).status_code == 200, 120, "health 200"
            )
            after = len(tally.accepted)
            wait_until(lambda: len(tally.accepted) >= after + 20, 120, "submits accepted again")
        finally:
            stop.set()
            burst.result()
    outage = time.monotonic() - down_at

    assert set(tally.codes) <= {202, 503}, tally.codes  # never a 500
    for response in tally.unavailable:
        assert_clean_503(response)
    # A refused submit leaves no job behind; every accepted one finishes.
    with db(hooked) as conn:
        recorded = {row[0] for row in conn.execute("SELECT task_id FROM iris_jobs")}
    assert set(tally.accepted) <= recorded
    wait_all_finished(hooked, tally.accepted, timeout=240)
    final = states(hooked, tally.accepted)
    assert set(final.values()) == {"SUCCESS"}, final
    print(
        f"\nbroker outage: {sum(tally.codes.values())} submitted, {len(tally.accepted)} accepted "
        f"and completed ({accepted_at_stop} before the stop), {refused_during}+ refused with 503 "
        f"while down; broker up in {broker_back:.1f}s, app healthy {healthy:.1f}s later, "
        f"outage {outage:.1f}s in total"
    )


def test_sqlite_contention(hooked: Stack) -> None:
    """4 gunicorn workers, 3 pool processes and the purge write and read for 12 s."""
    tally = Tally()
    bad: list[str] = []
    stop = threading.Event()

    def reader() -> None:
        session = requests.Session()
        while not stop.is_set():
            ids = tally.accepted[-5:]
            paths = [f"/flask/status/{t}" for t in ids] + ["/flask/tasks?limit=50"]
            for path in paths:
                r = session.get(hooked.base_url + path, timeout=60)
                if r.status_code != 200 or "locked" in r.text:
                    bad.append(f"{path}: {r.status_code} {r.text[:200]}")

    def writer() -> None:
        while not stop.is_set():
            submit_many(hooked, 1, VIRGINICA, threads=1, tally=tally)

    with ThreadPoolExecutor(8) as pool:
        running = [pool.submit(writer) for _ in range(4)] + [pool.submit(reader) for _ in range(3)]
        time.sleep(12)
        stop.set()
        for future in running:
            future.result()

    assert tally.codes.keys() == {202}, (tally.codes, [r.text for r in tally.other[:3]])
    assert bad == []
    wait_all_finished(hooked, tally.accepted, timeout=240)
    with db(hooked) as conn:
        rows = conn.execute(
            "SELECT m.status, j.attempts FROM iris_jobs j JOIN celery_taskmeta m USING (task_id)"
            f" WHERE task_id IN ({','.join('?' * len(tally.accepted))})",
            tally.accepted,
        ).fetchall()
    assert len(rows) == len(tally.accepted)
    # Every state update landed, and no job needed a retry because of a lock.
    assert {status for status, _ in rows} == {"SUCCESS"}
    assert {attempts for _, attempts in rows} == {1}
    logs = "".join(
        (hooked.var_dir / "log" / name).read_text(errors="replace")
        for name in ("worker.log", "web.log")
    )
    assert "database is locked" not in logs
    print(f"\ncontention: {len(tally.accepted)} submitted and completed in 12 s of mixed load")
