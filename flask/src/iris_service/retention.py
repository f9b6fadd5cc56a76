"""Retention: results, PDFs and idempotency keys older than ``RESULT_RETENTION_SECONDS`` go.

Every worker runs :func:`purge` every ``RESULT_CLEANUP_INTERVAL_SECONDS`` from a
bootstep on its own timer (no Celery beat: beat must run exactly once per
system, and workers come and go), in a thread of its own: the timer runs in
the worker's event loop, which a long purge would otherwise stop from handing
out jobs. Running it in several workers at once is harmless: each batch is
one short write transaction and deleting twice is a no-op. After each batch
the purge waits as long as the batch took (within bounds), so the submits and
state writes waiting for SQLite's write lock get it: a million expired jobs
go in bounded steps while the service goes on. Per batch, rows go first, then
files, so a client never sees a finished job whose report vanished first; a
file left behind by a crash between the two is swept by age.
The same timer deletes status files (status_files.py) older than
``STATUS_FILE_SECONDS``, every quarter of that (at most every 30 s).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar

from celery import bootsteps

from . import reports
from .config import Settings, status_dir
from .store import StatusStore, purge_idempotency_keys_before, utcnow

log = logging.getLogger(__name__)


# Jobs per transaction: a few milliseconds of write lock on a table of millions.
PURGE_BATCH = 500
# The wait after each batch, bounds of :func:`pause_after`.
MIN_PAUSE_SECONDS = 0.005
MAX_PAUSE_SECONDS = 0.5


def pause_after(batch_seconds: float) -> float:
    """How long the purge waits after a batch that took ``batch_seconds``: as long
    again, so it holds the write lock half the time at most, within bounds."""
    return min(MAX_PAUSE_SECONDS, max(MIN_PAUSE_SECONDS, batch_seconds))


@dataclass(frozen=True)
class PurgeReport:
    rows: int
    files: int
    keys: int = 0  # issue 14 part B


def _unlink_old(pattern: str, folder: Path, older_than: float) -> int:
    removed = 0
    for path in folder.glob(pattern):
        try:
            if path.is_file() and path.stat().st_mtime < older_than:
                path.unlink()
                removed += 1
        except FileNotFoundError:
            continue  # another worker's purge got there first
    return removed


def _delete_reports(settings: Settings, store: StatusStore, task_ids: tuple[str, ...]) -> int:
    files = 0
    for task_id in task_ids:
        store.listener.withdrawn(task_id)
        try:
            reports.path(settings.reports_dir, task_id).unlink()
            files += 1
        except FileNotFoundError:
            pass
    return files


def purge(
    settings: Settings,
    store: StatusStore,
    *,
    batch: int = PURGE_BATCH,
    stop: threading.Event | None = None,
) -> PurgeReport:
    """Delete rows and PDFs of jobs submitted more than the retention ago, ``batch``
    jobs at a time, pausing after each (:func:`pause_after`); ``stop`` ends it
    between two batches."""
    stop = stop or threading.Event()
    cutoff = utcnow() - timedelta(seconds=settings.retention_seconds)
    # Issue 14 part B: Idempotency-Keys expire with their jobs, and go first so
    # that none names a deleted job.
    keys = purge_idempotency_keys_before(store, cutoff, batch)
    rows = files = 0
    batches = store.purge_batches_submitted_before(cutoff, batch)
    while True:
        started = time.monotonic()
        task_ids = next(batches, None)
        if task_ids is None:
            break
        took = time.monotonic() - started
        rows += len(task_ids)
        files += _delete_reports(settings, store, task_ids)
        if stop.wait(pause_after(took)):
            batches.close()
            break
    now = time.time()
    if settings.reports_dir.is_dir() and not stop.is_set():
        # Reports whose row is already gone (a crash between rows and files).
        files += _unlink_old("*.pdf", settings.reports_dir, now - settings.retention_seconds)
        # Batch result CSVs (batch_jobs.py) expire with their reports.
        files += _unlink_old("*.csv", settings.reports_dir, now - settings.retention_seconds)
        # Temporary files of jobs killed mid-write; no live job is that old.
        files += _unlink_old(".*.tmp", settings.reports_dir, now - 2 * settings.task_time_limit)
    if rows or files or keys:
        log.info("retention: deleted %d jobs, %d files and %d idempotency keys", rows, files, keys)
    return PurgeReport(rows=rows, files=files, keys=keys)


def sweep_status_files(settings: Settings) -> int:
    """Delete status files older than ``STATUS_FILE_SECONDS`` (the app answers those jobs)."""
    folder = status_dir(settings)
    if folder is None or not folder.is_dir():
        return 0
    now = time.time()
    removed = _unlink_old("*.json", folder, now - settings.status_file_seconds)
    return removed + _unlink_old(".*.tmp", folder, now - 2 * settings.task_time_limit)


def retention_step(settings: Settings, store: StatusStore) -> type[bootsteps.StartStopStep]:
    """A worker bootstep that runs :func:`purge` on the worker's timer, in its main process."""

    stopping = threading.Event()
    running: list[threading.Thread] = []

    def purge_logged() -> None:
        try:
            purge(settings, store, stop=stopping)
        except Exception:  # a failed purge is retried at the next tick
            log.exception("retention purge failed")

    def run() -> None:
        # One purge at a time per worker; a tick during a long one is skipped.
        if running and running[0].is_alive():
            return
        running[:] = [threading.Thread(target=purge_logged, name="retention", daemon=True)]
        running[0].start()

    def sweep() -> None:
        try:
            sweep_status_files(settings)
        except Exception:  # retried at the next tick
            log.exception("status file sweep failed")

    class RetentionStep(bootsteps.StartStopStep):  # type: ignore[misc]
        requires: ClassVar[set[str]] = {"celery.worker.components:Timer"}

        def __init__(self, worker: Any, **kwargs: Any) -> None:
            super().__init__(worker, **kwargs)
            self.trefs: list[Any] = []

        def start(self, worker: Any) -> None:
            # Once soon after start too: a worker restarted more often than the
            # interval would otherwise never purge.
            worker.timer.call_after(min(10.0, settings.cleanup_interval_seconds), run)
            self.trefs = [
                worker.timer.call_repeatedly(
                    float(settings.cleanup_interval_seconds), run, priority=10
                ),
                worker.timer.call_repeatedly(
                    max(1.0, min(30.0, settings.status_file_seconds / 4)), sweep, priority=10
                ),
            ]

        def stop(self, worker: Any) -> None:
            for tref in self.trefs:
                tref.cancel()
            self.trefs = []
            # A purge stops between two batches (each is a transaction of its own).
            stopping.set()
            for thread in running:
                thread.join(timeout=10)

    return RetentionStep
