"""Celery's database result backend, with each state write as one SQL statement.

The stock ``DatabaseBackend`` writes a state through the ORM: a SELECT, a
locking re-SELECT, an UPDATE and a commit, and a job writes three states; that
was over half of a job's time in the worker (docs/performance.md). This
subclass keeps the same table, the same JSON encoding and the same rule
(nothing overwrites SUCCESS; here nothing overwrites a cancel either), and
does it in one UPDATE (an INSERT only for a job the web app never recorded).
Reads are inherited unchanged. The same transaction reads the row back, and
the job's status file is written from it once committed (status_files.py).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from celery import states
from celery.backends.database import DatabaseBackend
from kombu.utils.encoding import ensure_bytes
from sqlalchemy import BindParameter, Engine, bindparam, insert, select, update

from . import job_ends
from .status_files import StatusFiles
from .store import TASKMETA, NoListener, StatusListener, make_engine, read_status

# Built once (see store.py): the bind names differ from the columns they set.
_NEW_VALUES: dict[str, BindParameter[Any]] = {
    "status": bindparam("new_status"),
    "result": bindparam("new_result"),
    "traceback": bindparam("new_traceback"),
    "date_done": bindparam("new_date_done"),
}
# SUCCESS is final, and so is a cancel (REVOKED): a worker that held the job's
# message when it was cancelled, or got it redelivered, writes nothing over it.
# A FAILURE may still become SUCCESS (a redelivered job that then succeeds).
_UPDATE_STATE = (
    update(TASKMETA)
    .where(
        TASKMETA.c.task_id == bindparam("job"),
        TASKMETA.c.status.not_in((states.SUCCESS, states.REVOKED)),
    )
    .values(_NEW_VALUES)
)
# Celery writes REVOKED itself when a worker drops a message it was told to
# revoke: that never replaces a finished job's state, nor the time and author
# of the API's cancel (the row is already REVOKED then, and left alone).
_UPDATE_REVOKED = (
    update(TASKMETA)
    .where(
        TASKMETA.c.task_id == bindparam("job"),
        TASKMETA.c.status.not_in(states.READY_STATES),
    )
    .values(_NEW_VALUES)
)
log = logging.getLogger(__name__)

# The key of a successful job's result that holds its completion time: the
# report prints it and this backend records it as the row's finish time, so a
# job has one completion time wherever it is shown.
COMPLETED_AT = "completed_at"

_FIND = select(TASKMETA.c.id).where(TASKMETA.c.task_id == bindparam("job"))


class SQLResultBackend(DatabaseBackend):  # type: ignore[misc]
    """``result_backend = "iris_service.result_backend:SQLResultBackend+<SQLAlchemy URL>"``."""

    _engine: Engine | None = None
    _listener: StatusListener = NoListener()

    def _writer(self) -> Engine:
        # One pooled engine per process, rebuilt empty in forked children
        # (make_engine registers the dispose-after-fork hook).
        if self._engine is None:
            busy = self.app.conf["iris_sqlite_busy_timeout_ms"]
            self._engine = make_engine(self.url, immediate=True, busy_timeout_ms=busy)
            folder = self.app.conf.get("iris_status_dir")
            self._listener = NoListener() if folder is None else StatusFiles(Path(folder))
        return self._engine

    def _store_result(
        self,
        task_id: str,
        result: Any,
        state: str,
        traceback: str | None = None,
        request: Any = None,
        **kwargs: Any,
    ) -> None:
        if state == states.RETRY:
            # Celery writes RETRY when it gives a running job back to the
            # queue (a lost broker connection, an autoretry). The message is
            # redelivered and its next start writes STARTED; RETRY is not a
            # state of this API, so it is never recorded for clients to see.
            log.info("job %s goes back to the queue; its state stays as it was", task_id)
            return
        meta = self._get_result_meta(
            result=ensure_bytes(self.encode(result)),  # type: ignore[no-untyped-call]
            state=state,
            traceback=traceback,
            request=request,
            format_date=False,
            encode=True,
        )
        values = {
            "status": state,
            "result": meta["result"],
            "traceback": meta["traceback"],
            "date_done": _completed_at(result, state) or meta["date_done"],
        }
        with self._writer().begin() as conn:
            statement = _UPDATE_REVOKED if state == states.REVOKED else _UPDATE_STATE
            updated = conn.execute(
                statement, {"job": task_id, **{f"new_{k}": v for k, v in values.items()}}
            ).rowcount
            if not updated and conn.execute(_FIND, {"job": task_id}).first() is None:
                conn.execute(insert(TASKMETA).values(task_id=task_id, **values))
            # The row as committed: a SUCCESS or REVOKED this write did not overwrite stays.
            job = read_status(conn, task_id)
        if job is not None:
            self._listener.published(job)
            if job_ends.is_final(job):  # committed: the waits on it may answer (?wait=)
                job_ends.announce(self.app, task_id)


def _completed_at(result: Any, state: str) -> datetime | None:
    """The completion time a successful task put in its result (naive UTC), if any."""
    if state != states.SUCCESS or not isinstance(result, dict):
        return None
    try:
        when = datetime.fromisoformat(str(result[COMPLETED_AT]))
    except (KeyError, ValueError):
        return None
    return when.astimezone(UTC).replace(tzinfo=None) if when.tzinfo else when
