"""``GET /flask/status/<id>?wait=`` against the real stack: nginx, the waiter process,
the worker's announcements on RabbitMQ, and gunicorn for everything else.

The private stack has the test hooks on: a job with ``sepal_length`` 99.25
stays in PROGRESS for ``TEST_TASK_DELAY_SECONDS`` (testhooks.py), long enough
for every wait here to run out or be ended by a cancel. Nothing asserts a
duration: a wait's answer is checked for its state, and "the waits are held"
is read from the waiter's own count (``/waiter/health``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from iris_service.store import StatusStore
from iris_service.testhooks import SLOW_JOB_SEPAL_LENGTH

from support import unix_http
from support.faults import wait_until
from support.samples import SETOSA, VIRGINICA
from support.stack import Stack, running_stack

pytestmark = pytest.mark.stack

SLOW = {**VIRGINICA, "sepal_length": SLOW_JOB_SEPAL_LENGTH}
FINAL = ("SUCCESS", "FAILURE", "REVOKED")
HOLDERS = 500


@pytest.fixture(scope="module")
def waiting() -> Iterator[Stack]:
    with running_stack({"IRIS_TEST_HOOKS": "1", "TEST_TASK_DELAY_SECONDS": "20"}) as stack:
        yield stack


def waiter_health(stack: Stack) -> dict[str, Any]:
    status, body = unix_http.get(stack.var_dir / "run" / "waiter.sock", "/waiter/health")
    assert status == 200
    health: dict[str, Any] = json.loads(body)
    return health


def waiting_count(stack: Stack) -> int:
    return int(waiter_health(stack)["waiting"])


def test_a_wait_answers_with_the_finished_job(waiting: Stack) -> None:
    task_id = waiting.submit(SETOSA)["task_id"]
    # The client gives up before the wait would run out: only the job's end,
    # announced by the worker, can answer it in time.
    waited = requests.get(f"{waiting.base_url}/flask/status/{task_id}?wait=30", timeout=25)
    assert waited.status_code == 200
    assert waited.json()["state"] == "SUCCESS"
    # The same bytes as a plain read (here from the status file nginx serves).
    plain = requests.get(f"{waiting.base_url}/flask/status/{task_id}", timeout=10)
    assert waited.content == plain.content
    query = requests.get(
        f"{waiting.base_url}/flask/status", params={"task_id": task_id, "wait": "5"}, timeout=10
    )
    assert query.content == plain.content


def test_a_wait_on_a_slow_job_runs_out_with_the_current_body(waiting: Stack) -> None:
    task_id = waiting.submit(SLOW)["task_id"]
    try:
        waited = requests.get(f"{waiting.base_url}/flask/status/{task_id}?wait=1", timeout=10)
        assert waited.status_code == 200
        body = waited.json()
        assert body["task_id"] == task_id
        assert body["state"] in ("PENDING", "STARTED", "PROGRESS")
    finally:
        requests.post(f"{waiting.base_url}/flask/tasks/{task_id}/cancel", timeout=10)


@pytest.mark.parametrize(
    "path",
    [
        "/flask/status/{id}?wait=0",
        "/flask/status/{id}?wait=",
        "/flask/status/{id}?wait=31",
        "/flask/status/{id}?wait=nan",
        "/flask/status/{id}?wait=1&wait=2",
        "/flask/status/not-a-uuid?wait=1",
        "/flask/status/00000000-0000-4000-8000-000000000000?wait=1",
        "/flask/status/{ID}?wait=1",
        "/flask/status?wait=1",
        "/flask/status?task_id=&wait=1",
        "/flask/status?task_id={id}&wait=-1",
        "/flask/status?task_id={id}&wait=1",
    ],
)
def test_the_waiter_answers_as_the_app_does(waiting: Stack, path: str) -> None:
    task_id = waiting.submit(SETOSA)["task_id"]
    waiting.wait_done(task_id)
    url = path.format(id=task_id, ID=task_id.upper())
    through_nginx = requests.get(waiting.base_url + url, timeout=40)
    assert through_nginx.headers["Content-Type"] == "application/json"
    status, body = unix_http.get(waiting.var_dir / "run" / "gunicorn.sock", url)
    assert (through_nginx.status_code, through_nginx.content) == (status, body)


def test_a_wait_that_misses_the_announcement_still_answers_the_end(waiting: Stack) -> None:
    task_id = waiting.submit(SLOW)["task_id"]
    before = waiting_count(waiting)

    async def wait_and_end_unannounced() -> requests.Response:
        answer = asyncio.create_task(
            asyncio.to_thread(
                requests.get, f"{waiting.base_url}/flask/status/{task_id}?wait=3", timeout=20
            )
        )
        await asyncio.to_thread(
            wait_until, lambda: waiting_count(waiting) > before, 20, "the wait to be held"
        )
        # Cancelled straight in the database: no announcement is ever sent.
        StatusStore(waiting.database_url, busy_timeout_ms=10_000).cancel(task_id, "test")
        return await answer

    waited = asyncio.run(wait_and_end_unannounced())
    assert waited.status_code == 200
    assert waited.json()["state"] == "REVOKED"


Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def _hold_waits(stack: Stack, task_id: str, count: int) -> list[Connection]:
    host, port = stack.base_url.removeprefix("http://").split(":")
    request = (
        f"GET /flask/status/{task_id}?wait=30 HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    ).encode()
    connections = []
    for _ in range(count):
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(request)
        await writer.drain()
        connections.append((reader, writer))
    return connections


async def _answer(connection: Connection) -> bytes:
    reader, writer = connection
    try:
        return await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()


def test_500_waits_leave_submits_and_reads_served(waiting: Stack) -> None:
    slow_id = waiting.submit(SLOW)["task_id"]
    base = waiting_count(waiting)

    async def scenario() -> tuple[list[bytes], list[str]]:
        connections = await _hold_waits(waiting, slow_id, HOLDERS)
        await asyncio.to_thread(
            wait_until,
            lambda: waiting_count(waiting) >= base + HOLDERS,
            60,
            f"{HOLDERS} waits to be held",
        )
        # While they wait: submits (gunicorn), plain reads (status files and gunicorn).
        done = await asyncio.to_thread(_submit_and_read, waiting, 20)
        # A cancel ends the slow job: every wait answers with its final state.
        cancel = requests.post(f"{waiting.base_url}/flask/tasks/{slow_id}/cancel", timeout=10)
        assert cancel.status_code == 202
        answers = [await _answer(connection) for connection in connections]
        return answers, done

    answers, done = asyncio.run(scenario())
    assert done == ["SUCCESS"] * 20
    statuses = [answer.split(b" ", 2)[1] for answer in answers]
    assert statuses == [b"200"] * HOLDERS
    states = {json.loads(answer.partition(b"\r\n\r\n")[2])["state"] for answer in answers}
    assert states == {"REVOKED"}


def _submit_and_read(stack: Stack, count: int) -> list[str]:
    ids = [stack.submit(SETOSA)["task_id"] for _ in range(count)]
    for task_id in ids:
        for url in (f"/flask/status/{task_id}", f"/flask/status?task_id={task_id}"):
            read = requests.get(stack.base_url + url, timeout=10)
            assert read.status_code == 200, read.text
    return [stack.wait_done(task_id)["state"] for task_id in ids]
