"""Property-based tests of the request validation (hypothesis), and of the app on
arbitrary bodies: every input is either accepted or refused with a JSON 4xx."""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iris_service import create_app
from iris_service.validation import (
    InvalidInputError,
    Measurements,
    decode_json,
    validate_form,
    validate_json,
)

from support.settings import make_settings

FIELDS = ("sepal_length", "sepal_width", "petal_length", "petal_width")
valid_cm = st.floats(min_value=0, max_value=100, exclude_min=True, allow_nan=False)
invalid_cm = st.one_of(
    st.floats(max_value=0),
    st.floats(min_value=100, exclude_min=True),
    st.just(math.nan),
    st.just(math.inf),
    st.just(-math.inf),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=12,
)


def _refusal(validate: Callable[[Any], Measurements], value: Any) -> dict[str, str] | None:
    """The per-field messages if ``validate`` refuses ``value``; None if it accepts it.

    Any exception other than InvalidInputError propagates and fails the test.
    """
    try:
        validate(value)
    except InvalidInputError as exc:
        return exc.fields
    return None


@given(st.fixed_dictionaries({name: valid_cm for name in FIELDS}))
def test_every_valid_measurement_is_accepted_unchanged(values: dict[str, float]) -> None:
    assert validate_json(values).model_dump() == values
    # The form path reads the same numbers written as text.
    assert validate_form({k: repr(v) for k, v in values.items()}).model_dump() == values


@given(
    st.fixed_dictionaries({name: valid_cm for name in FIELDS}),
    st.sampled_from(FIELDS),
    invalid_cm,
)
def test_one_bad_field_is_named(values: dict[str, float], field: str, bad: float) -> None:
    with pytest.raises(InvalidInputError) as refused:
        validate_json({**values, field: bad})
    assert set(refused.value.fields) == {field}
    assert refused.value.fields[field]


@given(json_values)
def test_any_json_value_is_accepted_or_refused_cleanly(payload: Any) -> None:
    fields = _refusal(validate_json, payload)
    if fields is None:
        assert isinstance(payload, dict) and set(payload) == set(FIELDS)
    else:
        assert fields and all(isinstance(m, str) and m for m in fields.values())


@given(st.dictionaries(st.text(max_size=20), st.text(max_size=30), max_size=6))
def test_any_form_is_accepted_or_refused_cleanly(form: dict[str, str]) -> None:
    fields = _refusal(validate_form, form)
    assert fields is None or fields


# A decimal number as a person writes it, spelled independently of the module's regex.
written_numbers = st.builds(
    "{}{}{}".format,
    st.sampled_from(["", "+", "-"]),
    st.from_regex(r"[0-9]{1,12}(\.[0-9]{0,8})?|\.[0-9]{1,8}", fullmatch=True),
    st.sampled_from(["", "e", "E"]).flatmap(
        lambda e: st.just("") if not e else st.from_regex(rf"{e}[+-]?[0-9]{{1,3}}", fullmatch=True)
    ),
)
RANGE_MESSAGES = {"must be greater than 0", "must be at most 100"}


def _form_with(field: str, text: str) -> dict[str, str]:
    return {name: "5" for name in FIELDS} | {field: text}


@given(written_numbers, st.sampled_from(FIELDS))
def test_a_written_number_is_read_as_float_reads_it(text: str, field: str) -> None:
    fields = _refusal(validate_form, _form_with(field, text))
    number = float(text)
    if 0 < number <= 100:
        assert fields is None
        assert getattr(validate_form(_form_with(field, text)), field) == number
    else:
        assert fields is not None and set(fields) == {field}
        assert fields[field] in RANGE_MESSAGES


@given(
    st.text(alphabet="0123456789+-.eE_ \t\u00a0\u0665\uff15xXnaifty", max_size=12),
    st.sampled_from(FIELDS),
)
def test_only_ascii_decimal_text_is_a_number(text: str, field: str) -> None:
    fields = _refusal(validate_form, _form_with(field, text)) or {}
    if fields.get(field) != "must be a number":
        # Read as a number: only what a person writes, ASCII, spaces around it.
        assert set(text.strip(" \t")) <= set("0123456789+-.eE"), text
        assert "_" not in text and not any(c in text for c in "xXnaifty")
        float(text)  # and float() agrees it is one


@given(st.fixed_dictionaries({name: valid_cm for name in FIELDS}), st.sampled_from(FIELDS))
def test_a_repeated_field_is_named(values: dict[str, float], field: str) -> None:
    raw = json.dumps(values)[:-1] + f", {json.dumps(field)}: {values[field]!r}}}"
    with pytest.raises(InvalidInputError) as refused:
        validate_json(decode_json(raw))
    assert refused.value.fields == {field: "is given more than once"}
    pairs = [(k, repr(v)) for k, v in values.items()] + [(field, repr(values[field]))]
    with pytest.raises(InvalidInputError) as refused:
        validate_form(pairs)
    assert refused.value.fields == {field: "is given more than once"}


_app = create_app({"TESTING": True}, settings=make_settings(Path(tempfile.mkdtemp())))


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.binary(max_size=300)
    | json_values.map(lambda v: json.dumps(v).encode())
    | st.integers(1, 8000).map(lambda n: b"[" * n + b"]" * n),
    st.sampled_from(
        [
            "application/json",
            "application/x-www-form-urlencoded",
            "multipart/form-data",
            "text/plain",
            "application/merge-patch+json",
            "",
        ]
    ),
)
def test_app_answers_any_body_with_json(body: bytes, content_type: str) -> None:
    client: FlaskClient = _app.test_client()
    headers = {"Content-Type": content_type} if content_type else {}
    r = client.post("/flask/predict", data=body, headers=headers)
    # The broker is a closed port here, so a valid body gets 503; never a 500.
    assert r.status_code in (400, 415, 503), (r.status_code, r.get_data()[:200])
    assert r.is_json and r.get_json()["error"]
