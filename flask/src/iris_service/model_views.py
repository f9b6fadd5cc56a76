"""The model registry's HTTP API (issue 16): list models, read a card, promote, train.

``POST /flask/models`` checks the request whole (estimator, parameters, every
row of an uploaded CSV) before anything is stored or queued; a refused request
leaves nothing behind. An accepted one is a job like a prediction: PENDING rows
first, then the publish, then 202 with the status URL. It goes to the training
queue, and its PENDING status says whether a training worker consumes it.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

from celery import states
from flask import Blueprint, Response, current_app, jsonify, request, url_for
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import RequestEntityTooLarge

from .celery_app import TRAIN_TASK
from .config import Settings
from .errors import ApiError, json_error, unavailable
from .registry import ModelRow, is_version, registry_of_app
from .status_body import iso
from .store import StatusStore
from .training_request import (
    BUILTIN_DATA,
    CSV_TYPES,
    ESTIMATORS,
    DataError,
    TrainingData,
    TrainingSpec,
    parse_csv,
    store_upload,
    validate_spec,
)
from .views import _broker_queue_state, _celery, _settings, accepted, publish_recorded

log = logging.getLogger(__name__)
bp = Blueprint("models", __name__, url_prefix="/flask")


def _summary(row: ModelRow) -> dict[str, Any]:
    card = row.card
    return {
        "version": row.version,
        "estimator": row.estimator,
        "state": row.state,
        "default": row.is_default,
        "created_at": iso(row.created_at),
        "cv_accuracy": card.get("cv_accuracy"),
        "training_rows": card.get("training_samples"),
        "url": url_for("models.model", version=row.version),
    }


def _row(version: str) -> ModelRow:
    if not is_version(version):
        raise ApiError(400, "a model version is 16 hex digits", version=version[:64])
    row = registry_of_app().get(version)
    if row is None:
        raise ApiError(404, "no model with this version", version=version)
    return row


@bp.get("/models")
def models() -> Response:
    args = request.args
    try:
        limit = int(args.get("limit", "20"))
        before = int(args["before"]) if args.get("before") else None
    except ValueError:
        raise ApiError(400, "limit and before must be integers") from None
    if not 1 <= limit <= 100:
        raise ApiError(400, "limit must be between 1 and 100", limit=limit)
    page, cursor = registry_of_app().list(limit=limit, before=before)
    return jsonify(models=[_summary(r) for r in page], next=None if cursor is None else str(cursor))


@bp.get("/models/<version>")
def model(version: str) -> Response:
    row = _row(version)
    return jsonify(**_summary(row), task_id=row.task_id, card=row.card)


@bp.post("/models/<version>/default")
def promote(version: str) -> Response:
    row = _row(version)
    promoted = registry_of_app().promote(row.version)
    if promoted is None or promoted.state != "READY":
        state = row.state if promoted is None else promoted.state
        raise ApiError(409, f"only a READY model can be the default (this one is {state})")
    log.info("model %s is the default now", promoted.version)
    return jsonify(**_summary(promoted), card=promoted.card)


# ------------------------------------------------------------------ training


def _json_text(raw: str | None, name: str) -> Any:
    if raw is None:
        return {}
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise ApiError(400, "invalid input", fields={name: "must be a JSON object"}) from None


def _request_spec_and_data() -> tuple[TrainingSpec, TrainingData | None]:
    """The training request in any of its three forms; None data: the built-in set."""
    mimetype = request.mimetype
    if mimetype == "application/json" or mimetype.endswith("+json"):
        payload = _json_text(request.get_data(as_text=True), "body")
        spec = validate_spec(payload)
        data = payload.get("data", BUILTIN_DATA)
        if data != BUILTIN_DATA:
            raise ApiError(
                400,
                "invalid input",
                fields={
                    "data": f'must be "{BUILTIN_DATA}"; send a CSV as text/csv or a multipart file'
                },
            )
        return spec, None
    if mimetype in CSV_TYPES:
        spec = validate_spec(
            {
                "estimator": request.args.get("estimator"),
                "params": _json_text(request.args.get("params"), "params"),
            }
        )
        return spec, parse_csv(request.get_data())
    if mimetype == "multipart/form-data":
        form = request.form
        spec = validate_spec(
            {"estimator": form.get("estimator"), "params": _json_text(form.get("params"), "params")}
        )
        upload = request.files.get("data")
        if upload is None:
            return spec, None
        return spec, parse_csv(upload.read())
    raise ApiError(
        415,
        "send application/json, a CSV (text/csv, estimator and params in the query) "
        "or multipart/form-data (fields estimator and params, file data)",
        content_type=request.content_type or None,
    )


def _waiting_stage(settings: Settings) -> str:
    """What a queued training job's status says while it waits."""
    queue = settings.training_queue_name
    try:
        consumers, _ = _broker_queue_state(queue)
    except Exception:  # best effort: the publish below reports a broker that is down
        return f"queued in the {queue} queue"
    if consumers:
        return f"queued in the {queue} queue for a training worker"
    return (
        f"queued in the {queue} queue; no training worker consumes it "
        "(start one: ./launch_celery_worker.sh --queue training)"
    )


@bp.post("/models")
def train() -> Response:
    settings = _settings()
    # Uploads are larger than predictions: this route's own limit (nginx has the same).
    request.max_content_length = settings.max_training_upload
    try:
        spec, data = _request_spec_and_data()
    except RequestEntityTooLarge:
        limit = settings.max_training_upload
        return json_error(413, f"the body is too large (at most {limit} bytes)", limit=limit)
    except DataError as exc:
        return json_error(
            400,
            "the training data has problems",
            problems=exc.problems,
            problem_count=exc.total,
        )
    source = BUILTIN_DATA if data is None else store_upload(settings.models_dir, data)
    inputs = {"estimator": spec.estimator, "params": spec.params, "data": source}
    task_id = str(uuid.uuid4())
    store: StatusStore = current_app.extensions["iris_store"]
    celery_app = _celery()
    try:
        store.create_pending(task_id, inputs)
        # Before the publish, so that a worker's STARTED is never overwritten.
        celery_app.backend.store_result(
            task_id, {"stage": _waiting_stage(settings), "progress": 0.0}, states.PENDING
        )
    except SQLAlchemyError:
        log.exception("could not record training job %s", task_id)
        return unavailable("the result backend is unavailable; try again later")
    refused = publish_recorded(
        store,
        task_id,
        TRAIN_TASK,
        {"spec": {"estimator": spec.estimator, "params": spec.params}, "data": source},
        queue=settings.training_queue_name,
    )
    if refused is not None:
        return refused
    log.info("training job queued", extra={"task_id": task_id})
    return accepted(task_id, estimator=spec.estimator, params=spec.params, data=source)


def estimators_document() -> dict[str, Any]:
    """Each estimator's parameter schema (JSON Schema), for the OpenAPI document."""
    return {name: params.model_json_schema() for name, params in ESTIMATORS.items()}
