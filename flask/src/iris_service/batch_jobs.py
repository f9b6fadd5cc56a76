"""The batch job (POST /flask/batch): predict every row of a CSV of measurements
in chunks, with a PROGRESS state per chunk, then write the result CSV and a PDF.

It runs on the prediction queue. The web app stores the checked rows in
``MODELS_DIR/data/<sha256>.csv`` before publishing; the message carries that
SHA-256 and the model version chosen at submit. The result CSV (the input rows,
the label and each class's probability) and the PDF are each written whole to a
temporary file and renamed into place: a worker killed mid-batch leaves neither
half written, and the redelivered job (late ack; attempts bounded as a
prediction's) starts over.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Any

from celery import Celery, Task, states
from celery.exceptions import Ignore
from celery.utils.log import get_task_logger
from flask import current_app
from sqlalchemy.exc import OperationalError

from . import batch_report, reports, testhooks
from .celery_app import BATCH_TASK
from .config import Settings
from .files import write_atomically
from .model import FEATURES, Prediction, ServingModel
from .registry import Registry
from .result_backend import COMPLETED_AT
from .store import StatusStore
from .training_jobs import begin_attempt
from .training_request import data_path, measurements_csv, parse_measurements_csv

logger = get_task_logger(__name__)

# Rows predicted between two progress writes.
CHUNK_ROWS = 500


def _load_rows(settings: Settings, data: str) -> tuple[tuple[float, ...], ...]:
    path = data_path(settings.models_dir, data) if len(data) == 64 and data.isalnum() else None
    if path is None or not path.is_file():
        raise ValueError(f"the batch's rows {data[:64]!r} are not stored")
    content = path.read_bytes()
    rows = parse_measurements_csv(content)
    if measurements_csv(rows) != content:
        raise ValueError("the stored rows of the batch are not in their checked form")
    return rows


def result_csv(
    rows: tuple[tuple[float, ...], ...], predictions: list[Prediction], classes: list[str]
) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*FEATURES, "label", *(f"probability_{c}" for c in classes)])
    for row, p in zip(rows, predictions, strict=True):
        writer.writerow([*(repr(v) for v in row), p.label, *(p.probabilities[c] for c in classes)])
    return out.getvalue().encode()


def predict_batch(task: Task, data: str, model_version: str | None = None) -> dict[str, Any]:
    settings: Settings = current_app.extensions["iris_settings"]
    store: StatusStore = current_app.extensions["iris_store"]
    registry: Registry = current_app.extensions["iris_registry"]
    task_id: str = task.request.id

    attempt = begin_attempt(store, settings, task_id, "batch job")

    rows = _load_rows(settings, data)
    model: ServingModel = registry.load(model_version or registry.default_version())
    predictions: list[Prediction] = []
    chunks = (len(rows) + CHUNK_ROWS - 1) // CHUNK_ROWS
    for chunk in range(chunks):
        part = rows[chunk * CHUNK_ROWS : (chunk + 1) * CHUNK_ROWS]
        predictions.extend(model.predict(dict(zip(FEATURES, row, strict=True))) for row in part)
        task.update_state(
            state="PROGRESS",
            meta={
                "stage": f"chunk {chunk + 1} of {chunks}: {len(predictions)} of {len(rows)} rows",
                "progress": 0.05 + 0.8 * len(predictions) / len(rows),
            },
        )
        if settings.test_hooks:
            testhooks.batch_chunk_hook(task, rows[0][0], chunk + 1, attempt.number)
    if store.state_of(task_id) == states.REVOKED:
        logger.info("batch job %s was cancelled while it ran; stopping", task_id)
        raise Ignore()

    task.update_state(
        state="PROGRESS", meta={"stage": "writing the CSV and the report", "progress": 0.9}
    )
    completed = datetime.now(UTC)
    settings.reports_dir.mkdir(parents=True, exist_ok=True)
    write_atomically(
        result_csv(rows, predictions, model.classes),
        reports.csv_path(settings.reports_dir, task_id),
    )
    labels = [p.label for p in predictions]
    confidences = [p.probabilities[p.label] for p in predictions]
    pdf = batch_report.render(task_id, completed, rows, labels, confidences, model.card)
    write_atomically(pdf, reports.path(settings.reports_dir, task_id))
    counts = {c: labels.count(c) for c in model.classes}
    return {
        "rows": len(rows),
        "counts": counts,
        "model_version": model.version,
        "csv_url": reports.csv_url(task_id),
        "report_path": reports.stored_path(task_id),
        COMPLETED_AT: completed.isoformat(),
    }


def register(celery_app: Celery, settings: Settings) -> None:
    celery_app.task(
        name=BATCH_TASK,
        bind=True,
        autoretry_for=(OperationalError,),
        retry_backoff=True,
        retry_backoff_max=5,
        max_retries=3,
    )(predict_batch)
