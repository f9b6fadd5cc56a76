"""Batch predictions (issue 16), in process: the CSV check, the submit, the task run
with a stand-in for Celery's task, and the result CSV and PDF it writes."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from pypdf import PdfReader

from iris_service import batch_jobs, reports
from iris_service.training import builtin_data
from iris_service.training_request import MAX_BATCH_ROWS

from support.models import register_forest, registry_of
from support.tasks import FakeTask

HEADER = "sepal_length,sepal_width,petal_length,petal_width\n"


def measurements(rows: int) -> bytes:
    """``rows`` rows of the iris measurements, cycling through the built-in set."""
    data = builtin_data().x
    lines = [",".join(repr(v) for v in data[i % len(data)]) for i in range(rows)]
    return (HEADER + "\n".join(lines) + "\n").encode()


@pytest.fixture
def published(app: Flask, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []
    monkeypatch.setattr(
        app.extensions["celery"], "send_task", lambda name, **kw: sent.append({"name": name, **kw})
    )
    return sent


def post_csv(client: FlaskClient, body: bytes, **query: str) -> Any:
    return client.post("/flask/batch", data=body, content_type="text/csv", query_string=query)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (
            b"",
            {
                "row": None,
                "column": None,
                "message": "the file is empty; the first line must name the columns",
            },
        ),
        (HEADER.encode(), {"row": None, "column": None, "message": "the file has no data rows"}),
        (
            HEADER.encode() + b"5.1,3.5,abc,0.2\n",
            {"row": 2, "column": "petal_length", "message": "must be a number"},
        ),
        (
            HEADER.encode() + b"5.1,3.5,1.4\n",
            {"row": 2, "column": None, "message": "has 3 fields; the header has 4"},
        ),
        (
            b"sepal_length,sepal_width,petal_length\n1,2,3\n",
            {"row": 1, "column": "petal_width", "message": "is missing"},
        ),
    ],
    ids=["empty", "no-rows", "not-a-number", "short-row", "missing-column"],
)
def test_bad_csv_is_a_400_naming_row_and_column_and_queues_nothing(
    client: FlaskClient, published: list[dict[str, Any]], body: bytes, problem: dict[str, Any]
) -> None:
    r = post_csv(client, body)
    assert r.status_code == 400, r.get_data(as_text=True)
    assert r.get_json()["problems"][0] == problem
    assert published == []


def test_over_the_row_limit_is_a_400(client: FlaskClient, published: list[dict[str, Any]]) -> None:
    assert post_csv(client, measurements(MAX_BATCH_ROWS)).status_code == 202
    r = post_csv(client, measurements(MAX_BATCH_ROWS + 1))
    assert r.status_code == 400
    assert r.get_json()["problems"] == [
        {
            "row": MAX_BATCH_ROWS + 2,
            "column": None,
            "message": "is one row too many: at most 10000 rows",
        }
    ]
    assert len(published) == 1


def test_other_content_types_and_versions_are_refused(
    client: FlaskClient, published: list[dict[str, Any]]
) -> None:
    assert client.post("/flask/batch", json={"rows": []}).status_code == 415
    assert post_csv(client, measurements(3), model_version="nope").status_code == 400
    assert post_csv(client, measurements(3), model_version="0123456789abcdef").status_code == 400
    assert published == []


def test_a_batch_runs_in_chunks_and_writes_its_csv_and_report(
    app: Flask, client: FlaskClient, published: list[dict[str, Any]]
) -> None:
    forest = register_forest(app)
    rows = batch_jobs.CHUNK_ROWS + 7
    r = client.post(
        "/flask/batch",
        data={"data": (io.BytesIO(measurements(rows)), "flowers.csv"), "model_version": forest},
        content_type="multipart/form-data",
    )
    assert r.status_code == 202, r.get_data(as_text=True)
    body = r.get_json()
    task_id = body["task_id"]
    assert body["rows"] == rows and body["model_version"] == forest
    assert body["csv_url"] == f"/flask/result/{task_id}.csv"
    [message] = published
    assert message["name"] == "iris.batch" and message["kwargs"]["model_version"] == forest
    assert client.get(body["csv_url"]).status_code == 409  # not run yet

    stages: list[str] = []
    task = FakeTask(app, task_id)
    task.on_progress = lambda: stages.append("x")
    with app.app_context():
        result = batch_jobs.predict_batch(task, **message["kwargs"])  # type: ignore[arg-type]
    assert result["rows"] == rows and sum(result["counts"].values()) == rows
    assert result["model_version"] == forest
    assert len(stages) == 3  # two chunks, then the writing
    app.extensions["celery"].backend.store_result(task_id, result, "SUCCESS")
    status = client.get(body["status_url"]).get_json()["result"]
    assert status["rows"] == rows and status["csv_url"] == body["csv_url"]
    assert status["counts"] == result["counts"] and status["model_version"] == forest

    with client.get(body["csv_url"]) as download:
        assert download.status_code == 200 and download.mimetype == "text/csv"
        table = list(csv.DictReader(io.StringIO(download.get_data(as_text=True))))
    assert len(table) == rows
    assert list(table[0]) == [
        "sepal_length",
        "sepal_width",
        "petal_length",
        "petal_width",
        "label",
        "probability_setosa",
        "probability_versicolor",
        "probability_virginica",
    ]
    assert table[0]["label"] == "setosa"
    pdf = PdfReader(reports.path(app.extensions["iris_settings"].reports_dir, task_id))
    text = pdf.pages[0].extract_text()
    assert f"Batch of {rows} predictions" in text and "LEAST CONFIDENT ROWS" in text
    assert registry_of(app).get(forest) is not None
