"""What a training request may hold: the estimators and their bounded parameters,
and the CSV of training data, each checked with messages a person can act on.

Shared by the web app (which refuses bad requests before anything is queued)
and the training task (which checks again). No scikit-learn here: the web app
imports this module.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .files import write_atomically
from .model import FEATURES
from .validation import InvalidInputError, validate_form

CV_FOLDS = 5
SPECIES: tuple[str, ...] = ("setosa", "versicolor", "virginica")
COLUMNS: tuple[str, ...] = (*FEATURES, "species")
# A 400 lists this many problems of the data, then says how many there were.
MAX_REPORTED = 20
BUILTIN_DATA = "iris"
# The content types a CSV body may be sent as (training data, batches).
CSV_TYPES = ("text/csv", "application/csv")


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LogisticRegressionParams(_Params):
    C: float = Field(default=1.0, gt=0, le=10_000, description="inverse regularisation strength")
    max_iter: int = Field(default=1000, ge=10, le=10_000)


class RandomForestParams(_Params):
    n_estimators: int = Field(default=100, ge=1, le=500)
    max_depth: int | None = Field(default=None, ge=1, le=50, description="null: unlimited")
    min_samples_leaf: int = Field(default=1, ge=1, le=50)


class GradientBoostingParams(_Params):
    n_estimators: int = Field(default=100, ge=1, le=500)
    learning_rate: float = Field(default=0.1, gt=0, le=1)
    max_depth: int = Field(default=3, ge=1, le=10)


ESTIMATORS: dict[str, type[_Params]] = {
    "logistic_regression": LogisticRegressionParams,
    "random_forest": RandomForestParams,
    "gradient_boosting": GradientBoostingParams,
}
Estimator = Literal["logistic_regression", "random_forest", "gradient_boosting"]


@dataclass(frozen=True)
class TrainingSpec:
    estimator: str
    # Every parameter, the defaults filled in.
    params: dict[str, Any]


def validate_spec(payload: Any) -> TrainingSpec:
    """``{"estimator": ..., "params": {...}}`` checked strictly; InvalidInputError per field."""
    if not isinstance(payload, Mapping):
        raise InvalidInputError({"body": "the body must be a JSON object"})
    unknown = sorted(set(payload) - {"estimator", "params", "data"})
    if unknown:
        raise InvalidInputError({name: "is not a known field" for name in unknown})
    estimator = payload.get("estimator")
    # A JSON object or list is no key of ESTIMATORS (nor hashable).
    if not isinstance(estimator, str) or estimator not in ESTIMATORS:
        raise InvalidInputError({"estimator": f"must be one of {', '.join(ESTIMATORS)}"})
    params = payload.get("params", {})
    if params is None:
        params = {}
    if not isinstance(params, Mapping):
        raise InvalidInputError({"params": "must be a JSON object"})
    try:
        checked = ESTIMATORS[estimator].model_validate(dict(params), strict=True)
    except ValidationError as exc:
        fields: dict[str, str] = {}
        for err in exc.errors():
            name = "params." + ".".join(str(p) for p in err["loc"])
            fields.setdefault(name, err["msg"])
        raise InvalidInputError(fields) from None
    return TrainingSpec(str(estimator), checked.model_dump())


# ------------------------------------------------------------------- the data


class DataError(ValueError):
    """Training data that cannot be used: the first problems, each with row and column."""

    def __init__(self, problems: list[dict[str, Any]], total: int) -> None:
        super().__init__("the training data has problems")
        self.problems = problems
        self.total = total


@dataclass(frozen=True)
class TrainingData:
    """Validated training rows: features in centimetres and species names."""

    x: tuple[tuple[float, ...], ...]
    y: tuple[str, ...]
    source: str

    def canonical_csv(self) -> bytes:
        """The rows in one spelling: what is stored, hashed and read back by the task."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(COLUMNS)
        for features, species in zip(self.x, self.y, strict=True):
            writer.writerow([*(repr(v) for v in features), species])
        return out.getvalue().encode()

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.canonical_csv()).hexdigest()

    def summary(self) -> dict[str, Any]:
        """Per species: rows, and each measurement's mean (for the card and the report)."""
        out: dict[str, Any] = {}
        for species in sorted(set(self.y)):
            rows = [f for f, s in zip(self.x, self.y, strict=True) if s == species]
            out[species] = {
                "rows": len(rows),
                "mean": {
                    name: round(sum(r[i] for r in rows) / len(rows), 4)
                    for i, name in enumerate(FEATURES)
                },
            }
        return out


class _Problems:
    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []
        self.total = 0

    def add(self, row: int | None, column: str | None, message: str) -> None:
        self.total += 1
        if len(self.items) < MAX_REPORTED:
            self.items.append({"row": row, "column": column, "message": message})

    def raise_if_any(self) -> None:
        if self.total:
            raise DataError(self.items, self.total)


def _species(value: str) -> str | None:
    """A species label as written ("setosa", "Iris-setosa", "Setosa"), or None if unknown."""
    name = value.strip().lower().removeprefix("iris-").removeprefix("iris ")
    return name if name in SPECIES else None


def _header(fields: list[str], columns: tuple[str, ...], problems: _Problems) -> dict[str, int]:
    names = [f.strip().lower() for f in fields]
    for name, count in Counter(names).items():
        if count > 1:
            problems.add(1, name, "appears more than once")
    for name in names:
        if name not in columns:
            problems.add(1, name, f"is not a known column (expected {', '.join(columns)})")
    for name in columns:
        if name not in names:
            problems.add(1, name, "is missing")
    return {name: names.index(name) for name in columns if name in names}


def _read_rows(
    content: bytes, columns: tuple[str, ...], problems: _Problems, max_rows: int | None = None
) -> Iterator[tuple[int, dict[str, str]]]:
    """The data rows of a CSV with these columns (any order), each with its line number.

    Problems of the file, its header and each row's shape go to ``problems``;
    the caller checks the values. Over ``max_rows`` data rows is one problem.
    """
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        problems.add(None, None, f"the file is not UTF-8 text (byte {exc.start})")
        problems.raise_if_any()
    rows = csv.reader(io.StringIO(text, newline=""))
    header = next(rows, None)
    if header is None:
        problems.add(None, None, "the file is empty; the first line must name the columns")
        problems.raise_if_any()
    assert header is not None
    where = _header(header, columns, problems)
    problems.raise_if_any()
    count = 0
    for number, fields in enumerate(rows, start=2):
        if not any(f.strip() for f in fields):
            continue  # blank lines, a trailing one included
        count += 1
        if max_rows is not None and count > max_rows:
            problems.add(number, None, f"is one row too many: at most {max_rows} rows")
            problems.raise_if_any()
        if len(fields) != len(header):
            problems.add(number, None, f"has {len(fields)} fields; the header has {len(header)}")
            continue
        yield number, {name: fields[where[name]] for name in columns}


def _measured(number: int, fields: dict[str, str], problems: _Problems) -> tuple[float, ...] | None:
    """A row's four measurements, checked as a prediction's form fields are."""
    try:
        measured = validate_form({name: fields[name] for name in FEATURES})
    except InvalidInputError as exc:
        for column, message in exc.fields.items():
            problems.add(number, column, message)
        return None
    return tuple(getattr(measured, name) for name in FEATURES)


def parse_csv(content: bytes) -> TrainingData:
    """Read and check a training CSV; raise DataError listing its problems (row 1: the header)."""
    problems = _Problems()
    x: list[tuple[float, ...]] = []
    y: list[str] = []
    for number, fields in _read_rows(content, COLUMNS, problems):
        species = _species(fields["species"])
        if species is None:
            problems.add(
                number,
                "species",
                f"unknown species {fields['species'].strip()[:40]!r} "
                f"(expected one of {', '.join(SPECIES)})",
            )
        measured = _measured(number, fields, problems)
        if species is not None and measured is not None:
            x.append(measured)
            y.append(species)
    problems.raise_if_any()
    if not y:
        problems.add(None, None, "the file has no data rows")
    counts = Counter(y)
    for species in SPECIES:
        if y and counts[species] < CV_FOLDS:
            problems.add(
                None,
                "species",
                f"{species} has {counts[species]} rows; each species needs at least "
                f"{CV_FOLDS} for {CV_FOLDS}-fold cross-validation",
            )
    problems.raise_if_any()
    return TrainingData(tuple(x), tuple(y), "upload")


def data_path(models_dir: Path, sha256: str) -> Path:
    """Where an uploaded training set is kept, named by its fingerprint."""
    return models_dir / "data" / f"{sha256}.csv"


def store_upload(models_dir: Path, data: TrainingData) -> str:
    """Keep validated uploaded rows for the training job; returns the name the job's
    message carries (their SHA-256). Written before the message is published."""
    path = data_path(models_dir, data.sha256)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(data.canonical_csv(), path)
    return data.sha256


# ------------------------------------------------------------- batch predictions

# POST /flask/batch: at most this many rows of measurements per job.
MAX_BATCH_ROWS = 10_000


def parse_measurements_csv(content: bytes) -> tuple[tuple[float, ...], ...]:
    """Read and check a batch's CSV (the four measurement columns, at most
    MAX_BATCH_ROWS rows), as a training CSV is checked; raise DataError."""
    problems = _Problems()
    rows = [
        measured
        for number, fields in _read_rows(content, FEATURES, problems, MAX_BATCH_ROWS)
        if (measured := _measured(number, fields, problems)) is not None
    ]
    problems.raise_if_any()
    if not rows:
        problems.add(None, None, "the file has no data rows")
        problems.raise_if_any()
    return tuple(rows)


def measurements_csv(rows: tuple[tuple[float, ...], ...]) -> bytes:
    """Checked measurements in one spelling: what a batch job stores and reads back."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(FEATURES)
    writer.writerows([repr(v) for v in row] for row in rows)
    return out.getvalue().encode()
