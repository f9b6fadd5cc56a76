"""Entry point of the Celery worker: ``celery -A iris_service.worker worker``.

The worker registers the tasks (the web app only publishes them by name), adds
the retention bootstep, and prepares the model and the report's static parts
before its pool forks.
"""

from typing import Any

from celery.signals import task_postrun, task_prerun, worker_init, worker_process_init

from . import create_app, metrics, report, tasks
from .model import get_model
from .retention import retention_step

flask_app = create_app()
settings = flask_app.extensions["iris_settings"]
celery_app = flask_app.extensions["celery"]
tasks.register(celery_app, settings)
celery_app.steps["worker"].add(retention_step(settings, flask_app.extensions["iris_store"]))


@worker_init.connect  # type: ignore[untyped-decorator]
def _prepare_report(**_: object) -> None:
    # Fonts, recorded charts and the model card page, prepared once in the worker's
    # main process before its pool forks: every pool process inherits them, so no
    # job pays for them (and `celery inspect`, which imports this module, does not).
    report.warm_up(get_model(settings.model_path).card)


@worker_process_init.connect  # type: ignore[untyped-decorator]
def _load_model(**_: object) -> None:
    # Load the model in each pool process as it starts, not on its first job.
    get_model(settings.model_path)
    # A new pool process may replace one that was killed mid-job.
    metrics.forget_dead_processes()


# Job metrics, recorded in the pool process that runs the job (metrics.py).
@task_prerun.connect  # type: ignore[untyped-decorator]
def _job_started(task_id: str, **_: Any) -> None:
    metrics.job_started(task_id)


@task_postrun.connect  # type: ignore[untyped-decorator]
def _job_ended(task_id: str, state: str | None = None, **_: Any) -> None:
    metrics.job_ended(task_id, state)
