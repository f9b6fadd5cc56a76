"""Cost that stays flat as the data grows (issue 12 item 4), on a real SQLite file.

Every statement of the status read, the task list and the retention purge is
run through the store with SQLite's EXPLAIN QUERY PLAN in its place: none may
scan a table or sort in a temporary B-tree (except the first page, which walks
the primary key backwards and stops at the limit). And the work SQLite does for
a page of the list, counted in virtual-machine steps, must not grow with the
number of jobs. The state copy the filtered list uses follows every state write.
"""

from __future__ import annotations

import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, update

from iris_service.retention import MAX_PAUSE_SECONDS, MIN_PAUSE_SECONDS, pause_after, purge
from iris_service.store import (
    JOBS,
    TASKMETA,
    StatusStore,
    init_schema,
    purge_idempotency_keys_before,
    utcnow,
)

from support.samples import SETOSA
from support.settings import make_settings


def _fill(path: Path, jobs: int, state: str = "SUCCESS", first: int = 0) -> None:
    """``jobs`` finished jobs written directly (as bench/seed_jobs.py does, only fewer)."""
    when = (utcnow() - timedelta(days=1)).strftime("%Y-%m-%d %H:%M:%S.%f")
    with sqlite3.connect(path) as conn:
        ids = [str(uuid.UUID(int=first + n + 1, version=4)) for n in range(jobs)]
        conn.executemany(
            "INSERT INTO iris_jobs (task_id, submitted_at, inputs, attempts)"
            " VALUES (?, ?, '{}', 1)",
            [(i, when) for i in ids],
        )
        conn.executemany(
            "INSERT INTO celery_taskmeta (task_id, status, date_done) VALUES (?, ?, ?)",
            [(i, state, when) for i in ids],
        )
    conn.close()


@pytest.fixture
def store(tmp_path: Path) -> StatusStore:
    made = StatusStore(f"sqlite:///{tmp_path / 'results.sqlite'}", 10_000)
    init_schema(made.engine)
    return made


@contextmanager
def explained(engine: Engine) -> Iterator[list[list[str]]]:
    """Run every statement as EXPLAIN QUERY PLAN instead; collect the plans."""
    plans: list[list[str]] = []

    def explain(*args: Any) -> tuple[str, Any]:
        statement, parameters = args[2], args[3]
        if statement.lstrip().upper().startswith(("SELECT", "DELETE", "UPDATE", "INSERT")):
            statement = "EXPLAIN QUERY PLAN " + statement
        return statement, parameters

    def collect(*args: Any) -> None:
        cursor, statement = args[1], args[2]
        if statement.startswith("EXPLAIN QUERY PLAN"):
            plans.append([row[3] for row in cursor.fetchall()])

    event.listen(engine, "before_cursor_execute", explain, retval=True)
    event.listen(engine, "after_cursor_execute", collect)
    try:
        yield plans
    finally:
        event.remove(engine, "before_cursor_execute", explain)
        event.remove(engine, "after_cursor_execute", collect)


def _assert_indexed(plan: list[str]) -> None:
    assert not any("TEMP B-TREE" in step for step in plan), plan
    assert not any(step.startswith("SCAN") for step in plan), plan


def test_status_read_uses_indexes(store: StatusStore) -> None:
    with explained(store.engine) as plans:
        store.get(str(uuid.uuid4()))
    assert plans
    for plan in plans:
        _assert_indexed(plan)


@pytest.mark.parametrize(
    "page",
    [{"before": 1000}, {"state": "FAILURE"}, {"state": "PENDING", "before": 1000}],
)
def test_task_list_pages_use_indexes(store: StatusStore, page: dict[str, Any]) -> None:
    with explained(store.engine) as plans:
        store.list(limit=20, **page)
    assert len(plans) == 1
    _assert_indexed(plans[0])


def test_first_page_walks_the_primary_key_without_sorting(store: StatusStore) -> None:
    with explained(store.engine) as plans:
        store.list(limit=20)
    assert plans[0][0] == "SCAN iris_jobs"  # backwards by rowid, stopped by the LIMIT
    assert not any("TEMP B-TREE" in step for step in plans[0]), plans[0]
    assert not any(step.startswith("SCAN celery_taskmeta") for step in plans[0]), plans[0]


def test_purge_statements_use_indexes(store: StatusStore, tmp_path: Path) -> None:
    _fill(tmp_path / "results.sqlite", 3)
    cutoff = utcnow()
    with explained(store.engine) as plans:
        list(store.purge_batches_submitted_before(cutoff, batch=2))
        purge_idempotency_keys_before(store, cutoff, batch=2)
    assert len(plans) >= 3  # the jobs, the orphans, the keys
    for plan in plans:
        _assert_indexed([step for step in plan if "LIST SUBQUERY" not in step])


def _vm_steps(engine: Engine, run: Callable[[], object]) -> int:
    """SQLite virtual-machine steps (in hundreds) that ``run`` makes on ``engine``."""
    steps = [0]

    def count() -> int:
        steps[0] += 1
        return 0

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.set_progress_handler(count, 100)

    event.listen(engine, "connect", on_connect)
    engine.dispose()  # new connections, with the handler
    try:
        run()
    finally:
        event.remove(engine, "connect", on_connect)
        engine.dispose()
    return steps[0]


def test_a_filtered_page_costs_the_same_for_10_times_the_jobs(
    store: StatusStore, tmp_path: Path
) -> None:
    path = tmp_path / "results.sqlite"

    def pages() -> None:
        store.list(limit=20, state="FAILURE")
        store.list(limit=20, state="PENDING")
        store.list(limit=20)

    _fill(path, 20, state="FAILURE")
    _fill(path, 2_000, first=20)
    small = _vm_steps(store.engine, pages)
    _fill(path, 18_000, first=2_020)
    large = _vm_steps(store.engine, pages)
    # Reading all the rows would be about 10 times the work.
    assert large <= small * 1.5 + 5, (small, large)


def test_the_state_copy_follows_every_state_write(store: StatusStore) -> None:
    task_id = str(uuid.uuid4())
    store.create_pending(task_id, SETOSA)
    assert [j.task_id for j in store.list(limit=5, state="PENDING")[0]] == [task_id]
    store.begin_attempt(task_id)
    assert [j.task_id for j in store.list(limit=5, state="STARTED")[0]] == [task_id]
    with store.engine.begin() as conn:
        meta = TASKMETA.c
        conn.execute(update(TASKMETA).where(meta.task_id == task_id).values(status="SUCCESS"))
    assert store.list(limit=5, state="STARTED")[0] == []
    assert [j.state for j in store.list(limit=5, state="SUCCESS")[0]] == ["SUCCESS"]
    cancelled = str(uuid.uuid4())
    store.create_pending(cancelled, SETOSA)
    store.cancel(cancelled, "me")
    assert [j.task_id for j in store.list(limit=5, state="REVOKED")[0]] == [cancelled]


def test_an_older_database_gets_the_state_copy_filled(tmp_path: Path) -> None:
    path = tmp_path / "results.sqlite"
    made = StatusStore(f"sqlite:///{path}", 10_000)
    init_schema(made.engine)
    _fill(path, 3, state="FAILURE")
    with sqlite3.connect(path) as conn:  # as a release without the copy left it
        conn.execute("DROP INDEX ix_iris_jobs_state")
        conn.execute("DROP TRIGGER iris_jobs_state_on_insert")
        conn.execute("DROP TRIGGER iris_jobs_state_on_update")
        conn.execute("ALTER TABLE iris_jobs DROP COLUMN state")
    conn.close()
    made.engine.dispose()
    init_schema(made.engine)
    assert len(made.list(limit=5, state="FAILURE")[0]) == 3
    assert made.list(limit=5, state="PENDING")[0] == []


@pytest.mark.parametrize(
    ("took", "pause"),
    [(0.0, MIN_PAUSE_SECONDS), (0.02, 0.02), (10.0, MAX_PAUSE_SECONDS)],
)
def test_the_purge_waits_as_long_as_a_batch_took_within_bounds(took: float, pause: float) -> None:
    assert pause_after(took) == pause


def test_the_purge_deletes_in_bounded_batches(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, retention_seconds=60)
    made = StatusStore(settings.database_url, 10_000)
    init_schema(made.engine)
    _fill(tmp_path / "results.sqlite", 23)
    settings.reports_dir.mkdir(parents=True, exist_ok=True)
    fresh = str(uuid.uuid4())
    made.create_pending(fresh, SETOSA)
    sizes: list[int] = []
    real = made.purge_batches_submitted_before

    def recorded(cutoff: Any, batch: int = 500) -> Any:
        for ids in real(cutoff, batch):
            sizes.append(len(ids))
            yield ids

    made.purge_batches_submitted_before = recorded  # type: ignore[method-assign]
    report = purge(settings, made, batch=5)
    assert sizes == [5, 5, 5, 5, 3]
    assert report.rows == 23
    assert [j.task_id for j in made.list(limit=50)[0]] == [fresh]


def test_a_stopped_purge_ends_between_batches(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, retention_seconds=60)
    made = StatusStore(settings.database_url, 10_000)
    init_schema(made.engine)
    _fill(tmp_path / "results.sqlite", 12)
    stop = threading.Event()
    stop.set()
    assert purge(settings, made, batch=5, stop=stop).rows == 5
    with made.engine.connect() as conn:
        assert len(conn.execute(JOBS.select()).all()) == 7
