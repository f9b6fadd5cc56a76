"""The status body of a job, and its copy as a file that nginx serves to pollers.

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

import json
import logging
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from .files import write_atomically
from .store import JobStatus

log = logging.getLogger(__name__)

_STAGES = {"PENDING": "queued", "STARTED": "started", "SUCCESS": "done", "FAILURE": "failed"}


def report_url(task_id: str) -> str:
    # The API's fixed prefix (views.bp): the same path url_for builds for it.
    return f"/flask/result/{task_id}.pdf"


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat(timespec="milliseconds") + "Z"


def _progress(job: JobStatus) -> tuple[float, str]:
    meta = job.result if isinstance(job.result, dict) else {}
    if job.state == "PROGRESS":
        return float(meta.get("progress", 0.0)), str(meta.get("stage", "working"))
    if job.state in ("SUCCESS", "FAILURE"):
        return 1.0, _STAGES[job.state]
    if job.state == "STARTED":
        return 0.1, _STAGES["STARTED"]
    return 0.0, _STAGES.get(job.state, job.state.lower())


def _error(job: JobStatus) -> str | None:
    if job.state != "FAILURE":
        return None
    meta = job.result if isinstance(job.result, dict) else {}
    kind = meta.get("exc_type", "Error")
    message = meta.get("exc_message", "")
    if isinstance(message, list | tuple):
        message = " ".join(str(m) for m in message)
    return f"{kind}: {message}" if message else str(kind)


def _public_result(job: JobStatus) -> dict[str, Any] | None:
    if job.state != "SUCCESS" or not isinstance(job.result, dict):
        return None
    stored = job.result
    return {
        "label": stored.get("label"),
        "probabilities": stored.get("probabilities"),
        "model_version": stored.get("model_version"),
        "report_url": report_url(job.task_id),
    }


def status_body(job: JobStatus) -> dict[str, Any]:
    """The body of ``GET /flask/status/<id>`` (DESIGN.md's contract)."""
    progress, stage = _progress(job)
    return {
        "task_id": job.task_id,
        "state": job.state,
        "progress": progress,
        "stage": stage,
        "result": _public_result(job),
        "error": _error(job),
        "submitted_at": iso(job.submitted_at),
        "finished_at": iso(job.finished_at),
    }


def encode(body: dict[str, Any]) -> bytes:
    """JSON exactly as Flask's default provider writes it, so both answers are the same bytes."""
    return (json.dumps(body, sort_keys=True, separators=(",", ":")) + "\n").encode()


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
