"""Iris prediction service: a Flask API that queues jobs for Celery workers.

``create_app()`` is the gunicorn entry point (``'iris_service:create_app()'``);
``iris_service.worker`` is the Celery worker's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask, Response
from werkzeug.middleware.proxy_fix import ProxyFix

from . import logs, metrics
from . import store as store_module
from .celery_app import celery_config, celery_init_app
from .config import GunicornSettings, Settings, load_settings, status_dir
from .errors import register_error_handlers
from .group_commit import ConfirmedPublisher, GroupCommitter
from .job_ends import InAppWaits
from .registry import Registry
from .status_files import StatusFiles
from .store import StatusStore, init_schema


def _no_store(response: Response) -> Response:
    # A job's status changes from one poll to the next: never serve a stale
    # copy. (Security headers are nginx's: it is the only public entry point.)
    if response.mimetype == "application/json":
        response.headers.setdefault("Cache-Control", "no-store")
    return response


class _IrisFlask(Flask):
    """Flask, with OPTIONS answered as 204 No Content (Flask's own is a 200 text/html
    with an empty body, the one non-JSON answer under /flask)."""

    def make_default_options_response(self) -> Response:
        # The documented hook: Flask calls it for every route's automatic OPTIONS.
        response = super().make_default_options_response()
        response.status_code = 204
        del response.headers["Content-Type"]
        return response


def create_app(
    test_config: Mapping[str, Any] | None = None, settings: Settings | None = None
) -> Flask:
    settings = settings or load_settings()
    logs.configure(settings.log_level, settings.log_format)
    app = _IrisFlask(__name__)
    # First of the request hooks, so that whatever the others log carries the id.
    logs.init_app(app)
    app.config.from_mapping(
        MAX_CONTENT_LENGTH=settings.max_content_length,
        CELERY=celery_config(settings),
    )
    if test_config is not None:
        app.config.update(test_config)

    folder = status_dir(settings)
    files = None if folder is None else StatusFiles(folder)
    store = StatusStore(settings.database_url, settings.sqlite_busy_timeout_ms, listener=files)
    init_schema(store.engine)
    settings.reports_dir.mkdir(parents=True, exist_ok=True)
    if files is not None:
        files.prepare()
    app.extensions["iris_settings"] = settings
    app.extensions["iris_store"] = store
    # ?wait= straight from gunicorn (nginx sends waits to the waiter process):
    # by default one thread of each process stays free for other requests.
    slots = settings.status_wait_slots
    if slots is None:
        slots = GunicornSettings().threads - 1
    app.extensions["iris_waits"] = InAppWaits(settings.broker_url, slots)
    # Issue 16: the model registry (its first use registers today's model).
    app.extensions["iris_registry"] = Registry(store.engine, settings)
    store_module.init_app(app)
    celery_app = celery_init_app(app)
    # Submits share transactions and confirm waits (group_commit.py).
    app.extensions["iris_committer"] = GroupCommitter(
        store, ConfirmedPublisher(celery_app, settings)
    )

    from . import batch_views, model_views, views

    app.register_blueprint(views.bp)
    app.register_blueprint(model_views.bp)
    app.register_blueprint(batch_views.bp)
    if settings.bench_inline_endpoint:
        from . import bench_views

        bench_views.init_app(app, settings)
    register_error_handlers(app)
    if not app.config.get("TESTING"):
        # FLASK_DEBUG in the environment must never turn debugging on in service.
        app.debug = False
    app.after_request(_no_store)
    metrics.init_app(app)
    # nginx sets exactly one hop of X-Forwarded-For/-Proto/-Host/-Port.
    app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
        app.wsgi_app, x_for=1, x_proto=1, x_host=1, x_port=1
    )
    return app
