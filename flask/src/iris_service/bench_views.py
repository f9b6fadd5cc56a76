"""Benchmark-only endpoint: the job's work done inline, in the request, with no queue.

``POST /flask/bench/inline`` validates the same body as ``/flask/predict``, then
predicts and renders and writes the same PDF the task does, synchronously, and
answers 200 with the result. The benchmark (``bench/``) measures it through the
same nginx and gunicorn as the queued path, so the cost of the queue is a ratio
against this floor. It exists only when ``BENCH_INLINE_ENDPOINT=1`` (off by
default): it gives up every guarantee of the queue and must not be served.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from flask import Blueprint, Flask, Response, current_app, jsonify

from . import report, views
from .config import Settings
from .model import get_model
from .tasks import write_report

bp = Blueprint("bench", __name__, url_prefix="/flask/bench")


def init_app(app: Flask, settings: Settings) -> None:
    """Register the endpoint and pay the report's once-per-process costs now, as the
    worker does at its start, so the floor is not measured on a cold process."""
    app.register_blueprint(bp)
    report.warm_up(get_model(settings.model_path).card)


@bp.post("/inline")
def inline() -> Response:
    settings: Settings = current_app.extensions["iris_settings"]
    received = datetime.now(UTC)
    values = views._parse_json()[0].model_dump()
    model = get_model(settings.model_path)
    prediction = model.predict(values)
    task_id = str(uuid.uuid4())
    size = write_report(settings, model, task_id, values, prediction, received, datetime.now(UTC))
    return jsonify(
        task_id=task_id,
        label=prediction.label,
        probabilities=prediction.probabilities,
        model_version=model.version,
        report_bytes=size,
    )
