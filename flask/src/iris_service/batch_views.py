"""Batch predictions (issue 16): ``POST /flask/batch`` and ``GET /flask/result/<id>.csv``.

A batch is a CSV of measurements (``text/csv`` body, or the file part ``data``
of a multipart form), checked whole before anything is stored or queued, with
the row and column of each problem, as a training CSV is. An accepted batch is
one job on the prediction queue (batch_jobs.py): PENDING rows first, then the
publish, then 202, as for a prediction; its status reports each chunk.
"""

from __future__ import annotations

import hashlib
import logging
import uuid

from flask import Blueprint, Response, current_app, request, send_file, url_for
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import RequestEntityTooLarge

from . import reports
from .celery_app import BATCH_TASK
from .errors import ApiError, json_error, unavailable
from .files import write_atomically
from .registry import MODEL_VERSION, registry_of_app, requested_version
from .store import StatusStore
from .training_request import (
    CSV_TYPES,
    DataError,
    data_path,
    measurements_csv,
    parse_measurements_csv,
)
from .views import _behind_nginx, _lookup, _settings, accepted, publish_recorded

log = logging.getLogger(__name__)
bp = Blueprint("batch", __name__, url_prefix="/flask")


def _request_csv() -> tuple[bytes, object]:
    """The batch's CSV bytes and its model_version (query or form field), if any."""
    mimetype = request.mimetype
    if mimetype in CSV_TYPES:
        return request.get_data(), request.args.get(MODEL_VERSION)
    if mimetype == "multipart/form-data":
        upload = request.files.get("data")
        if upload is None:
            raise ApiError(400, "invalid input", fields={"data": "the CSV file part is required"})
        return upload.read(), request.form.get(MODEL_VERSION)
    raise ApiError(
        415,
        "send a CSV (text/csv; model_version in the query) or multipart/form-data "
        "(the file in the part data, an optional field model_version)",
        content_type=request.content_type or None,
    )


@bp.post("/batch")
def batch() -> Response:
    settings = _settings()
    # A batch's CSV may be larger than a prediction: the training upload's limit (nginx too).
    request.max_content_length = settings.max_training_upload
    try:
        content, version = _request_csv()
        rows = parse_measurements_csv(content)
    except RequestEntityTooLarge:
        limit = settings.max_training_upload
        return json_error(413, f"the body is too large (at most {limit} bytes)", limit=limit)
    except DataError as exc:
        return json_error(
            400, "the batch has problems", problems=exc.problems, problem_count=exc.total
        )
    model_version = requested_version(version)
    task_id = str(uuid.uuid4())
    store: StatusStore = current_app.extensions["iris_store"]
    try:
        model_version = model_version or registry_of_app().default_version()
        # Stored under its fingerprint before the job exists, as a training upload is.
        canonical = measurements_csv(rows)
        sha256 = hashlib.sha256(canonical).hexdigest()
        path = data_path(settings.models_dir, sha256)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(canonical, path)
        inputs = {"batch": sha256, "rows": len(rows), MODEL_VERSION: model_version}
        store.create_pending(task_id, inputs)
    except SQLAlchemyError:
        log.exception("could not record batch job %s", task_id)
        return unavailable("the result backend is unavailable; try again later")
    refused = publish_recorded(
        store, task_id, BATCH_TASK, {"data": sha256, MODEL_VERSION: model_version}
    )
    if refused is not None:
        return refused
    log.info("batch job queued (%d rows)", len(rows), extra={"task_id": task_id})
    return accepted(
        task_id, csv_url=reports.csv_url(task_id), rows=len(rows), model_version=model_version
    )


@bp.get("/result/<task_id>.csv")
def result_csv(task_id: str) -> Response:
    job = _lookup(task_id)
    task_id = job.task_id
    if job.state != "SUCCESS":
        raise ApiError(
            409,
            "the result is not ready yet" if job.state != "FAILURE" else "the task failed",
            state=job.state,
            status_url=url_for("api.status", task_id=task_id),
        )
    path = reports.csv_path(_settings().reports_dir, task_id)
    if not path.is_file():
        raise ApiError(404, "this task has no result CSV, or it has expired", task_id=task_id)
    download_name = f"iris-batch-{task_id}.csv"
    if _behind_nginx():
        response = Response(status=200, mimetype="text/csv")
        response.headers["X-Accel-Redirect"] = reports.csv_accel_redirect(task_id)
        response.headers["Content-Disposition"] = f'attachment; filename="{download_name}"'
        return response
    return send_file(
        path, mimetype="text/csv", as_attachment=True, download_name=download_name, max_age=0
    )
