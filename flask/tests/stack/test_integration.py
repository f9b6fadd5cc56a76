"""The pipeline on real services: the app publishes to a real RabbitMQ node, a real
Celery worker process runs the job, and the SQLite backend holds the outcome."""

from __future__ import annotations

import time

import pytest

from iris_service import create_app

from support.faults import job_row
from support.samples import SETOSA, VERSICOLOR, VIRGINICA
from support.stack import Stack

pytestmark = pytest.mark.stack


@pytest.mark.parametrize(
    ("features", "species"),
    [(SETOSA, "setosa"), (VERSICOLOR, "versicolor"), (VIRGINICA, "virginica")],
)
def test_submit_reaches_success_with_pdf(
    stack: Stack, features: dict[str, float], species: str
) -> None:
    app = create_app({"TESTING": True}, settings=stack.settings())
    client = app.test_client()
    r = client.post("/flask/predict", json=features)
    assert r.status_code == 202, r.get_json()
    task_id = r.get_json()["task_id"]

    deadline = time.monotonic() + 30
    while (body := client.get(f"/flask/status/{task_id}").get_json())["state"] != "SUCCESS":
        assert body["state"] in ("PENDING", "STARTED", "PROGRESS"), body
        assert time.monotonic() < deadline, body
        time.sleep(0.02)

    assert body["result"]["label"] == species
    assert body["result"]["report_url"] == f"/flask/result/{task_id}.pdf"
    assert body["finished_at"] >= body["submitted_at"]
    pdf = stack.reports_dir / f"{task_id}.pdf"
    assert pdf.read_bytes().startswith(b"%PDF-")

    row = job_row(stack, task_id)
    result = row["result"]
    assert row["state"] == "SUCCESS"
    assert result["report_path"] == f"reports/{task_id}.pdf"
    assert result["label"] == species
    assert result["model_version"] == app.test_client().get("/flask/model").get_json()["version"]
