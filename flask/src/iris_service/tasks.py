"""The prediction job: validate again, predict, write the PDF, return the result.

The task is idempotent: it is named by its task id, its PDF is written to a
temporary file and renamed into place, and Celery's backend ignores writes
after SUCCESS, so a redelivered job cannot leave two reports or two answers.

A job can be cancelled (REVOKED) at any time by the web app. The task looks at
the job's state at its safe points: when it starts (in the transaction that
counts the attempt) and after it has written the PDF; a cancelled job stops
there with no result and no PDF. The backend refuses to write over REVOKED, so
even a run that passed its last check cannot turn a cancelled job into SUCCESS
(the web app removes such a run's PDF).

A job writes two states of its own, STARTED and SUCCESS (or FAILURE): the
prediction takes microseconds and the report a few milliseconds, less than a
poll interval, so neither gets a PROGRESS write (each write is a transaction
and a status file, docs/performance.md).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from celery import Celery, Task, states
from celery.exceptions import Ignore
from celery.utils.log import get_task_logger
from flask import current_app
from sqlalchemy.exc import OperationalError

from . import metrics, report, reports, testhooks
from .celery_app import PREDICT_TASK
from .config import Settings
from .files import write_atomically
from .model import Prediction, ServingModel
from .registry import Registry
from .result_backend import COMPLETED_AT
from .store import StatusStore
from .validation import Measurements

logger = get_task_logger(__name__)


class PoisonJobError(RuntimeError):
    """A job that has started too often: each start killed its worker."""


def _stop_if_cancelled(store: StatusStore, settings: Settings, task_id: str) -> None:
    """A safe point: end the run, removing its PDF if any, when the job was cancelled."""
    if store.state_of(task_id) != states.REVOKED:
        return
    reports.path(settings.reports_dir, task_id).unlink(missing_ok=True)
    logger.info("job %s was cancelled while it ran; stopping", task_id)
    # Ignore: Celery records no state (the job stays REVOKED) and acknowledges the message.
    raise Ignore()


def predict(
    task: Task, features: dict[str, Any], model_version: str | None = None
) -> dict[str, Any]:
    settings: Settings = current_app.extensions["iris_settings"]
    store: StatusStore = current_app.extensions["iris_store"]
    task_id: str = task.request.id

    attempt = store.begin_attempt(task_id)
    if attempt is None:
        # Its submit was refused (503) or its record has expired: nothing to do.
        logger.warning("job %s has no record; dropping it", task_id)
        raise Ignore()
    if attempt.state == states.REVOKED:
        # Cancelled while queued, or while an earlier run held the message.
        logger.info("job %s was cancelled; not running it", task_id)
        raise Ignore()
    metrics.job_submitted_at(task_id, attempt.submitted_at)
    if attempt.number > settings.max_attempts:
        raise PoisonJobError(
            f"gave up after {attempt.number - 1} attempts: "
            "the worker died each time it ran this job"
        )

    # In the pool process, with the job's request id (worker.py): a grep for the
    # id finds this line even when the job never ends.
    logger.info("job started, attempt %d", attempt.number)

    # Re-check the world: the message may not come from our web app.
    measurements = Measurements.model_validate(features, strict=True)
    if settings.test_hooks:
        testhooks.inject_fault(task, settings, measurements.sepal_length)
    values = measurements.model_dump()
    # Issue 16: the version the web app chose at submit (messages from before
    # the registry carry none: the default). A bad artifact fails the job here.
    registry: Registry = current_app.extensions["iris_registry"]
    model = registry.load(model_version or registry.default_version())
    prediction = model.predict(values)
    completed = datetime.now(UTC)
    metrics.report_written(
        write_report(settings, model, task_id, values, prediction, attempt.submitted_at, completed)
    )
    _stop_if_cancelled(store, settings, task_id)
    return {
        "label": prediction.label,
        "probabilities": prediction.probabilities,
        "model_version": model.version,
        "report_path": reports.stored_path(task_id),
        COMPLETED_AT: completed.isoformat(),
    }


def write_report(
    settings: Settings,
    model: ServingModel,
    task_id: str,
    values: dict[str, float],
    prediction: Prediction,
    submitted_at: datetime,
    completed_at: datetime,
) -> int:
    """Render the job's PDF and write it in place; returns its size in bytes.

    The benchmark's inline endpoint calls this too, so its floor is the same work.
    """
    pdf = report.render(
        report.ReportData(
            task_id=task_id,
            created_at=completed_at,
            features=values,
            label=prediction.label,
            probabilities=prediction.probabilities,
            model_version=model.version,
            submitted_at=submitted_at,
            model_card=model.card,
        )
    )
    settings.reports_dir.mkdir(parents=True, exist_ok=True)
    write_atomically(pdf, reports.path(settings.reports_dir, task_id))
    return len(pdf)


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
