"""Fill a result backend with N finished jobs, fast: bulk INSERTs into the real schema.

For the scale benchmark (``bench/scale_bench.py``): running five million jobs
would take a day, writing their rows takes minutes. The schema is the service's
own (``store.init_schema``, migrations included); the rows are what finished
jobs leave: a mix of SUCCESS (with label, probabilities and report path),
FAILURE (with the error and traceback) and REVOKED (with who cancelled), ids in
submit order, submit times spread evenly over the retention window, and the
first ``--expired`` of them older than the retention, for the purge to delete.
Every ``--pdf-every``-th job gets a real PDF file (a copy of ``--pdf``), so the
purge also deletes files without filling the disk with millions of them.

    .venv/bin/python bench/seed_jobs.py --database /tmp/big.sqlite --jobs 5000000
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "flask" / "src"))
from iris_service.store import JOBS, TASKMETA, init_schema, make_engine  # noqa: E402

# The share of each final state among the seeded jobs (the rest SUCCESS).
FAILURE_SHARE = 0.02
REVOKED_SHARE = 0.02
LABELS = ("setosa", "versicolor", "virginica")
MODEL_VERSION = "7374c733a009b9bb"
CHUNK = 20_000
# SQLAlchemy's DateTime text in SQLite: the strings the service compares and sorts.
SQL_TIME = "%Y-%m-%d %H:%M:%S.%f"
JOB_COLUMNS = ("task_id", "submitted_at", "inputs", "attempts", "retry_of", "cancelled_at",
               "cancelled_by")  # fmt: skip
META_COLUMNS = ("task_id", "status", "result", "date_done", "traceback")
FAILURE_RESULT = (
    b'{"exc_type": "PoisonJobError", "exc_message": ["gave up after 3 attempts: the worker'
    b' died each time it ran this job"], "exc_module": "iris_service.tasks"}'
)
FAILURE_TRACEBACK = "Traceback (most recent call last):\n  ...\nPoisonJobError: gave up"


@dataclass(frozen=True)
class SeedReport:
    jobs: int
    expired: int
    pdfs: int
    seconds: float
    database_bytes: int


def _insert_sql(table_name: str, columns: tuple[str, ...], known: set[str]) -> str:
    missing = set(columns) - known
    if missing:  # the schema changed: fail here rather than write half a row
        raise SystemExit(f"{table_name} has no column {sorted(missing)}")
    marks = ", ".join("?" * len(columns))
    return f"INSERT INTO {table_name} ({', '.join(columns)}) VALUES ({marks})"  # noqa: S608


def _rows(
    rng: random.Random, index: int, submitted: datetime
) -> tuple[tuple[object, ...], tuple[object, ...]]:
    task_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    done = submitted + timedelta(milliseconds=12 + rng.random() * 40)
    inputs = (
        f'{{"sepal_length": {4.3 + rng.random() * 3.6:.1f}, "sepal_width": '
        f'{2.0 + rng.random() * 2.4:.1f}, "petal_length": {1.0 + rng.random() * 5.9:.1f}, '
        f'"petal_width": {0.1 + rng.random() * 2.4:.1f}}}'
    )
    submitted_text, done_text = submitted.strftime(SQL_TIME), done.strftime(SQL_TIME)
    draw = rng.random()
    job: tuple[object, ...]
    if draw < FAILURE_SHARE:
        job = (task_id, submitted_text, inputs, 3, None, None, None)
        return job, (task_id, "FAILURE", FAILURE_RESULT, done_text, FAILURE_TRACEBACK)
    if draw < FAILURE_SHARE + REVOKED_SHARE:
        job = (task_id, submitted_text, inputs, index % 2, None, done_text, "seed")
        return job, (task_id, "REVOKED", None, done_text, None)
    label = LABELS[index % 3]
    p = round(0.9 + rng.random() * 0.1, 3)
    rest = round((1 - p) / 2, 3)
    probabilities = ", ".join(f'"{name}": {p if name == label else rest}' for name in LABELS)
    result = (
        f'{{"label": "{label}", "probabilities": {{{probabilities}}}, "model_version": '
        f'"{MODEL_VERSION}", "report_path": "{task_id}.pdf", '
        f'"completed_at": "{done.isoformat()}+00:00"}}'
    ).encode()
    job = (task_id, submitted_text, inputs, 1, None, None, None)
    return job, (task_id, "SUCCESS", result, done_text, None)


def seed(
    database: Path,
    jobs: int,
    *,
    expired: int = 0,
    retention_seconds: int = 7 * 24 * 3600,
    reports_dir: Path | None = None,
    pdf: bytes | None = None,
    pdf_every: int = 1000,
    random_seed: int = 12,
) -> SeedReport:
    """Add ``jobs`` finished jobs to the database (created if need be); return what it took.

    The first ``expired`` are submitted 1 to 30 days before the retention
    ends, the others spread over the last retention period but its final hour
    (so that the service's own new jobs stay the newest). Safe while a stack
    uses the file: chunks are short transactions in its WAL.
    """
    started = time.monotonic()
    engine = make_engine(f"sqlite:///{database}", immediate=True, busy_timeout_ms=60_000)
    init_schema(engine)
    engine.dispose()
    conn = sqlite3.connect(database, timeout=60, isolation_level=None)
    conn.execute("PRAGMA synchronous = OFF")  # a benchmark's fixture: speed over durability
    conn.execute("PRAGMA cache_size = -262144")  # 256 MiB: the random task_id indexes
    known_jobs = {c.name for c in JOBS.columns}
    known_meta = {c.name for c in TASKMETA.columns}
    insert_job = _insert_sql(JOBS.name, JOB_COLUMNS, known_jobs)
    insert_meta = _insert_sql(TASKMETA.name, META_COLUMNS, known_meta)
    rng = random.Random(random_seed)  # noqa: S311 (test data, not secrets)
    now = datetime.now(UTC).replace(tzinfo=None)
    retention = timedelta(seconds=retention_seconds)
    old_start, old_end = (
        now - retention - timedelta(days=30),
        now - retention - timedelta(days=1),
    )
    new_start, new_end = now - retention + timedelta(hours=1), now - timedelta(hours=1)
    pdfs = 0
    for first in range(0, jobs, CHUNK):
        job_rows, meta_rows = [], []
        for index in range(first, min(jobs, first + CHUNK)):
            if index < expired:
                submitted = old_start + (old_end - old_start) * (index / max(1, expired))
            else:
                share = (index - expired) / max(1, jobs - expired)
                submitted = new_start + (new_end - new_start) * share
            job, meta = _rows(rng, index, submitted)
            job_rows.append(job)
            meta_rows.append(meta)
            wants_pdf = reports_dir is not None and pdf is not None and index % pdf_every == 0
            if wants_pdf and meta[1] == "SUCCESS":
                (reports_dir / f"{job[0]}.pdf").write_bytes(pdf)  # type: ignore[operator,arg-type]
                pdfs += 1
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(insert_job, job_rows)
        conn.executemany(insert_meta, meta_rows)
        conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return SeedReport(
        jobs=jobs,
        expired=min(expired, jobs),
        pdfs=pdfs,
        seconds=round(time.monotonic() - started, 1),
        database_bytes=database.stat().st_size,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", type=Path, required=True, help="SQLite file (created)")
    parser.add_argument("--jobs", type=int, default=5_000_000)
    parser.add_argument("--expired", type=int, default=0, help="how many are past the retention")
    parser.add_argument("--retention-seconds", type=int, default=7 * 24 * 3600)
    parser.add_argument("--reports-dir", type=Path, help="write sparse PDF files here")
    parser.add_argument("--pdf", type=Path, help="the PDF to copy (a real report)")
    parser.add_argument("--pdf-every", type=int, default=1000)
    args = parser.parse_args()
    report = seed(
        args.database,
        args.jobs,
        expired=args.expired,
        retention_seconds=args.retention_seconds,
        reports_dir=args.reports_dir,
        pdf=args.pdf.read_bytes() if args.pdf else None,
        pdf_every=args.pdf_every,
    )
    print(report)


if __name__ == "__main__":
    main()
