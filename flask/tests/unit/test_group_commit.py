"""The group commit of submits (group_commit.py) on a real SQLite store.

The broker is replaced by a recording publisher, the one stand-in here: the
real publisher's confirms and nacks are exercised through the stack
(tests/stack/test_overload.py).
"""

from __future__ import annotations

import socket
import threading
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from iris_service import create_app
from iris_service.group_commit import (
    QUEUE_FULL,
    ConfirmedPublisher,
    GroupCommitter,
    Job,
    RefusedError,
)
from iris_service.store import StatusStore, init_schema

from support.faults import wait_until
from support.samples import SETOSA
from support.settings import make_settings


class Broker:
    """Records each batch; refuses the jobs whose sepal length is in ``refuse``.
    The first batch can be held until the test lets it go."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.refuse: set[float] = set()
        self.entered = threading.Event()
        self.hold = threading.Event()
        self.hold.set()

    def __call__(self, jobs: Sequence[Job]) -> list[RefusedError | None]:
        self.entered.set()
        self.hold.wait()
        self.batches.append([job.task_id for job in jobs])
        return [
            RefusedError(QUEUE_FULL) if job.values["sepal_length"] in self.refuse else None
            for job in jobs
        ]


@pytest.fixture
def store(tmp_path: Path) -> StatusStore:
    store = StatusStore(f"sqlite:///{tmp_path / 'results.sqlite'}", busy_timeout_ms=5000)
    init_schema(store.engine)
    return store


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(16) as executor:
        yield executor


def job(sepal_length: float = SETOSA["sepal_length"]) -> Job:
    return Job(
        str(uuid.uuid4()), {**SETOSA, "sepal_length": sepal_length}, None, "rid", "0123456789abcdef"
    )


def hold_a_batch(
    committer: GroupCommitter, broker: Broker, pool: ThreadPoolExecutor
) -> tuple[Job, Future[None]]:
    """Submit one job and keep its batch waiting for its confirms until broker.hold is set."""
    broker.hold.clear()
    first = job()
    answer = pool.submit(committer.submit, first)
    assert broker.entered.wait(10), "the first batch never reached the broker"
    return first, answer


def queue_then_release(
    committer: GroupCommitter, broker: Broker, pool: ThreadPoolExecutor, jobs: list[Job]
) -> list[Future[None]]:
    """Submit ``jobs`` while a batch is held, so that they queue up; then let it go."""
    answers = [pool.submit(committer.submit, j) for j in jobs]
    wait_until(lambda: committer._queue.qsize() == len(jobs), 10, "the queued submits")
    broker.hold.set()
    return answers


def test_submits_that_arrive_together_share_one_batch(
    store: StatusStore, pool: ThreadPoolExecutor
) -> None:
    broker = Broker()
    committer = GroupCommitter(store, broker)
    first, held = hold_a_batch(committer, broker, pool)
    # While the first batch waits for its confirms, ten more submits arrive.
    waiting = [job() for _ in range(10)]
    answers = queue_then_release(committer, broker, pool, waiting)
    for answer in [held, *answers]:
        answer.result()

    assert broker.batches == [[first.task_id], [j.task_id for j in waiting]]
    for j in [first, *waiting]:
        recorded = store.get(j.task_id)
        assert recorded is not None and recorded.state == "PENDING"
        assert store.inputs_of(j.task_id) == j.inputs()


def test_a_refused_message_is_a_refusal_and_leaves_no_job(
    store: StatusStore, pool: ThreadPoolExecutor
) -> None:
    broker = Broker()
    broker.refuse = {6.0}
    committer = GroupCommitter(store, broker)
    hold_a_batch(committer, broker, pool)
    jobs = [job(6.0 if i % 2 else 5.0) for i in range(8)]
    answers = queue_then_release(committer, broker, pool, jobs)
    for answer in answers:
        answer.exception()  # each is answered, one way or the other
    assert broker.batches[-1] == [j.task_id for j in jobs]
    for j, answer in zip(jobs, answers, strict=True):
        if j.values["sepal_length"] == 6.0:
            with pytest.raises(RefusedError, match="queue is full"):
                answer.result()
            assert store.get(j.task_id) is None
        else:
            answer.result()
            assert store.get(j.task_id) is not None


def test_a_broker_down_refuses_the_whole_batch(store: StatusStore) -> None:
    def down(jobs: Sequence[Job]) -> list[RefusedError | None]:
        return [RefusedError("the message broker is unreachable") for _ in jobs]

    committer = GroupCommitter(store, down)
    lone = job()
    with pytest.raises(RefusedError, match="unreachable"):
        committer.submit(lone)
    assert store.get(lone.task_id) is None


def test_a_publish_that_breaks_refuses_the_batch(store: StatusStore) -> None:
    def broken(jobs: Sequence[Job]) -> list[RefusedError | None]:
        raise RuntimeError("a bug, or an error nobody expected")

    committer = GroupCommitter(store, broken)
    lone = job()
    with pytest.raises(RefusedError, match="unreachable"):
        committer.submit(lone)
    assert store.get(lone.task_id) is None


def test_a_broker_that_is_down_gets_one_connect_per_batch(tmp_path: Path) -> None:
    """A new connection that fails means the broker is down: the batch gets its 503
    without a second try (in Docker, each connect to a stopped broker's name can spend
    seconds in DNS while every waiting submit waits). A real TCP peer stands for the
    broker: it accepts each connection and closes it at once."""
    listener = socket.create_server(("127.0.0.1", 0))
    connects: list[None] = []

    def accept_and_close() -> None:
        while True:
            try:
                peer, _ = listener.accept()
            except OSError:  # the listener closed: the test is over
                return
            connects.append(None)
            peer.close()

    threading.Thread(target=accept_and_close, daemon=True).start()
    port = listener.getsockname()[1]
    try:
        settings = make_settings(tmp_path, broker_url=f"amqp://u:p@127.0.0.1:{port}//")
        app = create_app({"TESTING": True}, settings=settings)
        publish = ConfirmedPublisher(app.extensions["celery"], settings)
        first = publish([job()])
        one_batch = len(connects)
        assert isinstance(first[0], RefusedError)
        assert one_batch >= 1
        # The same again: a batch costs the connects of one try, not of two.
        publish([job()])
        assert len(connects) == 2 * one_batch
        assert one_batch <= 3  # ensure_connection's own attempts (max_retries=2)
    finally:
        listener.close()
