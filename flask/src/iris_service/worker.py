"""Entry point of the Celery worker: ``celery -A iris_service.worker worker``.

The worker registers the tasks (the web app only publishes them by name), adds
the retention bootstep, and prepares the model and the report's static parts
before its pool forks. Its logging is ours (logs.py), not Celery's: every
line of the job carries its request and task ids, in the same format as the
web app's.
"""

import logging
from typing import Any

from celery import Task
from celery.apps.worker import Worker
from celery.signals import (
    celeryd_after_setup,
    setup_logging,
    task_postrun,
    task_prerun,
    worker_init,
    worker_process_init,
)

from . import batch_jobs, create_app, logs, metrics, report, tasks, training_jobs
from .retention import retention_step

flask_app = create_app()
settings = flask_app.extensions["iris_settings"]
celery_app = flask_app.extensions["celery"]
registry = flask_app.extensions["iris_registry"]
tasks.register(celery_app, settings)
training_jobs.register(celery_app, settings)
batch_jobs.register(celery_app, settings)
celery_app.steps["worker"].add(retention_step(settings, flask_app.extensions["iris_store"]))


@worker_init.connect  # type: ignore[untyped-decorator]
def _prepare_report(**_: object) -> None:
    # Fonts, recorded charts and the model card page, prepared once in the worker's
    # main process before its pool forks: every pool process inherits them, so no
    # job pays for them (and `celery inspect`, which imports this module, does not).
    report.warm_up(registry.load(registry.default_version()).card)


@worker_process_init.connect  # type: ignore[untyped-decorator]
def _load_model(**_: object) -> None:
    # Load the default model in each pool process as it starts, not on its first job.
    registry.load(registry.default_version())
    # A new pool process may replace one that was killed mid-job.
    metrics.forget_dead_processes()


@setup_logging.connect  # type: ignore[untyped-decorator]
def _keep_our_logging(**_: object) -> None:
    # Connected, this signal tells Celery to leave logging alone (create_app
    # configured it): otherwise it gives the task loggers a handler and a
    # format of their own, which would neither carry the ids nor be JSON.
    logs.configure(settings.log_level, settings.log_format)


@celeryd_after_setup.connect  # type: ignore[untyped-decorator]
def _banner_as_one_record(instance: Worker, **_: object) -> None:
    # Celery prints its banner as a dozen plain lines on stdout; in JSON mode
    # the same text goes out as one record, so that every line is JSON.
    if settings.log_format == "json":
        logging.getLogger(__name__).info("%s", instance.startup_info(artlines=False))
        instance.quiet = True


@task_prerun.connect  # type: ignore[untyped-decorator]
def _bind_task_ids(task_id: str, task: Task, **_: object) -> None:
    # The message may not come from our web app: an id that is not well formed is dropped.
    given = task.request.get(logs.TASK_HEADER)
    logs.bind(given if logs.well_formed(given) else None, task_id)


@task_postrun.connect  # type: ignore[untyped-decorator]
def _clear_task_ids(**_: object) -> None:
    # Celery's own "Task … succeeded" line comes before this signal, with the ids.
    logs.clear()


# Job metrics, recorded in the pool process that runs the job (metrics.py).
@task_prerun.connect  # type: ignore[untyped-decorator]
def _job_started(task_id: str, **_: Any) -> None:
    metrics.job_started(task_id)


@task_postrun.connect  # type: ignore[untyped-decorator]
def _job_ended(task_id: str, state: str | None = None, **_: Any) -> None:
    metrics.job_ended(task_id, state)
