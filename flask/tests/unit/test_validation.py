"""Input validation through the real Flask app: every bad input is a 400/413/415 with a message."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import pytest
from flask.testing import FlaskClient
from werkzeug.datastructures import MultiDict

from iris_service.validation import InvalidInputError, validate_form, validate_json

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
        ({"sepal_length": "nan"}, "sepal_length", "must be a number"),
        ({"sepal_length": "inf"}, "sepal_length", "must be a number"),
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


def _post_json(client: FlaskClient, raw: str | bytes) -> Any:
    return client.post("/flask/predict", data=raw, content_type="application/json")


def _with_extra(raw_value: str) -> str:
    """SETOSA as JSON text with one more field ``x`` holding ``raw_value`` verbatim."""
    return json.dumps(SETOSA)[:-1] + ', "x": ' + raw_value + "}"


@pytest.mark.parametrize(
    "raw",
    [
        "[" * 1000 + "]" * 1000,
        '{"a": ' * 1000 + "1" + "}" * 1000,
        # As deep as fits in the 16 KiB body limit, beside four valid fields.
        _with_extra("[" * 8000 + "]" * 8000),
        json.dumps(SETOSA)[:-1] + ', "sepal_length": ' + "[" * 8000 + "]" * 8000 + "}",
    ],
    ids=["arrays", "objects", "extra-field", "in-a-field"],
)
def test_deeply_nested_json_is_a_json_400(client: FlaskClient, raw: str) -> None:
    r = _post_json(client, raw)
    assert r.status_code == 400, r.get_data()[:200]
    assert r.get_json()["error"] in ("the body is nested too deeply", "invalid input")


def test_no_nesting_depth_gives_a_500(client: FlaskClient) -> None:
    """Around the interpreter's recursion limit, where the decoder's behaviour changes."""
    for depth in range(600, 1400, 25):
        r = _post_json(client, _with_extra("[" * depth + "]" * depth))
        assert r.status_code == 400, (depth, r.get_data()[:200])


def test_nested_too_deeply_is_named(client: FlaskClient) -> None:
    r = _post_json(client, "[" * 5000 + "]" * 5000)
    assert r.status_code == 400
    assert r.get_json() == {"error": "the body is nested too deeply"}


def test_deep_body_beyond_the_size_limit_is_413(client: FlaskClient) -> None:
    r = _post_json(client, _with_extra("[" * 100_000 + "]" * 100_000))
    assert r.status_code == 413
    assert r.is_json


def _deep_list(depth: int) -> list[Any]:
    deep: list[Any] = []
    for _ in range(depth):
        deep = [deep]
    return deep


@pytest.mark.parametrize(
    ("field", "message"), [("x", "is not a known field"), ("sepal_length", "must be a number")]
)
def test_validation_of_a_deep_structure_does_not_recurse(field: str, message: str) -> None:
    """The schema refuses a deep value without walking it (built in Python: no decoder limit)."""
    with pytest.raises(InvalidInputError) as refused:
        validate_json({**SETOSA, field: _deep_list(100_000)})
    assert refused.value.fields == {field: message}


@pytest.mark.parametrize(
    ("literal", "message"),
    [
        ("1e400", "must be at most 100"),
        ("1" + "0" * 400, "must be at most 100"),
        # Past Python's int-from-text digit limit (4300), still a number.
        ("1" + "0" * 5000, "must be at most 100"),
        ("-1e400", "must be greater than 0"),
        ("-1" + "0" * 400, "must be greater than 0"),
        ("1e-400", "must be greater than 0"),
        ("Infinity", "must be a finite number"),
        ("NaN", "must be a finite number"),
    ],
)
def test_json_numbers_beyond_float_range(client: FlaskClient, literal: str, message: str) -> None:
    r = _post_json(client, json.dumps(SETOSA).replace("5.1", literal))
    assert r.status_code == 400
    assert r.get_json()["fields"] == {"sepal_length": message}


def _form_with(value: str) -> dict[str, str]:
    return {k: str(v) for k, v in SETOSA.items()} | {"sepal_length": value}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("nan", "must be a number"),
        ("NaN", "must be a number"),
        ("inf", "must be a number"),
        ("-inf", "must be a number"),
        ("infinity", "must be a number"),
        ("1_000", "must be a number"),
        ("5_0", "must be a number"),
        ("\u0665", "must be a number"),  # ARABIC-INDIC DIGIT FIVE
        ("\uff15", "must be a number"),  # FULLWIDTH DIGIT FIVE
        ("\u00a05", "must be a number"),  # no-break space: not trimmed
        ("5\u2003", "must be a number"),  # em space
        ("0x10", "must be a number"),
        ("1e", "must be a number"),
        ("1e+", "must be a number"),
        ("e5", "must be a number"),
        ("--1", "must be a number"),
        ("+-1", "must be a number"),
        ("1.2.3", "must be a number"),
        (".", "must be a number"),
        ("5 1", "must be a number"),
        ("1" + "0" * 400, "must be at most 100"),
        ("1e400", "must be at most 100"),
        ("1E99999999999", "must be at most 100"),
        ("-1e400", "must be greater than 0"),
        ("1e-400", "must be greater than 0"),
        ("-0", "must be greater than 0"),
    ],
)
def test_form_number_spellings_refused(client: FlaskClient, value: str, message: str) -> None:
    r = client.post("/flask/predict", data=_form_with(value))
    assert r.status_code == 400
    assert r.get_json()["fields"] == {"sepal_length": message}


@pytest.mark.parametrize(
    ("value", "number"),
    [
        ("5.1", 5.1),
        (" 5.1 ", 5.1),
        ("\t5.1", 5.1),
        ("+5", 5.0),
        ("5.", 5.0),
        (".5", 0.5),
        ("5E0", 5.0),
        ("50e-1", 5.0),
        ("0.5e+1", 5.0),
        ("0" * 300 + "7", 7.0),
    ],
)
def test_form_number_spellings_accepted(value: str, number: float) -> None:
    assert validate_form(_form_with(value)).sepal_length == number


def test_multipart_is_refused_415(client: FlaskClient) -> None:
    form = {k: str(v) for k, v in SETOSA.items()}
    r = client.post("/flask/predict", data=form, content_type="multipart/form-data")
    assert r.status_code == 415
    assert r.get_json()["error"] == (
        "send application/json or a form (application/x-www-form-urlencoded)"
    )


def test_openapi_lists_the_accepted_content_types(client: FlaskClient) -> None:
    body = client.get("/flask/openapi.json").get_json()
    content = body["paths"]["/flask/predict"]["post"]["requestBody"]["content"]
    assert set(content) == {"application/json", "application/x-www-form-urlencoded"}


def test_repeated_json_key_is_refused(client: FlaskClient) -> None:
    raw = json.dumps(SETOSA)[:-1] + ', "sepal_length": 5.2}'
    r = _post_json(client, raw)
    assert r.status_code == 400
    assert r.get_json() == {
        "error": "invalid input",
        "fields": {"sepal_length": "is given more than once"},
    }


def test_repeated_json_key_among_other_errors(client: FlaskClient) -> None:
    raw = '{"sepal_length": 5, "sepal_length": 6, "sepal_width": 0, "petal_length": 1}'
    fields = _post_json(client, raw).get_json()["fields"]
    assert fields == {
        "sepal_length": "is given more than once",
        "sepal_width": "must be greater than 0",
        "petal_width": "is required",
    }


def test_repeated_key_inside_an_unknown_field(client: FlaskClient) -> None:
    """Only the top level is a form of fields; a nested repeat is inside a refused value."""
    r = _post_json(client, _with_extra('{"a": 1, "a": 2}'))
    assert r.get_json()["fields"] == {"x": "is not a known field"}


def test_repeated_form_field_is_refused(client: FlaskClient) -> None:
    pairs = [(k, str(v)) for k, v in SETOSA.items()] + [("petal_width", "0.3")]
    r = client.post(
        "/flask/predict",
        data=urlencode(pairs),
        content_type="application/x-www-form-urlencoded",
    )
    assert r.status_code == 400
    assert r.get_json() == {
        "error": "invalid input",
        "fields": {"petal_width": "is given more than once"},
    }


def test_repeated_form_field_even_with_equal_values() -> None:
    pairs = [(k, str(v)) for k, v in SETOSA.items()] + [
        ("sepal_length", str(SETOSA["sepal_length"]))
    ]
    with pytest.raises(InvalidInputError) as refused:
        validate_form(MultiDict(pairs))
    assert refused.value.fields == {"sepal_length": "is given more than once"}
