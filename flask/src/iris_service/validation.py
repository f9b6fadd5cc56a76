"""The request schema for a prediction, shared by the web app and the task.

One pydantic model validates JSON bodies (strictly: no strings, no booleans),
form bodies (strings parsed as numbers) and, again, the task's arguments.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

Centimetres = Annotated[
    float,
    Field(gt=0, le=100, allow_inf_nan=False, description="centimetres, 0 < x <= 100"),
]

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


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


_MESSAGES = {
    "missing": "is required",
    "extra_forbidden": "is not a known field",
    "greater_than": "must be greater than 0",
    "less_than_equal": "must be at most 100",
    "finite_number": "must be a finite number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "model_type": "the body must be a JSON object",
}


def _field_messages(exc: ValidationError) -> dict[str, str]:
    fields: dict[str, str] = {}
    for err in exc.errors():
        name = ".".join(str(part) for part in err["loc"]) or "body"
        fields.setdefault(name, _MESSAGES.get(err["type"], err["msg"]))
    return fields


def validate_json(payload: Any) -> Measurements:
    """Validate a decoded JSON body: numbers only (true/false and "5.1" are refused)."""
    if not isinstance(payload, Mapping):
        raise InvalidInputError({"body": "the body must be a JSON object"})
    try:
        return Measurements.model_validate(dict(payload), strict=True)
    except ValidationError as exc:
        raise InvalidInputError(_field_messages(exc)) from None


def validate_form(form: Mapping[str, str]) -> Measurements:
    """Validate form fields: each is one number written as text."""
    data: dict[str, Any] = {}
    for key, raw in form.items():
        text = raw.strip()
        try:
            data[key] = float(text)
        except ValueError:
            data[key] = text  # left as text so the schema reports "must be a number"
    try:
        return Measurements.model_validate(data, strict=True)
    except ValidationError as exc:
        raise InvalidInputError(_field_messages(exc)) from None


def is_task_id(value: str) -> bool:
    """Task ids are lower-case UUIDs, as the web app creates them."""
    return bool(UUID_RE.match(value))
