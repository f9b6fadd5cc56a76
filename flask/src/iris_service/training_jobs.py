"""The training job: check the request again, train with a progress state per fold,
register the model, write the training report.

It runs on the training queue (celery_app.py), so only a training worker
(``launch_celery_worker.sh --queue training``) takes it, under its own time
limits. The job's message carries the estimator, its parameters and the data:
"iris" for the built-in set, else the SHA-256 of an upload the web app stored
in ``MODELS_DIR/data`` before publishing.

Like a prediction, a job counts its starts (store.begin_attempt) and gives up
after TASK_MAX_ATTEMPTS; a redelivered job trains again and registers the same
version (registry.register is idempotent), so a killed worker never leaves a
half-registered model.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from celery import Celery, Task, states
from celery.exceptions import Ignore
from celery.utils.log import get_task_logger
from flask import current_app
from sqlalchemy.exc import OperationalError

from . import reports, testhooks, training, training_report
from .celery_app import TRAIN_TASK
from .config import Settings
from .files import write_atomically
from .registry import Registry
from .result_backend import COMPLETED_AT
from .store import Attempt, StatusStore
from .tasks import PoisonJobError
from .training_request import (
    BUILTIN_DATA,
    CV_FOLDS,
    TrainingData,
    data_path,
    parse_csv,
    validate_spec,
)

logger = get_task_logger(__name__)


def _load_data(settings: Settings, data: str) -> TrainingData:
    if data == BUILTIN_DATA:
        return training.builtin_data()
    path = data_path(settings.models_dir, data) if len(data) == 64 and data.isalnum() else None
    if path is None or not path.is_file():
        raise ValueError(f"the job's training data {data[:64]!r} is not stored")
    loaded = parse_csv(path.read_bytes())
    if loaded.sha256 != data:
        raise ValueError("the stored training data does not match its SHA-256")
    return loaded


def begin_attempt(store: StatusStore, settings: Settings, task_id: str, kind: str) -> Attempt:
    """Count a start of a training or batch job, as a prediction's: drop a job with
    no record or a cancelled one (Ignore), give up past TASK_MAX_ATTEMPTS."""
    attempt = store.begin_attempt(task_id)
    if attempt is None:
        logger.warning("%s %s has no record; dropping it", kind, task_id)
        raise Ignore()
    if attempt.state == states.REVOKED:
        logger.info("%s %s was cancelled; not running it", kind, task_id)
        raise Ignore()
    if attempt.number > settings.max_attempts:
        raise PoisonJobError(
            f"gave up after {attempt.number - 1} attempts: "
            "the worker died each time it ran this job"
        )
    logger.info("%s started, attempt %d", kind, attempt.number)
    return attempt


def train(task: Task, spec: dict[str, Any], data: str) -> dict[str, Any]:
    settings: Settings = current_app.extensions["iris_settings"]
    store: StatusStore = current_app.extensions["iris_store"]
    registry: Registry = current_app.extensions["iris_registry"]
    task_id: str = task.request.id

    attempt = begin_attempt(store, settings, task_id, "training job")

    # Re-check the world: the message may not come from our web app.
    checked = validate_spec(spec)
    rows = _load_data(settings, data)
    n_estimators = checked.params.get("n_estimators")

    def on_fold(number: int, total: int) -> None:
        meta = {
            "stage": f"cross-validation fold {number} of {total} done",
            "progress": 0.1 + 0.7 * number / total,
        }
        task.update_state(state="PROGRESS", meta=meta)
        if settings.test_hooks:
            testhooks.training_fold_hook(task, settings, n_estimators, number)

    task.update_state(
        state="PROGRESS",
        meta={"stage": f"cross-validation fold 1 of {CV_FOLDS}", "progress": 0.1},
    )
    card, artifact, suffix = training.train_model(checked, rows, on_fold)
    task.update_state(state="PROGRESS", meta={"stage": "registering the model", "progress": 0.85})
    name, sha256 = registry.write_artifact(card, artifact, suffix)
    if settings.test_hooks:
        testhooks.training_register_hook(task, n_estimators, attempt.number)
    row = registry.insert(card, name, sha256, task_id=task_id)

    completed = datetime.now(UTC)
    pdf = training_report.render(card, task_id, completed)
    settings.reports_dir.mkdir(parents=True, exist_ok=True)
    write_atomically(pdf, reports.path(settings.reports_dir, task_id))
    logger.info("model %s registered (%s)", row.version, row.estimator)
    return {
        "model_version": row.version,
        "model_url": f"/flask/models/{row.version}",
        "report_path": reports.stored_path(task_id),
        COMPLETED_AT: completed.isoformat(),
    }


def register(celery_app: Celery, settings: Settings) -> None:
    celery_app.task(
        name=TRAIN_TASK,
        bind=True,
        autoretry_for=(OperationalError,),
        retry_backoff=True,
        retry_backoff_max=5,
        max_retries=3,
        # Training has its own bounds (TRAINING_TIME_LIMIT), not a prediction's.
        soft_time_limit=settings.training_soft_time_limit,
        time_limit=settings.training_time_limit,
    )(train)
