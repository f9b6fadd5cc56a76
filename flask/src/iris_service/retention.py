"""Retention: results and their PDFs older than ``RESULT_RETENTION_SECONDS`` are deleted.

Every worker runs :func:`purge` every ``RESULT_CLEANUP_INTERVAL_SECONDS`` from a
bootstep on its own timer (no Celery beat: beat must run exactly once per
system, and workers come and go). Running it in several workers at once is
harmless: each batch is one write transaction and deleting twice is a no-op.
Rows go first, then files, so a client never sees a finished job whose report
vanished first; a file left behind by a crash between the two is swept by age.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar

from celery import bootsteps

from .config import Settings, status_dir
from .store import StatusStore, utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PurgeReport:
    rows: int
    files: int


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


def purge(settings: Settings, store: StatusStore) -> PurgeReport:
    """Delete rows and PDFs of jobs submitted more than the retention ago."""
    cutoff = utcnow() - timedelta(seconds=settings.retention_seconds)
    deleted = store.purge_submitted_before(cutoff)
    files = 0
    folder = status_dir(settings)
    for task_id in deleted:
        if store.listener is not None:
            store.listener.withdrawn(task_id)
        try:
            (settings.reports_dir / f"{task_id}.pdf").unlink()
            files += 1
        except FileNotFoundError:
            pass
    now = time.time()
    for where, pattern in ((settings.reports_dir, "*.pdf"), (folder, "*.json")):
        if where is None or not where.is_dir():
            continue
        # Files whose row is already gone (a crash between rows and files).
        files += _unlink_old(pattern, where, now - settings.retention_seconds)
        # Temporary files of jobs killed mid-write; no live job is that old.
        files += _unlink_old(".*.tmp", where, now - 2 * settings.task_time_limit)
    if deleted or files:
        log.info("retention: deleted %d jobs and %d files", len(deleted), files)
    return PurgeReport(rows=len(deleted), files=files)


def retention_step(settings: Settings, store: StatusStore) -> type[bootsteps.StartStopStep]:
    """A worker bootstep that runs :func:`purge` on the worker's timer, in its main process."""

    def run() -> None:
        try:
            purge(settings, store)
        except Exception:  # a failed purge is retried at the next tick
            log.exception("retention purge failed")

    class RetentionStep(bootsteps.StartStopStep):  # type: ignore[misc]
        requires: ClassVar[set[str]] = {"celery.worker.components:Timer"}

        def __init__(self, worker: Any, **kwargs: Any) -> None:
            super().__init__(worker, **kwargs)
            self.tref: Any = None

        def start(self, worker: Any) -> None:
            # Once soon after start too: a worker restarted more often than the
            # interval would otherwise never purge.
            worker.timer.call_after(min(10.0, settings.cleanup_interval_seconds), run)
            self.tref = worker.timer.call_repeatedly(
                float(settings.cleanup_interval_seconds), run, priority=10
            )

        def stop(self, worker: Any) -> None:
            if self.tref is not None:
                self.tref.cancel()
                self.tref = None

    return RetentionStep
