"""Copies of each job's status body as files that nginx answers polls from.

``GET /flask/status/<id>`` is what every waiting client sends every few tens of
milliseconds. Each state write (the web app's PENDING, the worker's STARTED,
PROGRESS and SUCCESS or FAILURE) also writes the job's status body, the same
bytes the app would answer, to ``<STATUS_DIR>/<id>.json``, and nginx answers
polls from that file (``try_files``), falling back to the app when there is
none; files older than ``STATUS_FILE_SECONDS`` are swept (retention.py).

The result backend stays the record: the file is rewritten from the row just
committed, after every write, so a copy left stale by a crash is put right by
the job's next write, and the app's answer (``/flask/status?task_id=``, or any
id without a file) is always read from the database.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from .files import write_atomically
from .status_body import encode, status_body
from .store import JobStatus

log = logging.getLogger(__name__)


class StatusFiles:
    """Writes and removes the status copies in one folder (a store's listener)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def prepare(self) -> None:
        """Create the folder, readable by nginx and writable only by us (whatever the umask)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        os.chmod(self.folder, 0o755)  # noqa: S103 (nginx must read it; only we write)

    def path(self, task_id: str) -> Path:
        return self.folder / f"{task_id}.json"

    def published(self, job: JobStatus) -> None:
        try:
            # Mode 0o644 (files.py): nginx's workers may run as another user.
            write_atomically(encode(status_body(job)), self.path(job.task_id))
        except OSError:
            # The database has the state: without a current copy nginx must ask the app.
            log.exception("could not write the status file of %s; removing it", job.task_id)
            self.withdrawn(job.task_id)

    def withdrawn(self, task_id: str) -> None:
        try:
            self.path(task_id).unlink(missing_ok=True)
        except OSError:
            log.exception("could not remove the status file of %s", task_id)
