"""The request schema for a prediction, shared by the web app and the task.

One pydantic model validates JSON bodies (strictly: no strings, no booleans),
form bodies (decimal numbers written as text) and, again, the task's arguments.
This module also owns how a body becomes values for that model: the JSON
decoder's settings, the spelling of a number in a form, repeated fields, and
the spelling of a task id, so that every refusal is a per-field message from
one table.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from werkzeug.datastructures import iter_multi_items

Centimetres = Annotated[
    float,
    Field(gt=0, le=100, allow_inf_nan=False, description="centimetres, 0 < x <= 100"),
]

# Task ids as the web app creates them (str(uuid4())): the spelling used in
# the database, in status file names and in every URL the service gives out.
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
# Task ids as clients may write them: the same 8-4-4-4-12 form in either case.
TASK_ID_RE = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)

# An Idempotency-Key header as the README documents it: 1-128 visible ASCII
# characters (no spaces, no control or non-ASCII characters), so a key is
# stored, compared and logged as the client wrote it.
IDEMPOTENCY_KEY_RE = re.compile(r"[\x21-\x7e]{1,128}")

# A number as a person writes it: optional sign, digits with at most one
# decimal point (".5" and "5." included), optional exponent. ASCII digits only.
_DECIMAL_RE = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
# Spaces a person may leave around a typed number; other white space is refused.
_BLANKS = " \t"


class Measurements(BaseModel):
    """Four iris measurements in centimetres."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sepal_length: Centimetres
    sepal_width: Centimetres
    petal_length: Centimetres
    petal_width: Centimetres


class InvalidInputError(ValueError):
    """Bad input, with one message per offending field."""

    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__("invalid input")
        self.fields = fields


class MalformedBodyError(ValueError):
    """A body that cannot be read as JSON at all; the message says why."""


NOT_JSON = "the body is not valid JSON"
TOO_DEEP = "the body is nested too deeply"

_MESSAGES = {
    "missing": "is required",
    "extra_forbidden": "is not a known field",
    "greater_than": "must be greater than 0",
    "less_than_equal": "must be at most 100",
    "finite_number": "must be a finite number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "model_type": "the body must be a JSON object",
    "repeated": "is given more than once",
}


def _field_messages(exc: ValidationError) -> dict[str, str]:
    fields: dict[str, str] = {}
    for err in exc.errors():
        name = ".".join(str(part) for part in err["loc"]) or "body"
        fields.setdefault(name, _MESSAGES.get(err["type"], err["msg"]))
    return fields


def _validate(data: dict[str, Any], repeated: Collection[str] = ()) -> Measurements:
    """The model of ``data``, or every field's message; ``repeated`` names given twice."""
    # A repeated measurement is ambiguous whatever its values, so its message
    # wins; a repeated unknown name keeps "is not a known field", more useful.
    fields = {name: _MESSAGES["repeated"] for name in repeated if name in Measurements.model_fields}
    try:
        measurements = Measurements.model_validate(data, strict=True)
    except ValidationError as exc:
        for name, message in _field_messages(exc).items():
            fields.setdefault(name, message)
        raise InvalidInputError(fields) from None
    if fields:
        raise InvalidInputError(fields)
    return measurements


def _finite(text: str) -> float:
    """The float nearest to a decimal number, the largest float of its sign beyond range.

    A written number is finite, however long: one past the float range is still
    out of 0 < x <= 100, and clamping it lets the schema's bound name the
    problem ("must be at most 100") instead of "must be a finite number".
    """
    number = float(text)
    if math.isinf(number):
        return math.copysign(sys.float_info.max, number)
    return number


class _RepeatedKeys(dict[str, Any]):
    """A decoded JSON object that named some keys more than once (the last value kept)."""

    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        super().__init__(pairs)
        self.repeated = [key for key, count in Counter(k for k, _ in pairs).items() if count > 1]


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Called for objects at every depth, but only the top level is a set of
    # fields: a nested object is inside a value the schema refuses anyway.
    obj = dict(pairs)
    return obj if len(obj) == len(pairs) else _RepeatedKeys(pairs)


def decode_json(raw: bytes | str) -> Any:
    """Decode a JSON body for :func:`validate_json`; raises MalformedBodyError.

    Numbers (integers too) are read as floats as :func:`_finite` does, so an
    integer of 400 digits or 1e400 is "at most 100", not a huge int or inf; the
    non-standard literals NaN and Infinity stay non-finite. Repeated keys are
    remembered for validate_json to refuse.
    """
    try:
        return json.loads(
            raw, object_pairs_hook=_json_object, parse_float=_finite, parse_int=_finite
        )
    except RecursionError:
        # The C decoder recurses once per level and stops cleanly at the
        # interpreter's recursion limit; a valid body has one level.
        raise MalformedBodyError(TOO_DEEP) from None
    except ValueError:  # JSONDecodeError and UnicodeDecodeError alike
        raise MalformedBodyError(NOT_JSON) from None


def validate_json(payload: Any) -> Measurements:
    """Validate a decoded JSON body: numbers only (true/false and "5.1" are refused).

    A body from :func:`decode_json` that repeats a field is refused for it.
    """
    if not isinstance(payload, Mapping):
        raise InvalidInputError({"body": _MESSAGES["model_type"]})
    repeated = payload.repeated if isinstance(payload, _RepeatedKeys) else ()
    return _validate(dict(payload), repeated)


def _form_number(raw: str) -> float | str:
    """A form value as a number, or the text itself for the schema to call "not a number".

    Accepted: what :data:`_DECIMAL_RE` describes, with spaces and tabs around
    it trimmed: "5.1", "+5", ".5", "5.", "5e-1", "5E+0". Refused, although
    float() reads them: "nan", "inf", "1_000", non-ASCII digits, other white
    space. Numbers beyond the float range are clamped (see :func:`_finite`).
    """
    text = raw.strip(_BLANKS)
    return _finite(text) if _DECIMAL_RE.fullmatch(text) else raw


def validate_form(
    form: Mapping[str, str | list[str] | tuple[str, ...] | set[str]] | Iterable[tuple[str, str]],
) -> Measurements:
    """Validate form fields: each is one number written as text, given once.

    ``form`` is a werkzeug MultiDict (every value of a repeated field is seen),
    a mapping (a list value counts as a repeated field) or (name, value) pairs.
    """
    data: dict[str, Any] = {}
    repeated: list[str] = []
    for key, raw in iter_multi_items(form):
        if key in data:
            repeated.append(key)
        else:
            data[key] = _form_number(raw)
    return _validate(data, repeated)


def normalise_task_id(value: str) -> str | None:
    """The canonical (lower-case) task id ``value`` spells, or None if it is no task id.

    Either case of the 8-4-4-4-12 hex form is read; the other spellings
    uuid.UUID reads (braces, "urn:uuid:", no hyphens) are refused, so an id has
    one spelling in paths and file names.
    """
    return value.lower() if TASK_ID_RE.fullmatch(value) else None


def is_task_id(value: str) -> bool:
    """True for a task id in its canonical spelling, as the web app creates them.

    Ids from outside go through :func:`normalise_task_id` instead, which also
    reads upper case.
    """
    return UUID_RE.fullmatch(value) is not None


def is_idempotency_key(value: str) -> bool:
    """True for a valid Idempotency-Key header value (1-128 visible ASCII characters)."""
    return IDEMPOTENCY_KEY_RE.fullmatch(value) is not None


# ``?wait=`` on the status (job_ends.py, waiter.py): how long a read may wait
# for the job to end, in seconds.
MAX_WAIT_SECONDS = 30.0
WAIT_MESSAGE = f"wait must be a number of seconds, more than 0 and at most {MAX_WAIT_SECONDS:g}"


class InvalidWaitError(ValueError):
    """A ``wait`` query parameter that is not 0 < seconds <= 30, or is given twice."""


def wait_seconds(values: Sequence[str]) -> float | None:
    """The seconds the query's ``wait`` values ask for; None without one.

    Written as a form number is ("5", "0.5", "1e1"), nothing else: "nan",
    "inf", "" and blanks are refused, as is a repeated ``wait``.
    """
    if not values:
        return None
    if len(values) > 1:
        raise InvalidWaitError("wait is given more than once")
    text = values[0]
    seconds = float(text) if _DECIMAL_RE.fullmatch(text) else math.nan
    if not 0 < seconds <= MAX_WAIT_SECONDS:  # False for nan too
        raise InvalidWaitError(WAIT_MESSAGE)
    return seconds
