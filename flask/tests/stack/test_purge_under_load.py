"""The retention purge of many expired jobs goes in bounded batches while submits go on.

20,000 expired jobs (and a few of their PDFs) are written straight into a
private stack's database; the worker's purge (every second here) deletes them
while clients submit. The expired count is seen strictly between "all" and
"none", which only committed batches can show (one big transaction would go
from all to none at once); a job submitted then finishes before the purge
does (a purge run in the worker's event loop held every job until its end);
every submit is accepted, every job finishes, and no log ever shows
"database is locked".
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from support.faults import db, wait_until, worker_log_lines
from support.samples import SETOSA, VIRGINICA
from support.stack import Stack, running_stack

pytestmark = pytest.mark.stack

EXPIRED = 50_000
WITH_PDF = 20
SUBMITS = 40


@pytest.fixture(scope="module")
def purging() -> Iterator[Stack]:
    with running_stack(
        {"RESULT_RETENTION_SECONDS": "3600", "RESULT_CLEANUP_INTERVAL_SECONDS": "1"}
    ) as stack:
        yield stack


def _expired_count(stack: Stack) -> int:
    with db(stack) as conn:
        count: int = conn.execute(
            "SELECT count(*) FROM iris_jobs WHERE submitted_at < datetime('now', '-1 hour')"
        ).fetchone()[0]
    conn.close()
    return count


def test_purge_of_many_jobs_goes_in_batches_while_submits_go_on(purging: Stack) -> None:
    ids = [str(uuid.uuid4()) for _ in range(EXPIRED)]
    # The files first: the purge may begin as soon as the rows are committed.
    pdfs = [purging.reports_dir / f"{task_id}.pdf" for task_id in ids[:: EXPIRED // WITH_PDF]]
    for pdf in pdfs:
        pdf.write_bytes(b"%PDF-expired")
    with db(purging) as conn:
        conn.executemany(
            "INSERT INTO iris_jobs (task_id, submitted_at, inputs, attempts)"
            " VALUES (?, datetime('now', '-2 hours'), '{}', 1)",
            [(i,) for i in ids],
        )
        conn.executemany(
            "INSERT INTO celery_taskmeta (task_id, status, date_done)"
            " VALUES (?, 'SUCCESS', datetime('now', '-2 hours'))",
            [(i,) for i in ids],
        )
    conn.close()

    # The purge has begun and committed some batches, not all.
    seen = {EXPIRED}
    wait_until(lambda: seen.add(_expired_count(purging)) or len(seen) > 1, 120, "the purge", 0.005)
    assert min(seen) > 0, sorted(seen)

    # A job submitted now runs while the purge goes on: the purge does not hold
    # the worker's event loop (nor SQLite's write lock) until it is done.
    first = purging.submit(SETOSA)["task_id"]
    assert purging.wait_done(first, timeout=120)["state"] == "SUCCESS"
    assert _expired_count(purging) > 0

    def submit(n: int) -> requests.Response:
        sample = SETOSA if n % 2 else VIRGINICA
        return requests.post(f"{purging.base_url}/flask/predict", json=sample, timeout=60)

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(submit, range(SUBMITS)))
    assert [r.status_code for r in answers] == [202] * SUBMITS, [
        r.text for r in answers if r.status_code != 202
    ]
    # The purge logs its total once its last batch's files are gone too.
    done = f"retention: deleted {EXPIRED} jobs"
    wait_until(lambda: done in "\n".join(worker_log_lines(purging)), 600, "the end of the purge")
    assert _expired_count(purging) == 0
    assert not any(pdf.exists() for pdf in pdfs)
    for r in answers:
        assert purging.wait_done(r.json()["task_id"], timeout=120)["state"] == "SUCCESS"
    assert "database is locked" not in "\n".join(worker_log_lines(purging))
