"""Prometheus metrics: what the service is doing, served at ``GET /flask/metrics``.

The web app counts requests and submits; the worker's pool processes count
finished jobs, their run and submit-to-done times and the report bytes; the
queue depth, its consumers and the result backend's size are read when
scraped. The counters live in several processes (gunicorn's workers, each
Celery worker's pool), so prometheus-client runs in its multiprocess mode
whenever ``PROMETHEUS_MULTIPROC_DIR`` is set (build.sh sets it in local
mode): each process writes its values to memory-mapped files in that folder,
and a scrape merges them. The variable must be in the environment before
prometheus_client is imported (the library chooses its value class at import),
which is why it is an environment variable and not only a setting. Unset
(unit tests, an in-process app), the metrics are those of this one process.

Names follow Prometheus' conventions: the unit in the name, ``_total`` on
counters, and only bounded label values (a route's rule, never its path; never
a task id). The helpers here are the one way other modules record a metric.
"""

from __future__ import annotations

import contextlib
import functools
import glob
import hmac
import ipaddress
import os
import re
import struct
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from flask import Flask, Request, Response, g, request
from prometheus_client import (
    CONTENT_TYPE_PLAIN_0_0_4,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from sqlalchemy import Engine, func, select

from .store import JOBS

MULTIPROC_DIR: str | None = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None
if MULTIPROC_DIR is not None:
    # The metrics below open their files as they are created: the folder must
    # exist first (build.sh creates it; a worker or tool started otherwise may not).
    Path(MULTIPROC_DIR).mkdir(parents=True, exist_ok=True)

# The *_created series say when a process first counted, one per process:
# noise once merged across processes, and absent in multiprocess mode anyway.
disable_created_metrics()  # type: ignore[no-untyped-call]

# The metrics are registered here, not in prometheus_client's global registry
# (which adds the process collectors): a scrape without the multiprocess folder
# reads this one.
REGISTRY = CollectorRegistry()

_HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Finished states a job can end in; anything else is not counted as finished.
_FINAL_STATES = frozenset({"SUCCESS", "FAILURE", "REVOKED"})
# A job waits in the queue before it runs: submit-to-done spans minutes under a backlog.
_WAIT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)

HTTP_REQUESTS = Counter(
    "iris_http_requests",
    "HTTP requests the web app answered, by route rule, method and status",
    ["route", "method", "status"],
    registry=REGISTRY,
)
HTTP_DURATION = Histogram(
    "iris_http_request_duration_seconds",
    "Time the web app took to answer a request, by route rule and method",
    ["route", "method"],
    registry=REGISTRY,
)
JOBS_SUBMITTED = Counter(
    "iris_jobs_submitted", "Jobs accepted (202) by POST /flask/predict", registry=REGISTRY
)
JOBS_FINISHED = Counter(
    "iris_jobs_finished", "Jobs a worker finished, by final state", ["state"], registry=REGISTRY
)
JOBS_CANCELLED = Counter("iris_jobs_cancelled", "Jobs cancelled through the API", registry=REGISTRY)
JOBS_RETRIED = Counter(
    "iris_jobs_retried", "Jobs submitted again through the retry API", registry=REGISTRY
)
JOB_RUN = Histogram(
    "iris_job_run_duration_seconds",
    "Time a worker's pool process spent running a job (one attempt)",
    registry=REGISTRY,
)
JOB_SUBMIT_TO_DONE = Histogram(
    "iris_job_submit_to_done_seconds",
    "Time from a job's submit to its finish, queue wait included",
    buckets=_WAIT_BUCKETS,
    registry=REGISTRY,
)
REPORT_BYTES = Counter("iris_report_bytes", "Bytes of PDF reports written", registry=REGISTRY)
# Summed over the processes alive: a dead process's jobs are not running.
_JOBS_RUNNING = Gauge(
    "iris_jobs_running",
    "Jobs the workers' pool processes are running",
    multiprocess_mode="livesum",
    registry=REGISTRY,
)

# Per pool process: when each running job started and when it was submitted.
_started: dict[str, float] = {}
_submitted: dict[str, float] = {}


# --- the web app -----------------------------------------------------------


def _before_request() -> None:
    g.iris_request_started = time.perf_counter()


def _after_request(response: Response) -> Response:
    started: float | None = g.pop("iris_request_started", None)
    rule = request.url_rule
    route = rule.rule if rule is not None else "other"
    method = request.method if request.method in _HTTP_METHODS else "other"
    HTTP_REQUESTS.labels(route, method, str(response.status_code)).inc()
    if started is not None:
        HTTP_DURATION.labels(route, method).observe(time.perf_counter() - started)
    return response


def init_app(app: Flask) -> None:
    """Count and time every request the app answers (nginx's own answers are not seen)."""
    app.before_request(_before_request)
    app.after_request(_after_request)


def job_submitted() -> None:
    JOBS_SUBMITTED.inc()


def job_cancelled() -> None:
    JOBS_CANCELLED.inc()


def job_retried() -> None:
    JOBS_RETRIED.inc()


# --- the worker's pool processes ---------------------------------------------


def job_started(task_id: str) -> None:
    """Called as a task starts (Celery's task_prerun, in the pool process)."""
    _started[task_id] = time.perf_counter()
    _JOBS_RUNNING.inc()


def job_submitted_at(task_id: str, submitted_at: datetime) -> None:
    """The running job's submit time (naive UTC, as stored), for submit-to-done."""
    aware = submitted_at if submitted_at.tzinfo else submitted_at.replace(tzinfo=UTC)
    _submitted[task_id] = aware.timestamp()


def report_written(size: int) -> None:
    REPORT_BYTES.inc(size)


def job_ended(task_id: str, state: str | None) -> None:
    """Called as a task ends (Celery's task_postrun, in the pool process), whatever its end.

    A job handed back to the queue (RETRY) or dropped (IGNORED) is timed but
    not counted as finished: it finishes later, or never existed.
    """
    started = _started.pop(task_id, None)
    submitted = _submitted.pop(task_id, None)
    if started is None:
        return
    _JOBS_RUNNING.dec()
    JOB_RUN.observe(time.perf_counter() - started)
    if state not in _FINAL_STATES:
        return
    JOBS_FINISHED.labels(state).inc()
    if submitted is not None:
        JOB_SUBMIT_TO_DONE.observe(max(0.0, time.time() - submitted))


_LIVE_FILE = re.compile(r"gauge_live\w+?_(\d+)\.db")


def forget_dead_processes() -> None:
    """Drop the live gauges of processes that no longer exist (a pool process killed
    mid-job would otherwise count as running a job forever).

    Called in each new pool process: a killed one is replaced by a new one.
    Only this host's processes write to this folder (in Docker mode, each
    worker container has its own), so a pid that does not exist here is dead.
    """
    if MULTIPROC_DIR is None:
        return
    for path in glob.glob(os.path.join(MULTIPROC_DIR, "gauge_live*.db")):
        match = _LIVE_FILE.fullmatch(os.path.basename(path))
        if match is None:
            continue
        pid = int(match.group(1))
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            with contextlib.suppress(FileNotFoundError):
                mark_process_dead(pid, MULTIPROC_DIR)  # type: ignore[no-untyped-call]
        except PermissionError:
            continue  # alive, another user's


def process_exited(pid: int) -> None:
    """A process of ours exited: its live gauges go (gunicorn's child_exit hook)."""
    if MULTIPROC_DIR is not None:
        mark_process_dead(pid, MULTIPROC_DIR)  # type: ignore[no-untyped-call]


# --- access ------------------------------------------------------------------

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@functools.lru_cache(maxsize=8)
def parse_allow_list(value: str) -> tuple[Network, ...]:
    """``METRICS_ALLOW``: comma-separated addresses or CIDRs; "none" for none."""
    if value.strip().lower() == "none":
        return ()
    return tuple(ipaddress.ip_network(item.strip(), strict=False) for item in value.split(","))


def allowed(req: Request, allow: str, token: str | None) -> bool:
    """Whether this request may read the metrics: a listed address, or the token.

    The address is the client's as nginx saw it (ProxyFix takes the one hop
    nginx sets; nginx sets it for this route rather than append to the
    client's), so a client cannot claim another.
    """
    if token is not None:
        scheme, _, credentials = req.headers.get("Authorization", "").partition(" ")
        # Constant-time comparison: the answer time must not leak the token.
        if scheme.lower() == "bearer" and hmac.compare_digest(
            credentials.strip().encode(), token.encode()
        ):
            return True
    try:
        address = ipaddress.ip_address(req.remote_addr or "")
    except ValueError:
        return False  # a unix socket peer without a forwarded address
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in parse_allow_list(allow))


# --- the scrape ----------------------------------------------------------------

QueueState = Callable[[], tuple[int, int]]
# The classic text format (0.0.4), which every Prometheus version reads.
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4


class _Snapshot:
    """The families of one scrape, in the shape generate_latest reads (a collect())."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


_READ_TRIES = 3


def _recorded() -> Iterable[Metric]:
    if MULTIPROC_DIR is None:
        return REGISTRY.collect()
    # A collector not registered anywhere: it merges the files when asked.
    collector = MultiProcessCollector(None, path=MULTIPROC_DIR)  # type: ignore[no-untyped-call]
    # prometheus-client reads the processes' files without a lock: a file being
    # created (its first sample half written) or removed (a process that exited)
    # as it is read fails that read with a 500; the next read sees it whole.
    for _ in range(_READ_TRIES - 1):
        try:
            return list(collector.collect())  # type: ignore[no-untyped-call]
        except (OSError, ValueError, struct.error):
            time.sleep(0.01)
    return list(collector.collect())  # type: ignore[no-untyped-call]


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _backend_families(engine: Engine) -> list[Metric]:
    with engine.connect() as conn:
        jobs = conn.execute(select(func.count()).select_from(JOBS)).scalar_one()
    families: list[Metric] = [
        _gauge("iris_result_backend_jobs", "Jobs recorded in the result backend", jobs)
    ]
    database = engine.url.database
    if engine.url.get_backend_name() == "sqlite" and database:
        size = 0
        for suffix in ("", "-wal"):
            with contextlib.suppress(FileNotFoundError):
                size += os.stat(database + suffix).st_size
        families.append(
            _gauge(
                "iris_result_backend_bytes",
                "Size of the result backend's SQLite file and its write-ahead log",
                size,
            )
        )
    return families


def exposition(queue_state: QueueState, engine: Engine) -> bytes:
    """Every metric in the Prometheus text format: the recorded ones, merged across
    processes, and the ones read now (queue, consumers, result backend).

    What cannot be read (the broker or the database is down) is left out, so a
    scrape still answers; Prometheus then shows those series as absent.
    """
    families: list[Metric] = []
    running = 0.0
    for family in _recorded():
        if family.name == "iris_jobs_running":
            # With late acknowledgement and a prefetch of one per pool process,
            # the messages a worker holds unacknowledged are the jobs it runs;
            # AMQP itself tells only the ready ones.
            running = sum(sample.value for sample in family.samples)
        else:
            families.append(family)
    queue = GaugeMetricFamily(
        "iris_queue_messages",
        "Messages in the job queue: ready, or held unacknowledged by the workers",
        labels=["state"],
    )
    try:
        consumers, ready = queue_state()
    except Exception:  # the broker is down: no queue figures in this scrape
        ready_value: float | None = None
    else:
        ready_value = ready
        families.append(
            _gauge("iris_queue_consumers", "Workers consuming the job queue", consumers)
        )
    if ready_value is not None:
        queue.add_metric(["ready"], ready_value)
    queue.add_metric(["unacked"], running)
    families.append(queue)
    # The database is down: the backend figures are left out of this scrape.
    with contextlib.suppress(Exception):
        families.extend(_backend_families(engine))
    return generate_latest(_Snapshot(families))
