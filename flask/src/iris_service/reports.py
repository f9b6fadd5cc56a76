"""Where a job's PDF report lives: its file name, its path, its URLs.

One job has one report, named by its task id. The worker writes it into
``REPORTS_DIR``; the app answers ``GET /flask/result/<id>.pdf`` and, behind
nginx, hands the sending to nginx's internal location (X-Accel-Redirect).
Every other module spells these names through this one.
"""

from __future__ import annotations

from pathlib import Path

# nginx's internal location for the reports folder (nginx/nginx.conf.template).
ACCEL_PREFIX = "/_reports/"


def filename(task_id: str) -> str:
    """The report's file name in the reports folder."""
    return f"{task_id}.pdf"


def path(reports_dir: Path, task_id: str) -> Path:
    return reports_dir / filename(task_id)


def url(task_id: str) -> str:
    """The public URL of the report (the API's fixed prefix, as views.bp mounts it)."""
    return f"/flask/result/{task_id}.pdf"


def accel_redirect(task_id: str) -> str:
    """The X-Accel-Redirect target that makes nginx send the file itself."""
    return ACCEL_PREFIX + filename(task_id)


def download_name(task_id: str) -> str:
    """The name a browser saves the report under."""
    return f"iris-report-{task_id}.pdf"


def stored_path(task_id: str) -> str:
    """The path the result backend records for a finished job (relative to the document root)."""
    return f"reports/{filename(task_id)}"


# Issue 16: a batch job's result CSV lives beside its PDF, under the same rules.


def csv_path(reports_dir: Path, task_id: str) -> Path:
    return reports_dir / f"{task_id}.csv"


def csv_url(task_id: str) -> str:
    return f"/flask/result/{task_id}.csv"


def csv_accel_redirect(task_id: str) -> str:
    return f"{ACCEL_PREFIX}{task_id}.csv"
