"""The status store: the SQLite result backend as the web app and the task see it.

Celery's database backend owns ``celery_taskmeta`` (state, JSON result, finish
time). Next to it ``iris_jobs`` records what Celery does not: when a job was
submitted, its inputs, how many times a worker has started it (the bound on
redelivery of a job that kills its worker), the job it retries, and who
cancelled it and when. The web app writes both rows in one transaction
*before* publishing, so a queued job is visible and an unknown id is a 404.
``iris_idempotency_keys`` maps a client's Idempotency-Key to its job.

A cancel is a state written here, not a message: REVOKED is a ready state that
no later write replaces (the task, the result backend and ``begin_attempt``
all refuse to), so a cancelled job never ends SUCCESS, whichever worker holds
its message or gets it redelivered.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Generator, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import click
from celery import states
from celery.backends.database.models import Task as CeleryTaskMeta
from celery.backends.database.session import ResultModelBase
from flask import Flask, current_app
from flask.cli import with_appcontext
from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    create_engine,
    delete,
    event,
    insert,
    inspect,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError, OperationalError

TASKMETA: Table = CeleryTaskMeta.__table__
metadata = MetaData()
JOBS = Table(
    "iris_jobs",
    metadata,
    # The integer id orders jobs newest first and is the pagination cursor.
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("task_id", String(36), unique=True, nullable=False),
    Column("submitted_at", DateTime, nullable=False, index=True),
    Column("inputs", Text, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    # Added after the first release: init_schema adds them to an older table.
    Column("retry_of", String(36), nullable=True),
    Column("cancelled_at", DateTime, nullable=True),
    Column("cancelled_by", String(64), nullable=True),
    # A copy of celery_taskmeta.status kept by triggers (see _add_state_copy),
    # so that a page of the list filtered by state is an index range whatever
    # the table's size. Never read as the job's state: that is Celery's row.
    Column("state", String(16), nullable=False, server_default="PENDING"),
    sqlite_autoincrement=True,
)

# The states a job shows through the API, in the order it passes them
# (REVOKED, Celery's name for a cancelled job, ends it instead of the last two).
TASK_STATES = ("PENDING", "STARTED", "PROGRESS", "SUCCESS", "FAILURE", "REVOKED")

# The hot statements, built once with bind parameters: building a statement
# per call cost more CPU than running it (SQLAlchemy caches the compiled form
# and the cache key of a reused statement object).
_SELECT_STATUS = select(
    JOBS.c.id,
    JOBS.c.task_id,
    JOBS.c.submitted_at,
    JOBS.c.attempts,
    JOBS.c.retry_of,
    JOBS.c.cancelled_at,
    JOBS.c.cancelled_by,
    TASKMETA.c.status,
    TASKMETA.c.result,
    TASKMETA.c.date_done,
).select_from(JOBS.outerjoin(TASKMETA, TASKMETA.c.task_id == JOBS.c.task_id))
_GET_STATUS = _SELECT_STATUS.where(JOBS.c.task_id == bindparam("task_id"))
_INSERT_JOB = insert(JOBS)
_INSERT_META = insert(TASKMETA)
_COUNT_ATTEMPT = (
    update(JOBS)
    .where(JOBS.c.task_id == bindparam("job"))
    .values(attempts=JOBS.c.attempts + 1)
    .returning(JOBS.c.attempts, JOBS.c.submitted_at)
)
_MARK_STARTED = (
    update(TASKMETA)
    .where(
        TASKMETA.c.task_id == bindparam("job"),
        TASKMETA.c.status.not_in(states.READY_STATES),
    )
    .values(status="STARTED", date_done=bindparam("now"))
)
# The cancel's first statement is this write, so its transaction takes
# SQLite's write lock at once (see configure_sqlite).
_REVOKE = (
    update(TASKMETA)
    .where(
        TASKMETA.c.task_id == bindparam("job"),
        or_(TASKMETA.c.status.is_(None), TASKMETA.c.status.not_in(states.READY_STATES)),
    )
    .values(status=states.REVOKED, date_done=bindparam("now"))
)
_MARK_CANCELLED = (
    update(JOBS)
    .where(JOBS.c.task_id == bindparam("job"))
    .values(cancelled_at=bindparam("now"), cancelled_by=bindparam("by"))
)
_PURGE_JOBS = (
    delete(JOBS)
    .where(
        JOBS.c.id.in_(
            select(JOBS.c.id)
            .where(JOBS.c.submitted_at < bindparam("cutoff"))
            .order_by(JOBS.c.submitted_at)
            .limit(bindparam("n"))
            .scalar_subquery()
        )
    )
    .returning(JOBS.c.task_id)
)
_PURGE_ORPHANS = delete(TASKMETA).where(
    TASKMETA.c.id.in_(
        select(TASKMETA.c.id)
        .where(
            TASKMETA.c.date_done < bindparam("cutoff"),
            TASKMETA.c.task_id.not_in(select(JOBS.c.task_id)),
        )
        .order_by(TASKMETA.c.date_done)
        .limit(bindparam("n"))
        .scalar_subquery()
    )
)
_GET_STATE = select(TASKMETA.c.status).where(TASKMETA.c.task_id == bindparam("task_id"))
_GET_INPUTS = select(JOBS.c.inputs).where(JOBS.c.task_id == bindparam("task_id"))


def utcnow() -> datetime:
    """Naive UTC, the form SQLite DateTime columns store and return."""
    return datetime.now(UTC).replace(tzinfo=None)


def configure_sqlite(engine: Engine, *, immediate: bool, busy_timeout_ms: int) -> None:
    """WAL, a busy timeout, and (for writers) transactions that take the write lock up front.

    A deferred SQLite transaction that reads and then writes fails at once with
    "database is locked" when another writer got in between, whatever the busy
    timeout; ``BEGIN IMMEDIATE`` waits for the lock instead. Readers keep
    deferred transactions so that status reads never queue behind writers.
    """
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Own the transaction boundaries instead of the sqlite3 module.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        cursor.execute("PRAGMA journal_mode = WAL")
        # Durable at every checkpoint, and safe against corruption in WAL mode.
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def make_engine(url: str, *, immediate: bool, busy_timeout_ms: int) -> Engine:
    engine = create_engine(url, pool_pre_ping=False)
    configure_sqlite(engine, immediate=immediate, busy_timeout_ms=busy_timeout_ms)
    # A pooled connection must never be shared by a forked child (gunicorn,
    # Celery prefork): the child starts with an empty pool of its own.
    os.register_at_fork(after_in_child=lambda: engine.dispose(close=False))
    return engine


def _create_all(engine: Engine) -> None:
    ResultModelBase.metadata.create_all(engine)
    metadata.create_all(engine)
    _add_state_copy(engine)
    _add_missing_columns(engine)


# iris_jobs.state follows celery_taskmeta.status whoever writes it (the web
# app, the task, Celery's backend): an index on it orders by id within a state
# (SQLite appends the rowid to every index key). A job's iris_jobs row is
# inserted before or with its Celery row, so the default covers PENDING.
_STATE_COPY = (
    "CREATE INDEX IF NOT EXISTS ix_iris_jobs_state ON iris_jobs (state)",
    """CREATE TRIGGER IF NOT EXISTS iris_jobs_state_on_insert
       AFTER INSERT ON celery_taskmeta
       WHEN coalesce(NEW.status, 'PENDING') != 'PENDING'
       BEGIN UPDATE iris_jobs SET state = NEW.status WHERE task_id = NEW.task_id; END""",
    """CREATE TRIGGER IF NOT EXISTS iris_jobs_state_on_update
       AFTER UPDATE OF status ON celery_taskmeta
       WHEN NEW.status IS NOT OLD.status
       BEGIN UPDATE iris_jobs SET state = coalesce(NEW.status, 'PENDING')
             WHERE task_id = NEW.task_id; END""",
)
_BACKFILL_STATE = """UPDATE iris_jobs SET state = coalesce(
    (SELECT status FROM celery_taskmeta t WHERE t.task_id = iris_jobs.task_id), 'PENDING')"""


def _add_state_copy(engine: Engine) -> None:
    """Add ``iris_jobs.state``, its index and the triggers that keep it (SQLite only).

    On a database made before the column existed it is added and filled from
    Celery's rows in the same transaction as the triggers, so no state write
    falls between the copy and its triggers.
    """
    if engine.dialect.name != "sqlite":
        return
    with engine.begin() as conn:
        present = {row[1] for row in conn.exec_driver_sql("PRAGMA table_info(iris_jobs)")}
        if "state" not in present:
            conn.exec_driver_sql(
                "ALTER TABLE iris_jobs ADD COLUMN state VARCHAR(16) NOT NULL DEFAULT 'PENDING'"
            )
            conn.exec_driver_sql(_BACKFILL_STATE)
        for statement in _STATE_COPY:
            conn.exec_driver_sql(statement)


def _add_missing_columns(engine: Engine) -> None:
    """Add the columns of ``iris_jobs`` that a database made by an older release lacks.

    ``create_all`` creates missing tables only. The new columns are nullable
    with no default, so ``ALTER TABLE ... ADD COLUMN`` is all a migration
    needs; another process adding the same column first is not an error.
    """
    present = {column["name"] for column in inspect(engine).get_columns(JOBS.name)}
    quote = engine.dialect.identifier_preparer.quote
    for column in JOBS.columns:
        if column.name in present:
            continue
        kind = column.type.compile(dialect=engine.dialect)
        try:
            with engine.begin() as conn:
                conn.exec_driver_sql(
                    f"ALTER TABLE {quote(JOBS.name)} ADD COLUMN {quote(column.name)} {kind}"
                )
        except OperationalError as exc:
            if "duplicate column" not in str(exc):
                raise


def init_schema(engine: Engine) -> None:
    """Create Celery's tables and ours, or add our new columns to an older database;
    safe when several processes race to do it."""
    for attempt in range(5):
        try:
            _create_all(engine)
            return
        except OperationalError as exc:
            if "already exists" not in str(exc) and "locked" not in str(exc):
                raise
            time.sleep(0.05 * (attempt + 1))
    _create_all(engine)


@dataclass(frozen=True)
class Attempt:
    """One start of a job by a worker: its number (1 for the first), the submit time,
    and the job's state once the start is recorded (REVOKED: it was cancelled)."""

    number: int
    submitted_at: datetime
    state: str = "STARTED"


@dataclass(frozen=True)
class JobStatus:
    task_id: str
    state: str
    submitted_at: datetime
    finished_at: datetime | None
    result: Any
    attempts: int
    job_id: int
    retry_of: str | None = None
    cancelled_at: datetime | None = None
    cancelled_by: str | None = None


def _decode(raw: bytes | str | None) -> Any:
    # Celery stores results with the JSON serializer: no unpickling here.
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _status_from_row(row: Any) -> JobStatus:
    state = row.status or "PENDING"
    return JobStatus(
        task_id=row.task_id,
        state=state,
        submitted_at=row.submitted_at,
        finished_at=row.date_done if state in states.READY_STATES else None,
        result=_decode(row.result),
        attempts=row.attempts,
        job_id=row.id,
        retry_of=row.retry_of,
        cancelled_at=row.cancelled_at,
        cancelled_by=row.cancelled_by,
    )


class StatusListener(Protocol):
    """Told of each committed state of a job (status_files.StatusFiles)."""

    def published(self, job: JobStatus) -> None: ...

    def withdrawn(self, task_id: str) -> None: ...


class NoListener:
    """The listener when status files are off: nothing to tell."""

    def published(self, job: JobStatus) -> None:
        pass

    def withdrawn(self, task_id: str) -> None:
        pass


def read_status(conn: Connection, task_id: str) -> JobStatus | None:
    row = conn.execute(_GET_STATUS, {"task_id": task_id}).first()
    return None if row is None else _status_from_row(row)


class StatusStore:
    """All reads and writes of job state, through one pooled engine per process."""

    def __init__(
        self,
        database_url: str,
        busy_timeout_ms: int,
        listener: StatusListener | None = None,
    ) -> None:
        self.engine = make_engine(database_url, immediate=False, busy_timeout_ms=busy_timeout_ms)
        self.listener: StatusListener = listener or NoListener()

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

    def create_pending(
        self,
        task_id: str,
        inputs: dict[str, Any],
        *,
        retry_of: str | None = None,
        idempotency_key: tuple[str, str] | None = None,
    ) -> datetime:
        """Record a job as PENDING; must commit before its message is published.

        ``retry_of`` names the job this one submits again (POST .../retry).
        ``idempotency_key`` (the key, the body's hash) is inserted first, in the
        same transaction: a key already taken raises IntegrityError and nothing
        is recorded (create_pending_with_key).
        """
        now = utcnow()
        job = {
            "task_id": task_id,
            "submitted_at": now,
            "inputs": json.dumps(inputs),
            "attempts": 0,
            "retry_of": retry_of,
        }
        with self._tx() as conn:
            if idempotency_key is not None:
                key, digest = idempotency_key
                claim = {"key": key, "body_sha256": digest, "task_id": task_id}
                conn.execute(_INSERT_KEY, {**claim, "created_at": now, "confirmed_at": None})
            conn.execute(_INSERT_JOB, job)
            conn.execute(_INSERT_META, {"task_id": task_id, "status": "PENDING", "date_done": None})
        self.listener.published(
            JobStatus(task_id, "PENDING", now, None, None, attempts=0, job_id=0, retry_of=retry_of)
        )
        return now

    def create_pending_many(self, jobs: Sequence[tuple[str, dict[str, Any], str | None]]) -> None:
        """Record several jobs (task id, inputs, the job each retries) as PENDING in one
        transaction: the group commit's (group_commit.py). As create_pending, before
        any of their messages is published."""
        now = utcnow()
        job_rows = [
            {
                "task_id": task_id,
                "submitted_at": now,
                "inputs": json.dumps(inputs),
                "attempts": 0,
                "retry_of": retry_of,
            }
            for task_id, inputs, retry_of in jobs
        ]
        meta_rows = [
            {"task_id": task_id, "status": "PENDING", "date_done": None} for task_id, _, _ in jobs
        ]
        with self._tx() as conn:
            conn.execute(_INSERT_JOB, job_rows)
            conn.execute(_INSERT_META, meta_rows)
        for task_id, _, retry_of in jobs:
            self.listener.published(
                JobStatus(task_id, "PENDING", now, None, None, 0, job_id=0, retry_of=retry_of)
            )

    def cancel(self, task_id: str, by: str) -> tuple[JobStatus | None, bool]:
        """Make a job that has not finished REVOKED, recording who cancelled it and when.

        Returns the job as committed (None if unknown) and whether this call
        cancelled it; a finished job (SUCCESS, FAILURE, REVOKED) is left as it is.
        """
        now = utcnow()
        with self._tx() as conn:
            revoked = conn.execute(_REVOKE, {"job": task_id, "now": now}).rowcount > 0
            job = read_status(conn, task_id)
            if not revoked and job is not None and job.state == "PENDING":
                # No Celery row yet (read as PENDING): the job was never started.
                meta = {"task_id": task_id, "status": states.REVOKED, "date_done": now}
                conn.execute(_INSERT_META, meta)
                revoked = True
            if revoked:
                conn.execute(_MARK_CANCELLED, {"job": task_id, "now": now, "by": by})
                job = read_status(conn, task_id)
        if revoked and job is not None:
            self.listener.published(job)
        return job, revoked

    def state_of(self, task_id: str) -> str | None:
        """The job's state alone (None if unknown): the task's check for a cancel."""
        with self.engine.connect() as conn:
            state: str | None = conn.execute(_GET_STATE, {"task_id": task_id}).scalar()
        return state

    def inputs_of(self, task_id: str) -> dict[str, Any] | None:
        """The measurements a job was submitted with (None if unknown or unreadable)."""
        with self.engine.connect() as conn:
            raw = conn.execute(_GET_INPUTS, {"task_id": task_id}).scalar()
        inputs = _decode(raw)
        return inputs if isinstance(inputs, dict) else None

    def discard(self, task_id: str) -> None:
        """Forget a job whose message could not be published (the client got a 503)."""
        self.discard_many([task_id])

    def discard_many(self, task_ids: Sequence[str]) -> None:
        """Forget, in one transaction, the jobs of a batch whose messages were refused."""
        with self._tx() as conn:
            conn.execute(delete(TASKMETA).where(TASKMETA.c.task_id.in_(task_ids)))
            conn.execute(delete(JOBS).where(JOBS.c.task_id.in_(task_ids)))
        for task_id in task_ids:
            self.listener.withdrawn(task_id)

    def get(self, task_id: str) -> JobStatus | None:
        with self.engine.connect() as conn:
            return read_status(conn, task_id)

    def list(
        self, *, limit: int, before: int | None = None, state: str | None = None
    ) -> tuple[list[JobStatus], int | None]:
        """Newest first; returns the page and the cursor for the next one (or None)."""
        query = _SELECT_STATUS.order_by(JOBS.c.id.desc()).limit(limit + 1)
        if before is not None:
            query = query.where(JOBS.c.id < before)
        if state is not None:
            query = query.where(JOBS.c.state == state)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        page = [_status_from_row(r) for r in rows[:limit]]
        cursor = page[-1].job_id if len(rows) > limit else None
        return page, cursor

    def begin_attempt(self, task_id: str) -> Attempt | None:
        """Count one more start of a job and mark it STARTED; None when the job is unknown.

        This is also the job's STARTED write (Celery's ``task_track_started`` is
        off): one transaction instead of two, and no ORM round trip. A finished
        job is never moved back to STARTED; the attempt carries its state, so
        the task sees a cancelled (REVOKED) job and does not run it.
        """
        with self._tx() as conn:
            row = conn.execute(_COUNT_ATTEMPT, {"job": task_id}).first()
            if row is None:
                return None
            conn.execute(_MARK_STARTED, {"job": task_id, "now": utcnow()})
            # Published from the row as committed (a finished job stays finished).
            job = read_status(conn, task_id)
        if job is not None:
            self.listener.published(job)
        state = "STARTED" if job is None else job.state
        return Attempt(number=int(row[0]), submitted_at=row[1], state=state)

    def purge_batches_submitted_before(
        self, cutoff: datetime, batch: int = 500
    ) -> Generator[tuple[str, ...], None, None]:
        """Delete jobs submitted before ``cutoff`` (both tables), ``batch`` at a time.

        Yields the task ids of each batch once committed. Each batch is one
        short transaction that starts with a write (``DELETE ... RETURNING``),
        so it takes SQLite's write lock up front and waits for it under the
        busy timeout; the oldest jobs are found through the submit time's
        index, so a batch costs the same whatever the table's size.
        """
        while True:
            with self._tx() as conn:
                ids = tuple(conn.execute(_PURGE_JOBS, {"cutoff": cutoff, "n": batch}).scalars())
                if ids:
                    conn.execute(delete(TASKMETA).where(TASKMETA.c.task_id.in_(ids)))
            if ids:
                yield ids
            if len(ids) < batch:
                break
        # Rows Celery wrote for ids we never recorded (none in normal operation),
        # found through the finish time's index.
        while True:
            with self._tx() as conn:
                orphans = conn.execute(_PURGE_ORPHANS, {"cutoff": cutoff, "n": batch}).rowcount
            if orphans < batch:
                return

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(select(1))


# ---------------------------------------------------------------------------
# Idempotency keys (issue 14 part B): POST /flask/predict with an
# Idempotency-Key header. A key's row is written in the same transaction as the
# job's PENDING rows, so the primary key lets exactly one concurrent submit of
# a key record a job; the others read the row and answer that job.
# ---------------------------------------------------------------------------

IDEMPOTENCY_KEYS = Table(
    "iris_idempotency_keys",
    metadata,
    Column("key", String(128), primary_key=True),
    # SHA-256 of the validated measurements (idempotency.body_sha256).
    Column("body_sha256", String(64), nullable=False),
    Column("task_id", String(36), nullable=False),
    # The job's submit time: the key expires with the job (retention.purge).
    Column("created_at", DateTime, nullable=False, index=True),
    # Null while the request holding the key has not had the broker's publish
    # confirm: until then the job may still be discarded (a 503), so repeats wait.
    Column("confirmed_at", DateTime, nullable=True),
)
_INSERT_KEY = insert(IDEMPOTENCY_KEYS)
_GET_KEY = select(IDEMPOTENCY_KEYS).where(IDEMPOTENCY_KEYS.c.key == bindparam("key"))


@dataclass(frozen=True)
class IdempotencyKey:
    """The job an Idempotency-Key names, and the body it was first sent with."""

    key: str
    body_sha256: str
    task_id: str
    created_at: datetime
    confirmed_at: datetime | None


def _key_from_row(row: Any) -> IdempotencyKey:
    return IdempotencyKey(row.key, row.body_sha256, row.task_id, row.created_at, row.confirmed_at)


def create_pending_with_key(
    store: StatusStore, task_id: str, inputs: dict[str, Any], key: str, body_sha256: str
) -> IdempotencyKey | None:
    """Record ``key`` and the job as PENDING in one transaction, as create_pending does.

    Returns the key's row: naming ``task_id`` when this call recorded the job,
    another job's id when the key was taken first (then nothing is written), or
    None when the key was taken but freed again before it could be read (the
    request holding it failed). The key's INSERT comes first, so the transaction
    takes SQLite's write lock at once and waits for it under the busy timeout;
    a concurrent claim of the same key then fails on the primary key.
    """
    try:
        now = store.create_pending(task_id, inputs, idempotency_key=(key, body_sha256))
    except IntegrityError:
        return get_idempotency_key(store, key)
    return IdempotencyKey(key, body_sha256, task_id, now, None)


def get_idempotency_key(store: StatusStore, key: str) -> IdempotencyKey | None:
    with store.engine.connect() as conn:
        row = conn.execute(_GET_KEY, {"key": key}).first()
    return None if row is None else _key_from_row(row)


def confirm_idempotency_key(store: StatusStore, key: str, task_id: str) -> None:
    """Mark the key's job as published: repeats may answer it from now on."""
    keys = IDEMPOTENCY_KEYS.c
    with store._tx() as conn:
        conn.execute(
            update(IDEMPOTENCY_KEYS)
            .where(keys.key == key, keys.task_id == task_id)
            .values(confirmed_at=utcnow())
        )


def release_idempotency_key(store: StatusStore, key: str, task_id: str) -> None:
    """Free ``key`` if it still names ``task_id`` (whose publish failed), so a retry can succeed."""
    keys = IDEMPOTENCY_KEYS.c
    with store._tx() as conn:
        conn.execute(delete(IDEMPOTENCY_KEYS).where(keys.key == key, keys.task_id == task_id))


def purge_idempotency_keys_before(store: StatusStore, cutoff: datetime, batch: int = 500) -> int:
    """Delete the keys of jobs submitted before ``cutoff``, ``batch`` per transaction;
    return how many.

    Run before the jobs' purge, so that a key never outlives its job: a repeat
    after the purge records a new job instead of naming a deleted one.
    """
    keys = IDEMPOTENCY_KEYS.c
    oldest = (
        select(keys.key)
        .where(keys.created_at < cutoff)
        .order_by(keys.created_at)
        .limit(batch)
        .scalar_subquery()
    )
    total = 0
    while True:
        with store._tx() as conn:
            deleted = int(
                conn.execute(delete(IDEMPOTENCY_KEYS).where(keys.key.in_(oldest))).rowcount
            )
        total += deleted
        if deleted < batch:
            return total


# ---------------------------------------------------------------------------
# Issue 16: the model registry's table (registry.py reads and writes it).
# ---------------------------------------------------------------------------

MODELS = Table(
    "iris_models",
    metadata,
    # The integer id orders models newest first and is the pagination cursor.
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("version", String(16), unique=True, nullable=False),
    Column("estimator", String(32), nullable=False),
    # TRAINING, READY or FAILED (an artifact that failed its check on load).
    Column("state", String(16), nullable=False),
    # 1 on exactly one READY row: the model new predictions use by default.
    Column("is_default", Integer, nullable=False, default=0),
    Column("created_at", DateTime, nullable=False),
    # The artifact's file name in MODELS_DIR and the SHA-256 of its bytes.
    Column("artifact", String(64), nullable=False),
    Column("artifact_sha256", String(64), nullable=False),
    # The model card (JSON, without raw parameters): estimator parameters,
    # data fingerprint, metrics, training time, library versions.
    Column("card", Text, nullable=False),
    Column("task_id", String(36), nullable=True),
    sqlite_autoincrement=True,
)


@click.command("init-db")
@with_appcontext  # also under app.test_cli_runner(), which does not push one
def init_db_command() -> None:
    """Create the tables (Celery's and ours) in the app's database; existing ones are kept."""
    store: StatusStore = current_app.extensions["iris_store"]
    init_schema(store.engine)
    url = store.engine.url.render_as_string(hide_password=True)
    click.echo(f"initialized the database {url}", err=True)


def init_app(app: Flask) -> None:
    """Register the store's command line (``flask --app iris_service init-db``)."""
    app.cli.add_command(init_db_command)
