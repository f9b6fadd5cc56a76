"""The end of a job, announced on the broker, and the waits it wakes (``?wait=`` on the status).

Whoever commits a job's final state (the worker's result backend, the web
app's cancel) publishes the task id, after the commit, to the fan-out
exchange ``iris.job-ends``: a transient message, no queue of its own, so a
publish costs one frame and a confirm. Each process that holds waiting
requests (the waiter process, waiter.py; a gunicorn process answering a wait
itself) subscribes once, with a private auto-deleted queue, and wakes the
requests waiting on that id, which then read the state from the database.

The announcement is a hint, never the record: a wait registers itself before
it reads the state (so an end committed meanwhile is seen by that read), is
woken once more after the subscriber reconnects (an end announced while it was
away was lost), and reads the state again when its time runs out. A lost
message therefore costs at most the rest of the wait, never a wrong answer.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Generic, Protocol, TypeVar

from celery import Celery, states
from kombu.connection import Connection
from kombu.entity import Exchange, Queue
from kombu.mixins import ConsumerMixin

from .store import JobStatus, StatusStore
from .validation import is_task_id

log = logging.getLogger(__name__)

JOB_ENDS = Exchange("iris.job-ends", type="fanout", durable=True)  # type: ignore[no-untyped-call]
# SUCCESS, FAILURE and REVOKED: no later write changes them (result_backend.py).
FINAL_STATES = frozenset(states.READY_STATES)


def is_final(job: JobStatus) -> bool:
    return job.state in FINAL_STATES


def announce(celery_app: Celery, task_id: str) -> None:
    """Tell the waiters that ``task_id`` has ended; call after its final state is committed.

    Best effort: a broker that cannot take it costs the waiters the rest of
    their wait, never the job, so a failure is logged and nothing more.
    """
    try:
        with celery_app.producer_pool.acquire(block=True, timeout=1) as producer:
            producer.publish(
                task_id,
                exchange=JOB_ENDS,
                routing_key="",
                declare=[JOB_ENDS],
                delivery_mode=1,  # transient: a waiter that is not listening now has no use for it
                content_type="text/plain",
                content_encoding="utf-8",
                retry=False,
            )
    except Exception as exc:  # never the job's failure; see the docstring
        log.warning("could not announce the end of %s: %r", task_id, exc)


class _Event(Protocol):
    def set(self) -> None: ...


E = TypeVar("E", bound=_Event)


class Waiters(Generic[E]):
    """The events of the requests waiting on each job, woken by id (or all at once)."""

    def __init__(self, make_event: Callable[[], E]) -> None:
        self._make_event = make_event
        self._by_id: dict[str, set[E]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return sum(len(events) for events in self._by_id.values())

    @contextmanager
    def registered(self, task_id: str) -> Iterator[E]:
        event = self._make_event()
        with self._lock:
            self._by_id.setdefault(task_id, set()).add(event)
        try:
            yield event
        finally:
            with self._lock:
                events = self._by_id.get(task_id)
                if events is not None:
                    events.discard(event)
                    if not events:
                        del self._by_id[task_id]

    def wake(self, task_id: str) -> None:
        with self._lock:
            events = list(self._by_id.get(task_id, ()))
        for event in events:
            event.set()

    def wake_all(self) -> None:
        with self._lock:
            events = [e for group in self._by_id.values() for e in group]
        for event in events:
            event.set()


class JobEndSubscriber(ConsumerMixin):
    """Consumes the announcements in a thread, reconnecting for as long as it runs.

    ``on_end(task_id)`` is called for each announced end; ``on_end(None)``
    after each (re)subscription, when ends may have been missed.
    """

    def __init__(self, broker_url: str, on_end: Callable[[str | None], None]) -> None:
        self.connection = Connection(broker_url, heartbeat=30)  # type: ignore[no-untyped-call]
        self._on_end = on_end
        self.subscribed = threading.Event()
        # Private to this process, gone with its connection.
        self._queue = Queue(  # type: ignore[no-untyped-call]
            f"iris.job-ends.{uuid.uuid4().hex}",
            JOB_ENDS,
            exclusive=True,
            auto_delete=True,
            durable=False,
        )

    def get_consumers(self, consumer: Callable[..., Any], channel: Any) -> list[Any]:
        return [consumer(queues=[self._queue], on_message=self._message, no_ack=True)]

    def on_consume_ready(self, connection: Any, channel: Any, consumers: Any, **_: Any) -> None:
        self.subscribed.set()
        log.info("subscribed to the ends of jobs")
        self._on_end(None)

    def on_connection_error(self, exc: Exception, interval: float) -> None:
        self.subscribed.clear()
        log.warning("job-end subscription lost (%r); retrying in %.1fs", exc, interval)

    def _message(self, message: Any) -> None:
        body = message.body
        task_id = body.decode("ascii", "replace") if isinstance(body, bytes) else str(body)
        if is_task_id(task_id):
            self._on_end(task_id)

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name="job-ends", daemon=True)
        thread.start()
        return thread


class InAppWaits:
    """Waits held in a gunicorn process's own threads, when a client reaches gunicorn directly.

    At most ``slots`` at once per process (each holds a thread); past that a
    wait answers at once with the current state. The subscription starts with
    the first wait.
    """

    def __init__(self, broker_url: str, slots: int) -> None:
        self._broker_url = broker_url
        self._slots = threading.BoundedSemaphore(slots) if slots > 0 else None
        self._waiters: Waiters[threading.Event] = Waiters(threading.Event)
        self._subscriber: JobEndSubscriber | None = None
        self._lock = threading.Lock()

    def _subscribe(self) -> None:
        with self._lock:
            if self._subscriber is None:
                self._subscriber = JobEndSubscriber(self._broker_url, self._on_end)
                self._subscriber.start()

    def _on_end(self, task_id: str | None) -> None:
        if task_id is None:
            self._waiters.wake_all()
        else:
            self._waiters.wake(task_id)

    def wait(self, store: StatusStore, task_id: str, seconds: float) -> JobStatus | None:
        """The job once it has ended, or as it is when ``seconds`` run out.

        None when every slot is taken (the caller answers with what it read)
        or when the job has gone meanwhile (purged).
        """
        if self._slots is None or not self._slots.acquire(blocking=False):
            return None
        try:
            self._subscribe()
            with self._waiters.registered(task_id) as event:
                return wait_until_final(store, task_id, seconds, event)
        finally:
            self._slots.release()


def wait_until_final(
    store: StatusStore, task_id: str, seconds: float, event: threading.Event
) -> JobStatus | None:
    """Read the job until it has ended or time runs out; ``event`` is set on each wake.

    The caller registers ``event`` before calling, so an end committed
    after the first read below still wakes it (no lost wake-up).
    """
    deadline = time.monotonic() + seconds
    while True:
        event.clear()
        job = store.get(task_id)
        remaining = deadline - time.monotonic()
        if job is None or is_final(job) or remaining <= 0:
            return job
        event.wait(remaining)
