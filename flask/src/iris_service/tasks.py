"""The prediction job: validate again, predict, write the PDF, return the result.

The task is idempotent: it is named by its task id, its PDF is written to a
temporary file and renamed into place, and Celery's backend ignores writes
after SUCCESS, so a redelivered job cannot leave two reports or two answers.
"""

from __future__ import annotations

import os
import time
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
from .files import write_atomically
from .model import IrisModel, Prediction, load_or_train
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


# Test-only fault injection, honoured only when IRIS_TEST_HOOKS=1: nothing in
# build.sh, the images or config defaults sets it, so in production these are
# ordinary (if odd) measurements. The fault tests need a job that is still
# running when they kill its process, and one that kills its worker every time.
SLOW_JOB_SEPAL_LENGTH = 99.25
POISON_JOB_SEPAL_LENGTH = 99.75


def _test_fault(task: Task, settings: Settings, sepal_length: float) -> None:
    if sepal_length == POISON_JOB_SEPAL_LENGTH:
        logger.warning("test hook: job %s kills its worker process", task.request.id)
        os._exit(70)
    if sepal_length == SLOW_JOB_SEPAL_LENGTH:
        # The pid lets a test kill exactly the pool process that runs this job.
        meta = {"stage": "test delay", "progress": 0.5, "pid": os.getpid()}
        task.update_state(state="PROGRESS", meta=meta)
        time.sleep(settings.test_task_delay_seconds)


def predict(task: Task, features: dict[str, Any]) -> dict[str, Any]:
    settings: Settings = current_app.extensions["iris_settings"]
    store: StatusStore = current_app.extensions["iris_store"]
    task_id: str = task.request.id

    attempt = store.begin_attempt(task_id)
    if attempt is None:
        # Its submit was refused (503) or its record has expired: nothing to do.
        logger.warning("job %s has no record; dropping it", task_id)
        raise Ignore()
    if attempt.number > settings.max_attempts:
        raise PoisonJobError(
            f"gave up after {attempt.number - 1} attempts: "
            "the worker died each time it ran this job"
        )

    # Re-check the world: the message may not come from our web app.
    measurements = Measurements.model_validate(features, strict=True)
    if settings.test_hooks:
        _test_fault(task, settings, measurements.sepal_length)
    # Predicting takes microseconds: no state write of its own (each costs more).
    values = measurements.model_dump()
    model = get_model(settings)
    prediction = model.predict(values)
    task.update_state(state="PROGRESS", meta={"stage": "writing report", "progress": 0.6})
    filename, _ = write_report(settings, model, task_id, values, prediction, attempt.submitted_at)
    return {
        "label": prediction.label,
        "probabilities": prediction.probabilities,
        "model_version": model.version,
        "report_path": f"reports/{filename}",
    }


def write_report(
    settings: Settings,
    model: IrisModel,
    task_id: str,
    values: dict[str, float],
    prediction: Prediction,
    submitted_at: datetime,
) -> tuple[str, int]:
    """Render the job's PDF and write it in place; returns its file name and size.

    The benchmark's inline endpoint calls this too, so its floor is the same work.
    """
    pdf = report.render(
        report.ReportData(
            task_id=task_id,
            created_at=datetime.now(UTC),
            features=values,
            label=prediction.label,
            probabilities=prediction.probabilities,
            model_version=model.version,
            submitted_at=submitted_at,
            model_card=model.card,
        )
    )
    filename = report.report_filename(task_id)
    settings.reports_dir.mkdir(parents=True, exist_ok=True)
    write_atomically(pdf, settings.reports_dir / filename)
    return filename, len(pdf)


def register(celery_app: Celery, settings: Settings) -> None:
    if settings.test_hooks:
        logger.warning("IRIS_TEST_HOOKS=1: test-only fault injection is on (never in production)")
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
