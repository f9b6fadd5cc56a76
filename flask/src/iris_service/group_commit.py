"""Group commit of submits: the submits that arrive together in a process share one
SQLite transaction and one wait for the broker's confirms.

A submit hands its job to its process's committer thread and waits for the
outcome. The committer takes every job waiting (at most ``BATCH_MAX``),
inserts their PENDING rows in one transaction, publishes their messages on one
channel in confirm mode, waits for all the confirms, and only then answers
each request: published (the 202), or refused. A refused job's rows are
deleted before its request gets the 503, so a refusal never leaves a PENDING
row that nobody will run (and a worker drops a message whose row is gone, as
tasks.predict does). Nothing waits on purpose: a batch is whatever arrived
while the previous one was being committed, so a lone submit costs what it
did, and under load the per-submit cost of the transaction and of the confirm
round trip falls with the batch's size (docs/performance.md).
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from amqp.exceptions import AMQPError, MessageNacked
from celery import Celery
from kombu.connection import Connection
from kombu.exceptions import OperationalError as BrokerError
from kombu.messaging import Producer
from sqlalchemy.exc import SQLAlchemyError

from . import logs
from .celery_app import PREDICT_TASK
from .config import Settings
from .registry import MODEL_VERSION
from .store import StatusStore

log = logging.getLogger(__name__)

# The most jobs in one transaction and one wait for confirms: enough for every
# request a gunicorn process can hold at once, small enough that one batch's
# transaction keeps SQLite's write lock for milliseconds only.
BATCH_MAX = 64

# The errors that mean the broker could not take a message: kombu's, py-amqp's
# (a connection closed by the broker, unwrapped when read by drain_events), a nack.
BROKER_ERRORS: tuple[type[BaseException], ...] = (BrokerError, AMQPError, MessageNacked, OSError)


@dataclass(frozen=True)
class Job:
    """One submit: a new job's id, its measurements, the job it retries, the request's id
    and the model version."""

    task_id: str
    values: dict[str, float]
    retry_of: str | None
    request_id: str | None
    # The model chosen at submit: in the row (a retry reuses it) and in the message.
    model_version: str

    def inputs(self) -> dict[str, Any]:
        """What the job's row records: the measurements and the model version."""
        return {**self.values, MODEL_VERSION: self.model_version}


class RefusedError(Exception):
    """The job was not queued (and is not recorded): the client gets a 503 with this message."""


QUEUE_FULL = "the queue is full; try again later"
BROKER_DOWN = "the message broker is unreachable; try again later"
DATABASE_DOWN = "the result backend is unavailable; try again later"

# Per job of a batch, in order: None when its message is confirmed, else why not.
Publisher = Callable[[Sequence[Job]], list[RefusedError | None]]


class ConfirmedPublisher:
    """Publishes a batch of task messages on one channel in confirm mode, then waits for
    every confirm: one round trip per batch instead of one per message.

    The messages are Celery's own (``amqp.create_task_message``, the queue and
    properties ``send_task`` would use). Used by the committer thread alone.
    """

    def __init__(self, celery_app: Celery, settings: Settings) -> None:
        self._app = celery_app
        self._queue = celery_app.amqp.queues[settings.queue_name]
        self._connect_timeout = settings.broker_connect_timeout
        self._conn: Connection | None = None
        self._producer: Producer | None = None
        self._next_tag = 1
        # delivery tag -> index in the batch being confirmed, and the outcomes.
        self._unconfirmed: dict[int, int] = {}
        self._outcomes: list[RefusedError | None] = []
        # The indexes of the batch published in the current try, in order.
        self._published: list[int] = []

    def __call__(self, jobs: Sequence[Job]) -> list[RefusedError | None]:
        self._outcomes = [RefusedError(BROKER_DOWN) for _ in jobs]
        todo = list(range(len(jobs)))
        # A connection the broker dropped since the last batch shows as an error
        # at the first publish or read: one more try, on a new connection, of
        # the messages neither confirmed nor refused, as Celery's publish retry
        # would (task_publish_retry_policy). No confirm in time is no retry:
        # the broker is up but does not take messages. Nor is a failed new
        # connection: the broker is down, and another connect (a DNS lookup of a
        # stopped container's name can take seconds) would only hold every
        # waiting submit longer before its 503.
        for attempt in (1, 2):
            self._unconfirmed = {}
            fresh = self._producer is None
            try:
                self._publish(jobs, todo)
                break
            except BROKER_ERRORS as exc:
                unsettled = set(self._unconfirmed.values()) | set(todo[len(self._published) :])
                todo = sorted(unsettled)
                self._close()
                log.warning("publish of %d jobs failed (try %d): %r", len(todo), attempt, exc)
                if fresh or isinstance(exc, TimeoutError):
                    break
        return self._outcomes

    def _connect(self) -> Producer:
        if self._producer is not None:
            return self._producer
        # confirm_publish off: kombu would wait for each message's confirm;
        # the channel is put in confirm mode here and confirms are counted below.
        conn = self._app.connection_for_write(transport_options={"confirm_publish": False})
        self._conn = conn
        conn.ensure_connection(
            max_retries=2, interval_start=0, interval_step=0.2, timeout=self._connect_timeout
        )
        channel: Any = conn.default_channel
        channel.confirm_select()
        channel.events["basic_ack"].add(self._on_ack)
        channel.events["basic_nack"].add(self._on_nack)
        self._next_tag = 1
        # The queue with its arguments (bounded, reject-publish), as send_task declares it.
        self._queue.bind(channel).declare()
        # kombu is not annotated.
        self._producer = Producer(channel, auto_declare=False)  # type: ignore[no-untyped-call]
        return self._producer

    def _close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()  # type: ignore[no-untyped-call]
            except Exception as exc:  # closing a broken connection; nothing to keep
                log.debug("closing the publish connection: %r", exc)
        self._conn = self._producer = None

    def _settle(self, tag: int, multiple: bool, outcome: RefusedError | None) -> None:
        tags = [t for t in self._unconfirmed if t <= tag] if multiple else [tag]
        for t in tags:
            index = self._unconfirmed.pop(t, None)
            if index is not None:
                self._outcomes[index] = outcome

    def _on_ack(self, tag: int, multiple: bool) -> None:
        self._settle(tag, multiple, None)

    def _on_nack(self, tag: int, multiple: bool) -> None:
        # RabbitMQ nacks a publish to a full queue (x-overflow: reject-publish).
        self._settle(tag, multiple, RefusedError(QUEUE_FULL))

    def _publish(self, jobs: Sequence[Job], todo: list[int]) -> None:
        """Publish the messages of ``jobs[i] for i in todo``, then wait for their confirms."""
        self._published = []
        producer = self._connect()
        amqp = self._app.amqp
        for index in todo:
            job = jobs[index]
            # The reprs Celery logs and shows in monitors, given here: deriving
            # them (saferepr) was a sixth of a submit's CPU.
            headers, properties, body, _ = amqp.create_task_message(
                job.task_id,
                PREDICT_TASK,
                [job.values],
                {MODEL_VERSION: job.model_version},
                argsrepr=repr([job.values]),
                kwargsrepr=repr({MODEL_VERSION: job.model_version}),
            )
            if job.request_id is not None:
                # The worker logs its lines of this job with the request's id (logs.py).
                headers[logs.TASK_HEADER] = job.request_id
            producer.publish(  # type: ignore[no-untyped-call]
                body,
                # Celery's route for a direct queue: the default exchange, keyed by name.
                exchange="",
                routing_key=self._queue.name,
                serializer="json",
                delivery_mode="persistent",
                headers=headers,
                **properties,
            )
            self._published.append(index)
            self._unconfirmed[self._next_tag] = index
            self._next_tag += 1
        conn = self._conn
        assert conn is not None  # set by _connect
        deadline = time.monotonic() + self._connect_timeout
        while self._unconfirmed:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no confirm from the broker in time")
            conn.drain_events(timeout=remaining)  # type: ignore[no-untyped-call]


@dataclass
class _Waiting:
    job: Job
    outcome: Future[None]


class GroupCommitter:
    """The process's committer: ``submit`` returns once the job is recorded and its
    message confirmed, or raises RefusedError (nothing of the job is left)."""

    def __init__(self, store: StatusStore, publish: Publisher) -> None:
        self.store = store
        self.publish = publish
        self._queue: queue.SimpleQueue[_Waiting] = queue.SimpleQueue()
        self._lock = threading.Lock()
        # The process the thread runs in: gunicorn forks its workers after
        # the app is built, and a thread does not survive a fork.
        self._pid: int | None = None

    def submit(self, job: Job) -> None:
        waiting = _Waiting(job, Future())
        self._ensure_thread()
        self._queue.put(waiting)
        # No timeout: every batch ends within the broker's and SQLite's own
        # bounds, and a request that gave up could not take back its job.
        waiting.outcome.result()

    def _ensure_thread(self) -> None:
        pid = os.getpid()
        if self._pid == pid:
            return
        with self._lock:
            if self._pid != pid:
                thread = threading.Thread(target=self._run, name="iris-committer", daemon=True)
                thread.start()
                self._pid = pid

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < BATCH_MAX:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                self._commit(batch)
            except Exception as exc:  # the thread must live on; each request is answered
                log.exception("a batch of %d submits failed", len(batch))
                for waiting in batch:
                    if not waiting.outcome.done():
                        waiting.outcome.set_exception(exc)

    def _commit(self, batch: list[_Waiting]) -> None:
        jobs = [waiting.job for waiting in batch]
        try:
            self.store.create_pending_many([(j.task_id, j.inputs(), j.retry_of) for j in jobs])
        except SQLAlchemyError:
            log.exception("could not record %d jobs", len(jobs))
            for waiting in batch:
                waiting.outcome.set_exception(RefusedError(DATABASE_DOWN))
            return
        try:
            outcomes = self.publish(jobs)
        except Exception:  # whatever failed, these jobs are not known to be queued
            log.exception("publish of %d jobs failed", len(jobs))
            outcomes = [RefusedError(BROKER_DOWN) for _ in jobs]
        refused = [
            job.task_id for job, outcome in zip(jobs, outcomes, strict=True) if outcome is not None
        ]
        if refused:
            why = {str(outcome) for outcome in outcomes if outcome is not None}
            log.warning("publish of %d of %d jobs refused: %s", len(refused), len(jobs), why)
            try:
                # Before any answer: a client told 503 must find no job of its submit.
                self.store.discard_many(refused)
            except SQLAlchemyError:
                log.exception("could not discard the refused jobs %s", refused)
        for waiting, outcome in zip(batch, outcomes, strict=True):
            if outcome is None:
                waiting.outcome.set_result(None)
            else:
                waiting.outcome.set_exception(outcome)
