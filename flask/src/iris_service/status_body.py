"""The status body of a job: what ``GET /flask/status/<id>`` answers.

The app answers it from the database, and each state write copies the same
bytes into a status file that nginx answers polls from (status_files.py), so
both go through :func:`encode` here. The contract is in docs/architecture.md.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

from . import reports
from .store import JobStatus

_STAGES = {
    "PENDING": "queued",
    "STARTED": "started",
    "SUCCESS": "done",
    "FAILURE": "failed",
    "REVOKED": "cancelled",
}
# What "cancelled.by" may hold: the client's own words, kept short and printable
# (it is shown in the web UI and in logs).
CANCELLED_BY_RE = re.compile(r"[ -~]{1,64}")
# Who cancelled a job that Celery revoked outside this API (a worker told by
# ``celery control revoke`` or Flower drops its message and writes REVOKED).
REVOKED_BY_CELERY = "celery"


def iso(value: datetime | None) -> str | None:
    """A stored naive-UTC time as the API writes it (milliseconds, ``Z``)."""
    return None if value is None else value.isoformat(timespec="milliseconds") + "Z"


def _progress(job: JobStatus) -> tuple[float, str]:
    meta = job.result if isinstance(job.result, dict) else {}
    if job.state == "PROGRESS":
        return float(meta.get("progress", 0.0)), str(meta.get("stage", "working"))
    if job.state in ("SUCCESS", "FAILURE", "REVOKED"):
        return 1.0, _STAGES[job.state]
    if job.state == "STARTED":
        return 0.1, _STAGES["STARTED"]
    if job.state == "PENDING" and "stage" in meta:
        # A training job says which queue it waits in, and whether anything consumes it.
        return 0.0, str(meta["stage"])
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
    body = {
        "label": stored.get("label"),
        "probabilities": stored.get("probabilities"),
        "model_version": stored.get("model_version"),
        "report_url": reports.url(job.task_id),
    }
    # Issue 16: a training job links its model's card; a batch names its rows and CSV.
    for name in ("model_url", "rows", "counts", "csv_url"):
        if name in stored:
            body[name] = stored[name]
    return body


def _cancelled(job: JobStatus) -> dict[str, Any] | None:
    if job.cancelled_at is not None:
        return {"at": iso(job.cancelled_at), "by": job.cancelled_by or "api"}
    if job.state == "REVOKED":
        return {"at": iso(job.finished_at), "by": REVOKED_BY_CELERY}
    return None


def status_body(job: JobStatus) -> dict[str, Any]:
    """The body of ``GET /flask/status/<id>``."""
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
        "retry_of": job.retry_of,
        "cancelled": _cancelled(job),
    }


def encode(body: dict[str, Any]) -> bytes:
    """JSON exactly as Flask's default provider writes it, so both answers are the same bytes."""
    return (json.dumps(body, sort_keys=True, separators=(",", ":")) + "\n").encode()
