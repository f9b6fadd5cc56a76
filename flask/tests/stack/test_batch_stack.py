"""Batch predictions (issue 16) on a private stack, through nginx: a 10,000-row batch
end to end (its CSV and PDF sent by nginx), refused CSVs that queue nothing, and a
worker killed mid-batch (testhooks.KILL_MID_BATCH_SEPAL_LENGTH on the first row:
the first attempt's pool process dies after its first chunk)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from iris_service.batch_jobs import CHUNK_ROWS
from iris_service.testhooks import KILL_MID_BATCH_SEPAL_LENGTH
from iris_service.training_request import MAX_BATCH_ROWS

from support.faults import db, job_row, reports_for
from support.stack import Stack, running_stack

pytestmark = pytest.mark.stack

HEADER = "sepal_length,sepal_width,petal_length,petal_width"
# One flower of each species, cycled through the rows.
FLOWERS = ("5.1,3.5,1.4,0.2", "6.4,3.2,4.5,1.5", "6.3,3.3,6.0,2.5")


def batch_csv(rows: int, first: str | None = None) -> bytes:
    lines = [FLOWERS[i % len(FLOWERS)] for i in range(rows)]
    if first is not None:
        lines[0] = first
    return "\n".join([HEADER, *lines, ""]).encode()


@pytest.fixture(scope="module")
def hooked() -> Iterator[Stack]:
    with running_stack({"IRIS_TEST_HOOKS": "1"}) as stack:
        yield stack


def post_batch(stack: Stack, body: bytes, content_type: str = "text/csv") -> requests.Response:
    return requests.post(
        f"{stack.base_url}/flask/batch",
        data=body,
        headers={"Content-Type": content_type},
        timeout=60,
    )


def result_rows(stack: Stack, task_id: str) -> list[dict[str, Any]]:
    r = requests.get(f"{stack.base_url}/flask/result/{task_id}.csv", timeout=30)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/csv")
    assert f"iris-batch-{task_id}.csv" in r.headers["Content-Disposition"]
    return list(csv.DictReader(io.StringIO(r.text)))


def test_a_batch_of_ten_thousand_rows_end_to_end(hooked: Stack) -> None:
    r = post_batch(hooked, batch_csv(MAX_BATCH_ROWS))
    assert r.status_code == 202, r.text
    accepted = r.json()
    task_id = accepted["task_id"]
    assert accepted["rows"] == MAX_BATCH_ROWS
    done = hooked.wait_done(task_id, timeout=300)
    assert done["state"] == "SUCCESS", done
    result = done["result"]
    assert result["rows"] == MAX_BATCH_ROWS
    assert result["model_version"] == accepted["model_version"]
    third = MAX_BATCH_ROWS // 3
    assert result["counts"] == {"setosa": third + 1, "versicolor": third, "virginica": third}

    rows = result_rows(hooked, task_id)
    assert len(rows) == MAX_BATCH_ROWS
    assert [row["label"] for row in rows[:3]] == ["setosa", "versicolor", "virginica"]
    assert abs(sum(float(v) for k, v in rows[0].items() if k.startswith("probability_")) - 1) < 1e-4

    pdf = requests.get(f"{hooked.base_url}{accepted['report_url']}", timeout=30)
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")


@pytest.mark.parametrize(
    ("body", "content_type", "status", "expected"),
    [
        (b"sepal_length,sepal_width\n1,2\n", "text/csv", 400, "is missing"),
        (batch_csv(3, "5.1,3.5,abc,0.2"), "text/csv", 400, "must be a number"),
        (batch_csv(MAX_BATCH_ROWS + 1), "text/csv", 400, "at most 10000 rows"),
        (b"x" * (10 * 1024 * 1024 + 1), "text/csv", 413, "too large"),
        (b"{}", "application/json", 415, "text/csv"),
    ],
    ids=["missing-column", "not-a-number", "too-many-rows", "too-large", "json"],
)
def test_refused_batches_queue_nothing(
    hooked: Stack, body: bytes, content_type: str, status: int, expected: str
) -> None:
    with db(hooked) as conn:
        before = conn.execute("SELECT count(*) FROM iris_jobs").fetchone()[0]
    r = post_batch(hooked, body, content_type)
    assert r.status_code == status, r.text
    assert expected in r.text
    with db(hooked) as conn:
        assert conn.execute("SELECT count(*) FROM iris_jobs").fetchone()[0] == before


def test_a_worker_killed_mid_batch_leaves_no_half_csv_and_the_job_is_redelivered(
    hooked: Stack,
) -> None:
    rows = 3 * CHUNK_ROWS
    first = f"{KILL_MID_BATCH_SEPAL_LENGTH},3.5,1.4,0.2"
    r = post_batch(hooked, batch_csv(rows, first))
    assert r.status_code == 202, r.text
    task_id = r.json()["task_id"]
    done = hooked.wait_done(task_id, timeout=180)
    # The first run died after its first chunk; the redelivered run did it all.
    assert done["state"] == "SUCCESS", done
    assert job_row(hooked, task_id)["attempts"] == 2
    assert len(result_rows(hooked, task_id)) == rows
    # Only the finished files: no temporary file of the killed run.
    assert reports_for(hooked, task_id) == [f"{task_id}.csv", f"{task_id}.pdf"]
