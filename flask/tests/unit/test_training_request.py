"""Training requests (issue 16): the estimators' bounded parameters and the CSV checks,
as tables of bad inputs and the messages a person gets back."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from iris_service.training import builtin_data
from iris_service.training_request import (
    MAX_REPORTED,
    DataError,
    data_path,
    parse_csv,
    validate_spec,
)
from iris_service.validation import InvalidInputError

HEADER = "sepal_length,sepal_width,petal_length,petal_width,species\n"
GOOD = builtin_data().canonical_csv().decode()


def _rows(text: str) -> str:
    """A valid file with ``text`` added as its last lines (the header is row 1)."""
    return GOOD + text


def test_the_builtin_data_as_csv_reads_back_the_same() -> None:
    data = builtin_data()
    again = parse_csv(data.canonical_csv())
    assert again.x == data.x and again.y == data.y
    assert again.sha256 == data.sha256
    assert again.summary()["setosa"]["rows"] == 50


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"estimator": "svm"}, {"estimator": "must be one of"}),
        ({}, {"estimator": "must be one of"}),
        ({"estimator": {}}, {"estimator": "must be one of"}),
        ({"estimator": ["random_forest"]}, {"estimator": "must be one of"}),
        ({"estimator": "random_forest", "extra": 1}, {"extra": "is not a known field"}),
        ({"estimator": "random_forest", "params": []}, {"params": "must be a JSON object"}),
        (
            {"estimator": "random_forest", "params": {"n_estimators": 501}},
            {"params.n_estimators": "less than or equal to 500"},
        ),
        (
            {"estimator": "random_forest", "params": {"n_estimators": "10"}},
            {"params.n_estimators": "valid integer"},
        ),
        (
            {"estimator": "random_forest", "params": {"criterion": "gini"}},
            {"params.criterion": "Extra inputs are not permitted"},
        ),
        (
            {"estimator": "logistic_regression", "params": {"C": 0}},
            {"params.C": "greater than 0"},
        ),
        (
            {"estimator": "gradient_boosting", "params": {"learning_rate": 2}},
            {"params.learning_rate": "less than or equal to 1"},
        ),
        (
            {"estimator": "gradient_boosting", "params": {"max_depth": True}},
            {"params.max_depth": "valid integer"},
        ),
    ],
)
def test_bad_specs_name_each_field(payload: dict[str, Any], expected: dict[str, str]) -> None:
    with pytest.raises(InvalidInputError) as caught:
        validate_spec(payload)
    assert set(caught.value.fields) == set(expected)
    for name, part in expected.items():
        assert part in caught.value.fields[name], caught.value.fields


def test_a_spec_gets_every_default() -> None:
    spec = validate_spec({"estimator": "random_forest", "params": {"n_estimators": 5}})
    assert spec.params == {"n_estimators": 5, "max_depth": None, "min_samples_leaf": 1}


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", [(None, None, "the file is empty")]),
        (b"\xff\xfe", [(None, None, "not UTF-8")]),
        (
            b"sepal_length,sepal_width,petal_length,species\n",
            [(1, "petal_width", "is missing")],
        ),
        (
            (HEADER.strip() + ",species\n").encode(),
            [(1, "species", "appears more than once")],
        ),
        (
            (HEADER.strip() + ",colour\n").encode(),
            [(1, "colour", "is not a known column")],
        ),
        (HEADER.encode(), [(None, None, "no data rows")]),
        (_rows("5.1,3.5,1.4,0.2,rose\n").encode(), [(152, "species", "unknown species 'rose'")]),
        (_rows("5.1,abc,1.4,0.2,setosa\n").encode(), [(152, "sepal_width", "must be a number")]),
        (_rows("5.1,3.5,-1,0.2,setosa\n").encode(), [(152, "petal_length", "greater than 0")]),
        (_rows("5.1,3.5,1.4,101,setosa\n").encode(), [(152, "petal_width", "at most 100")]),
        (_rows("5.1,3.5,nan,0.2,setosa\n").encode(), [(152, "petal_length", "must be a number")]),
        (_rows("5.1,3.5,1.4\n").encode(), [(152, None, "has 3 fields; the header has 5")]),
        (
            (HEADER + "5.1,3.5,1.4,0.2,setosa\n" * 5 + "6.3,3.3,6.0,2.5,virginica\n" * 4).encode(),
            [
                (None, "species", "versicolor has 0 rows"),
                (None, "species", "virginica has 4 rows; each species needs at least 5"),
            ],
        ),
    ],
)
def test_bad_data_names_row_and_column(
    content: bytes, expected: list[tuple[int | None, str | None, str]]
) -> None:
    with pytest.raises(DataError) as caught:
        parse_csv(content)
    found = caught.value.problems
    assert len(found) == len(expected) == caught.value.total, found
    for problem, (row, column, part) in zip(found, expected, strict=True):
        assert (problem["row"], problem["column"]) == (row, column), problem
        assert part in problem["message"], problem


def test_labels_and_spaces_people_write_are_read() -> None:
    data = parse_csv(
        (
            " Sepal_Length , sepal_width,petal_length,petal_width,species\r\n"
            + GOOD.split("\n", 1)[1].replace(",setosa", ",Iris-setosa")
        ).encode("utf-8-sig")
    )
    assert data.y.count("setosa") == 50


def test_only_the_first_problems_are_listed_with_the_count() -> None:
    with pytest.raises(DataError) as caught:
        parse_csv(_rows("x,1,1,1,setosa\n" * 30).encode())
    assert len(caught.value.problems) == MAX_REPORTED
    assert caught.value.total == 30


# ------------------------------------------------- the API, in process


def test_the_api_answers_400_with_the_problems(client: FlaskClient) -> None:
    r = client.post(
        "/flask/models?estimator=random_forest",
        data=_rows("5.1,3.5,1.4,0.2,rose\n"),
        content_type="text/csv",
    )
    assert r.status_code == 400
    body = r.get_json()
    assert body["error"] == "the training data has problems"
    assert body["problem_count"] == 1
    assert body["problems"][0]["row"] == 152


@pytest.mark.parametrize(
    ("kwargs", "status", "part"),
    [
        ({"json": {"estimator": "svm"}}, 400, "estimator"),
        ({"json": {"estimator": "random_forest", "data": "mine"}}, 400, "data"),
        ({"data": "{", "content_type": "application/json"}, 400, "JSON object"),
        ({"data": "a=1", "content_type": "application/x-www-form-urlencoded"}, 415, "text/csv"),
        (
            {"data": b"x" * (10 * 1024 * 1024 + 1), "content_type": "text/csv"},
            413,
            "too large",
        ),
    ],
)
def test_refused_requests(
    client: FlaskClient, kwargs: dict[str, Any], status: int, part: str
) -> None:
    r = client.post("/flask/models?estimator=random_forest", **kwargs)
    assert r.status_code == status, r.get_data(as_text=True)
    assert part in r.get_data(as_text=True)


@pytest.fixture
def published(monkeypatch: pytest.MonkeyPatch, app: Flask) -> list[dict[str, Any]]:
    """Replace the publish alone (the fixture's broker is a closed port); record each."""
    sent: list[dict[str, Any]] = []
    monkeypatch.setattr(
        app.extensions["celery"], "send_task", lambda name, **kw: sent.append({"name": name, **kw})
    )
    return sent


@pytest.mark.parametrize("form", ["json", "csv", "multipart"])
def test_each_form_of_request_queues_one_training_job(
    app: Flask, client: FlaskClient, published: list[dict[str, Any]], form: str
) -> None:
    params = {"n_estimators": 7}
    if form == "json":
        r = client.post("/flask/models", json={"estimator": "random_forest", "params": params})
    elif form == "csv":
        r = client.post(
            f"/flask/models?estimator=random_forest&params={json.dumps(params)}",
            data=GOOD,
            content_type="text/csv",
        )
    else:
        r = client.post(
            "/flask/models",
            data={
                "estimator": "random_forest",
                "params": json.dumps(params),
                "data": (io.BytesIO(GOOD.encode()), "flowers.csv"),
            },
            content_type="multipart/form-data",
        )
    assert r.status_code == 202, r.get_data(as_text=True)
    body = r.get_json()
    expected_data = "iris" if form == "json" else builtin_data().sha256
    assert body["data"] == expected_data
    assert body["params"] == {"n_estimators": 7, "max_depth": None, "min_samples_leaf": 1}
    (message,) = published
    assert message["name"] == "iris.train" and message["queue"] == "training"
    assert message["task_id"] == body["task_id"]
    assert message["kwargs"] == {
        "spec": {"estimator": "random_forest", "params": body["params"]},
        "data": expected_data,
    }
    if form != "json":
        stored = data_path(app.extensions["iris_settings"].models_dir, expected_data)
        assert parse_csv(stored.read_bytes()).sha256 == expected_data
    # Queued and visible; the stage says where it waits (the broker is a closed
    # port here, so whether a training worker consumes is unknown).
    status = client.get(body["status_url"]).get_json()
    assert status["state"] == "PENDING"
    assert status["stage"].startswith("queued in the training queue")
