"""The prediction job: validate again, predict, write the PDF, return the result.

The task is idempotent: it is named by its task id, its PDF is written to a
temporary file and renamed into place, and Celery's backend ignores writes
after SUCCESS, so a redelivered job cannot leave two reports or two answers.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from celery import Celery, Task
from celery.exceptions import Ignore
from celery.utils.log import get_task_logger
from flask import current_app
from sqlalchemy.exc import OperationalError

from . import report
from .celery_app import PREDICT_TASK
from .config import Settings
from .model import IrisModel, load_or_train
from .store import StatusStore
from .validation import Measurements

logger = get_task_logger(__name__)

_models: dict[str, IrisModel] = {}


class PoisonJobError(RuntimeError):
    """A job that has started too often: each start killed its worker."""


def get_model(settings: Settings) -> IrisModel:
    """The model, loaded once per process."""
    key = str(settings.model_path)
    if key not in _models:
        _models[key] = load_or_train(settings.model_path)
    return _models[key]


def predict(task: Task, features: dict[str, Any]) -> dict[str, Any]:
    settings: Settings = current_app.extensions["iris_settings"]
    store: StatusStore = current_app.extensions["iris_store"]
    task_id: str = task.request.id

    attempts = store.begin_attempt(task_id)
    if attempts is None:
        # Its submit was refused (503) or its record has expired: nothing to do.
        logger.warning("job %s has no record; dropping it", task_id)
        raise Ignore()
    if attempts > settings.max_attempts:
        raise PoisonJobError(
            f"gave up after {attempts - 1} attempts: the worker died each time it ran this job"
        )

    # Re-check the world: the message may not come from our web app.
    measurements = Measurements.model_validate(features, strict=True)
    task.update_state(state="PROGRESS", meta={"stage": "predicting", "progress": 0.3})
    model = get_model(settings)
    values = measurements.model_dump()
    prediction = model.predict(values)

    task.update_state(state="PROGRESS", meta={"stage": "writing report", "progress": 0.6})
    pdf = report.render(
        report.ReportData(
            task_id=task_id,
            created_at=datetime.now(UTC),
            features=values,
            label=prediction.label,
            probabilities=prediction.probabilities,
            model_version=model.version,
        )
    )
    filename = report.report_filename(task_id)
    report.write_atomically(pdf, settings.reports_dir / filename)
    return {
        "label": prediction.label,
        "probabilities": prediction.probabilities,
        "model_version": model.version,
        "report_path": f"reports/{filename}",
    }


def register(celery_app: Celery, settings: Settings) -> None:
    celery_app.task(
        name=PREDICT_TASK,
        bind=True,
        # Only a transient database error is worth another try; bad input or a
        # programming error fails at once.
        autoretry_for=(OperationalError,),
        retry_backoff=True,
        retry_backoff_max=5,
        max_retries=3,
    )(predict)
