"""The benchmark-only inline endpoint: absent by default, same work as the task when enabled."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask

from iris_service import create_app
from iris_service.model import get_model

from support.samples import SETOSA, VIRGINICA
from support.settings import make_settings


@pytest.fixture
def bench_app(tmp_path: Path) -> Flask:
    settings = make_settings(tmp_path, bench_inline_endpoint=True)
    return create_app({"TESTING": True}, settings=settings)


def test_off_by_default(app: Flask) -> None:
    response = app.test_client().post("/flask/bench/inline", json=SETOSA)
    assert response.status_code == 404
    assert response.is_json


def test_predicts_and_writes_the_report_inline(bench_app: Flask) -> None:
    response = bench_app.test_client().post("/flask/bench/inline", json=VIRGINICA)
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    settings = bench_app.extensions["iris_settings"]
    expected = get_model(settings.model_path).predict(VIRGINICA)
    assert body["label"] == expected.label == "virginica"
    assert body["probabilities"] == expected.probabilities
    pdf = settings.reports_dir / f"{body['task_id']}.pdf"
    assert pdf.read_bytes().startswith(b"%PDF")
    assert body["report_bytes"] == pdf.stat().st_size


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "the body is not valid JSON"),
        (b'{"sepal_length": 1}', "invalid input"),
    ],
)
def test_bad_input_is_json_400(bench_app: Flask, body: bytes, message: str) -> None:
    response = bench_app.test_client().post(
        "/flask/bench/inline", data=body, content_type="application/json"
    )
    assert response.status_code == 400
    assert response.get_json()["error"] == message
