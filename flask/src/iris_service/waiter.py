"""The waiter process: status reads with ``?wait=``, held in one event loop.

nginx sends ``GET /flask/status/<id>?wait=<seconds>`` (and the query form)
here instead of to gunicorn, where each wait would hold a thread. A wait here
is a coroutine and an open socket: hundreds cost a few megabytes, and no
gunicorn thread. The process subscribes once to the ends of jobs
(job_ends.py) and wakes the waits on each id; it reads the database only when
a wait starts, when its job ends (or the subscription comes back) and when
its time runs out. Its answers are the app's, byte for byte: the same checks
in the same order, the same status body, the same error bodies.

``python -m iris_service.waiter`` (flask/bin/start-waiter.sh); ``GET
/waiter/health`` tells whether it is subscribed and how many requests wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import Any

from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets, bind_unix_socket
from tornado.web import Application, RequestHandler

from . import logs
from .config import Settings, load_settings
from .job_ends import FINAL_STATES, JobEndSubscriber, Waiters
from .status_body import encode, status_body
from .store import JobStatus, StatusStore
from .validation import MAX_WAIT_SECONDS, InvalidWaitError, normalise_task_id, wait_seconds

log = logging.getLogger(__name__)

# Hundreds of waits may connect at once (nginx opens one upstream connection
# per wait): tornado's default backlog of 128 would refuse the rest.
_BACKLOG = 4096


class _WaitHandler(RequestHandler):
    """Shared by the routes: JSON answers as the app writes them."""

    store: StatusStore
    waiters: Waiters[asyncio.Event]

    def initialize(self, store: StatusStore, waiters: Waiters[asyncio.Event]) -> None:
        self.store = store
        self.waiters = waiters

    def _json(self, status: int, body: dict[str, Any]) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.finish(encode(body))

    def compute_etag(self) -> None:
        return None  # as the app: a status changes from one read to the next

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        # tornado's own errors (an unexpected exception, a refused method) in JSON.
        message = {404: "not found", 405: "method not allowed"}.get(status_code, "internal error")
        self._json(status_code, {"error": message})

    def _args(self, name: str) -> list[str]:
        return [v.decode("utf-8", "replace") for v in self.request.query_arguments.get(name, [])]

    async def _answer(self, task_id: str) -> None:
        """What views.status answers, waiting here instead of in a thread."""
        try:
            seconds = wait_seconds(self._args("wait"))
        except InvalidWaitError as exc:
            self._json(400, {"error": str(exc)})
            return
        canonical = normalise_task_id(task_id)
        if canonical is None:
            self._json(400, {"error": "task_id must be a UUID", "task_id": task_id[:64]})
            return
        # nginx sends only waits here; a plain read is answered all the same.
        job = await self._wait(canonical, seconds or 0.0)
        if job is None:
            self._json(404, {"error": "no task with this id", "task_id": canonical})
        else:
            self._json(200, status_body(job))

    async def _wait(self, task_id: str, seconds: float) -> JobStatus | None:
        # Registered before the first read: an end committed after that read
        # sets the event (no lost wake-up). Each read is a sub-millisecond
        # indexed SELECT, done in the loop: a thread hop would cost more.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        with self.waiters.registered(task_id) as event:
            while True:
                event.clear()
                job = self.store.get(task_id)
                remaining = deadline - loop.time()
                if job is None or job.state in FINAL_STATES or remaining <= 0:
                    return job
                # At the deadline the loop reads the state once more, then answers.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), remaining)


class StatusById(_WaitHandler):
    async def get(self, task_id: str) -> None:
        await self._answer(task_id)

    head = get


class StatusByQuery(_WaitHandler):
    async def get(self) -> None:
        given = self._args("task_id")
        if not given or not given[0]:
            self._json(400, {"error": "the task_id query parameter is required"})
            return
        await self._answer(given[0])

    head = get


class NotFound(_WaitHandler):
    def prepare(self) -> None:
        self._json(404, {"error": "not found"})


class Health(RequestHandler):
    def initialize(self, subscriber: JobEndSubscriber, waiters: Waiters[asyncio.Event]) -> None:
        self.subscriber = subscriber
        self.waiters = waiters

    def get(self) -> None:
        self.set_header("Content-Type", "application/json")
        subscribed = self.subscriber.subscribed.is_set()
        self.finish(encode({"subscribed": subscribed, "waiting": len(self.waiters)}))


def make_app(
    settings: Settings,
) -> tuple[Application, JobEndSubscriber, Waiters[asyncio.Event]]:
    """The waiter's routes and its subscriber (not started); call in the running loop."""
    store = StatusStore(settings.database_url, settings.sqlite_busy_timeout_ms)
    waiters: Waiters[asyncio.Event] = Waiters(asyncio.Event)
    loop = asyncio.get_running_loop()

    def on_end(task_id: str | None) -> None:  # in the subscriber's thread
        if task_id is None:
            loop.call_soon_threadsafe(waiters.wake_all)
        else:
            loop.call_soon_threadsafe(waiters.wake, task_id)

    subscriber = JobEndSubscriber(settings.broker_url, on_end)
    shared = {"store": store, "waiters": waiters}
    app = Application(
        [
            (r"/flask/status/([^/]+)", StatusById, shared),
            (r"/flask/status", StatusByQuery, shared),
            (r"/waiter/health", Health, {"subscriber": subscriber, "waiters": waiters}),
        ],
        default_handler_class=NotFound,
        default_handler_args=shared,
        # No access log line per wait; nginx's access log has them.
        log_function=lambda handler: None,
    )
    return app, subscriber, waiters


async def serve(settings: Settings) -> None:
    app, subscriber, waiters = make_app(settings)
    server = HTTPServer(app)
    if settings.waiter_bind.startswith("unix:"):
        # nginx's workers may run as another user (as for gunicorn's socket).
        path = settings.waiter_bind.removeprefix("unix:")
        server.add_socket(bind_unix_socket(path, mode=0o666, backlog=_BACKLOG))
    else:
        host, _, port = settings.waiter_bind.rpartition(":")
        server.add_sockets(bind_sockets(int(port), host or None, backlog=_BACKLOG))
    subscriber.start()
    log.info("waiter listening on %s", settings.waiter_bind)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    # Stop taking connections; the waits in flight end as usual, rather than
    # cut off, within the longest wait (nginx may still send new ones on its
    # kept-alive connections meanwhile: those are closed at the bound).
    server.stop()
    bound = loop.time() + MAX_WAIT_SECONDS + 1
    while len(waiters) and loop.time() < bound:
        await asyncio.sleep(0.1)
    await server.close_all_connections()
    subscriber.should_stop = True
    log.info("waiter stopped")


def main() -> None:
    settings = load_settings()
    logs.configure(settings.log_level, settings.log_format)
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
