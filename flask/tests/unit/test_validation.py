"""Input validation through the real Flask app: every bad input is a 400/413/415 with a message."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask.testing import FlaskClient

from support.samples import SETOSA


def with_value(field: str, value: Any) -> dict[str, Any]:
    return {**SETOSA, field: value}


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({k: v for k, v in SETOSA.items() if k != "sepal_width"}, "sepal_width", "is required"),
        (with_value("sepal_length", "5.1"), "sepal_length", "must be a number"),
        (with_value("petal_length", "abc"), "petal_length", "must be a number"),
        (with_value("petal_width", True), "petal_width", "must be a number"),
        (with_value("petal_width", False), "petal_width", "must be a number"),
        (with_value("sepal_width", None), "sepal_width", "must be a number"),
        (with_value("sepal_width", [1.0]), "sepal_width", "must be a number"),
        (with_value("sepal_width", {"v": 1}), "sepal_width", "must be a number"),
        (with_value("sepal_length", 0), "sepal_length", "must be greater than 0"),
        (with_value("sepal_length", -1.5), "sepal_length", "must be greater than 0"),
        (with_value("petal_length", 100.01), "petal_length", "must be at most 100"),
        (with_value("petal_length", 1e308), "petal_length", "must be at most 100"),
        (with_value("petal_length", 10**400), "petal_length", "must be"),
        ({**SETOSA, "colour": "blue"}, "colour", "is not a known field"),
    ],
)
def test_json_field_errors(
    client: FlaskClient, body: dict[str, Any], field: str, message: str
) -> None:
    r = client.post("/flask/predict", data=json.dumps(body), content_type="application/json")
    assert r.status_code == 400
    payload = r.get_json()
    assert payload["error"] == "invalid input"
    assert message in payload["fields"][field]


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_json_non_finite_numbers(client: FlaskClient, literal: str) -> None:
    raw = json.dumps(SETOSA).replace("5.1", literal)
    r = client.post("/flask/predict", data=raw, content_type="application/json")
    assert r.status_code == 400
    assert r.get_json()["fields"]["sepal_length"] in (
        "must be a finite number",
        "must be at most 100",
        "must be greater than 0",
    )


@pytest.mark.parametrize(
    ("raw", "status", "message"),
    [
        ("{not json", 400, "not valid JSON"),
        ("", 400, "not valid JSON"),
        ("[1, 2, 3, 4]", 400, "JSON object"),
        ('"text"', 400, "JSON object"),
        ("null", 400, "JSON object"),
        (b"\xff\xfe", 400, "not valid JSON"),
    ],
)
def test_broken_json(client: FlaskClient, raw: str | bytes, status: int, message: str) -> None:
    r = client.post("/flask/predict", data=raw, content_type="application/json")
    assert r.status_code == status
    assert message in json.dumps(r.get_json())


@pytest.mark.parametrize(
    ("form", "field", "message"),
    [
        ({"sepal_length": "abc"}, "sepal_length", "must be a number"),
        ({"sepal_length": ""}, "sepal_length", "must be a number"),
        ({"sepal_length": "nan"}, "sepal_length", "must be a finite number"),
        ({"sepal_length": "inf"}, "sepal_length", "must be a finite number"),
        ({"sepal_length": "0"}, "sepal_length", "must be greater than 0"),
        ({"sepal_length": "-2"}, "sepal_length", "must be greater than 0"),
        ({"sepal_length": "1000"}, "sepal_length", "must be at most 100"),
    ],
)
def test_form_field_errors(
    client: FlaskClient, form: dict[str, str], field: str, message: str
) -> None:
    data = {k: str(v) for k, v in SETOSA.items()} | form
    r = client.post("/flask/predict", data=data)
    assert r.status_code == 400
    assert r.get_json()["fields"][field] == message


def test_form_missing_field(client: FlaskClient) -> None:
    r = client.post("/flask/predict", data={"sepal_length": "5"})
    assert r.status_code == 400
    assert set(r.get_json()["fields"]) == {"sepal_width", "petal_length", "petal_width"}


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/xml", "application/octet-stream"]
)
def test_wrong_content_type(client: FlaskClient, content_type: str) -> None:
    r = client.post("/flask/predict", data=json.dumps(SETOSA), content_type=content_type)
    assert r.status_code == 415
    assert "application/json" in r.get_json()["error"]


def test_missing_content_type(client: FlaskClient) -> None:
    r = client.post("/flask/predict", data=json.dumps(SETOSA))
    assert r.status_code == 415


def test_oversized_body(client: FlaskClient) -> None:
    body = json.dumps({**SETOSA, "padding": "x" * 20_000})
    r = client.post("/flask/predict", data=body, content_type="application/json")
    assert r.status_code == 413
    assert "too large" in r.get_json()["error"]


def test_wrong_method_is_json_405(client: FlaskClient) -> None:
    r = client.get("/flask/predict")
    assert r.status_code == 405
    assert r.get_json()["error"] == "method not allowed"
    assert "POST" in r.headers["Allow"]


def test_unknown_route_is_json_404(client: FlaskClient) -> None:
    r = client.get("/flask/nope")
    assert r.status_code == 404
    assert r.is_json


def test_broker_down_is_503_and_nothing_kept(client: FlaskClient) -> None:
    """A valid submit that cannot be queued gets 503 + Retry-After and leaves no job behind."""
    r = client.post("/flask/predict", json=SETOSA)
    assert r.status_code == 503
    assert int(r.headers["Retry-After"]) > 0
    assert "broker" in r.get_json()["error"]
    assert client.get("/flask/tasks").get_json()["tasks"] == []
