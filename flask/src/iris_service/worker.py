"""Entry point of the Celery worker: ``celery -A iris_service.worker worker``."""

from celery.signals import worker_init, worker_process_init

from . import create_app, report
from .retention import retention_step
from .tasks import get_model

flask_app = create_app()
celery_app = flask_app.extensions["celery"]
celery_app.steps["worker"].add(
    retention_step(flask_app.extensions["iris_settings"], flask_app.extensions["iris_store"])
)


@worker_init.connect  # type: ignore[untyped-decorator]
def _prepare_report(**_: object) -> None:
    # Fonts, recorded charts and the model card page, prepared once in the worker's
    # main process before its pool forks: every pool process inherits them, so no
    # job pays for them (and `celery inspect`, which imports this module, does not).
    report.warm_up(get_model(flask_app.extensions["iris_settings"]).card)


@worker_process_init.connect  # type: ignore[untyped-decorator]
def _load_model(**_: object) -> None:
    # Load the model in each pool process as it starts, not on its first job.
    get_model(flask_app.extensions["iris_settings"])
