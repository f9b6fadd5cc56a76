"""Entry point of the Celery worker: ``celery -A iris_service.worker worker``."""

from celery.signals import worker_process_init

from . import create_app, report
from .retention import retention_step
from .tasks import get_model

flask_app = create_app()
celery_app = flask_app.extensions["celery"]
celery_app.steps["worker"].add(
    retention_step(flask_app.extensions["iris_settings"], flask_app.extensions["iris_store"])
)
# Fonts, recorded charts and the model card page are prepared once, here in the
# parent: the pool processes forked from it inherit them, so no job pays for them.
report.warm_up(get_model(flask_app.extensions["iris_settings"]).card)


@worker_process_init.connect  # type: ignore[untyped-decorator]
def _load_model(**_: object) -> None:
    # Load the model in each pool process as it starts, not on its first job.
    get_model(flask_app.extensions["iris_settings"])
