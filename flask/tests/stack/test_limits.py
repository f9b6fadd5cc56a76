"""Settings a default local stack does not have, on one private stack: result
retention with a fast purge, the nginx submit rate limit, and the /flask/tasks token."""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from support.faults import db, wait_until
from support.samples import SETOSA, VIRGINICA
from support.stack import Stack, running_stack

pytestmark = pytest.mark.stack

TOKEN = secrets.token_urlsafe(16)


@pytest.fixture(scope="module")
def limited() -> Iterator[Stack]:
    with running_stack(
        {
            "SUBMIT_RATE_LIMIT": "2r/s",
            "SUBMIT_RATE_BURST": "4",
            "RESULT_RETENTION_SECONDS": "3600",
            "RESULT_CLEANUP_INTERVAL_SECONDS": "1",
            "TASKS_API_TOKEN": TOKEN,
        }
    ) as stack:
        yield stack


def _rows(stack: Stack, task_id: str) -> tuple[int, int]:
    with db(stack) as conn:
        jobs = conn.execute("SELECT count(*) FROM iris_jobs WHERE task_id = ?", (task_id,))
        n_jobs = jobs.fetchone()[0]
        meta = conn.execute("SELECT count(*) FROM celery_taskmeta WHERE task_id = ?", (task_id,))
        return n_jobs, meta.fetchone()[0]


def test_retention_deletes_old_rows_and_pdfs_together(limited: Stack) -> None:
    old = [limited.submit(SETOSA)["task_id"] for _ in range(2)]
    fresh = limited.submit(VIRGINICA)["task_id"]
    for task_id in [*old, fresh]:
        assert limited.wait_done(task_id, timeout=60)["state"] == "SUCCESS"
        assert (limited.reports_dir / f"{task_id}.pdf").is_file()

    # Age two jobs past the retention (an hour) as if they had been submitted
    # two hours ago; and leave behind what a crash could: a stale report whose
    # row is gone, and a temporary file of a killed job.
    two_hours_ago = time.time() - 7200
    stray_pdf = limited.reports_dir / "00000000-0000-4000-8000-000000000000.pdf"
    stray_tmp = limited.reports_dir / ".00000000-0000-4000-8000-000000000001.pdf.abc.tmp"
    for stray in (stray_pdf, stray_tmp):
        stray.write_bytes(b"%PDF-stale")
        os.utime(stray, (two_hours_ago, two_hours_ago))
    with db(limited) as conn:
        marks = ",".join("?" * len(old))
        conn.execute(
            "UPDATE iris_jobs SET submitted_at = datetime('now', '-2 hours')"
            f" WHERE task_id IN ({marks})",
            old,
        )
        conn.execute(
            "UPDATE celery_taskmeta SET date_done = datetime('now', '-2 hours')"
            f" WHERE task_id IN ({marks})",
            old,
        )

    def purged() -> bool:
        return all(
            _rows(limited, t) == (0, 0) and not (limited.reports_dir / f"{t}.pdf").exists()
            for t in old
        ) and not (stray_pdf.exists() or stray_tmp.exists())

    wait_until(purged, 60, "the purge of the old jobs")
    for task_id in old:
        assert (
            requests.get(f"{limited.base_url}/flask/status/{task_id}", timeout=10).status_code
            == 404
        )
    # The fresh job is untouched: its rows, its PDF, its download.
    assert _rows(limited, fresh) == (1, 1)
    assert (limited.reports_dir / f"{fresh}.pdf").is_file()
    r = requests.get(f"{limited.base_url}/flask/result/{fresh}.pdf", timeout=10)
    assert r.status_code == 200
    assert r.content.startswith(b"%PDF-")


def test_rate_limit_answers_429_json(limited: Stack) -> None:
    time.sleep(3)  # let earlier submits' allowance refill (2 per second)

    def submit(_: int) -> requests.Response:
        return requests.post(f"{limited.base_url}/flask/predict", json=SETOSA, timeout=30)

    # All at once, so the count does not depend on how fast the machine is.
    with ThreadPoolExecutor(15) as pool:
        answers = list(pool.map(submit, range(15)))
    codes = [r.status_code for r in answers]
    assert set(codes) == {202, 429}, codes
    for r in answers:
        if r.status_code == 429:
            assert r.headers["Content-Type"] == "application/json"
            assert r.headers["Retry-After"] == "1"
            assert "too many submits" in r.json()["error"]
    # Reads are never limited: only submits count.
    task_id = next(r for r in answers if r.status_code == 202).json()["task_id"]
    reads = [
        requests.get(f"{limited.base_url}/flask/status/{task_id}", timeout=30).status_code
        for _ in range(30)
    ]
    assert set(reads) == {200}


def test_tasks_requires_the_token_when_set(limited: Stack) -> None:
    url = f"{limited.base_url}/flask/tasks"
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
        r = requests.get(url, headers=headers, timeout=10)
        assert r.status_code == 401, headers
        assert "API token" in r.json()["error"]
    r = requests.get(url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert r.status_code == 200
    assert isinstance(r.json()["tasks"], list)
    # Only the listing is restricted: health and the model card stay open.
    assert requests.get(f"{limited.base_url}/flask/model", timeout=10).status_code == 200
