"""Celery wiring: the Celery app built from Flask config, as Flask's Celery example does it.

Every reliability default of the design is set here, in one dictionary.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from celery import Celery, Task
from flask import Flask
from kombu.entity import Exchange, Queue

from .config import Settings, status_dir
from .store import configure_sqlite

PREDICT_TASK = "iris.predict"
# Issue 16: training jobs, on a queue of their own (training_jobs.py).
TRAIN_TASK = "iris.train"
# Batch predictions from a CSV, on the prediction queue (batch_jobs.py).
BATCH_TASK = "iris.batch"
# Training jobs are few and long: a short bound is plenty.
TRAINING_QUEUE_MAX_LENGTH = 1000


def _bounded_queue(name: str, max_length: int) -> Queue:
    return Queue(
        name,
        Exchange(name, type="direct", durable=True),
        routing_key=name,
        durable=True,
        # A bounded queue: when full, RabbitMQ nacks the publish (we use
        # confirms) and the client gets 503 instead of the queue growing forever.
        queue_arguments={"x-max-length": max_length, "x-overflow": "reject-publish"},
    )


def celery_config(settings: Settings) -> dict[str, Any]:
    queue = _bounded_queue(settings.queue_name, settings.queue_max_length)
    training = _bounded_queue(settings.training_queue_name, TRAINING_QUEUE_MAX_LENGTH)
    return {
        "broker_url": settings.broker_url,
        # Celery's database backend, writing each state in one statement (backend.py).
        "result_backend": f"iris_service.result_backend:SQLResultBackend+{settings.database_url}",
        "iris_sqlite_busy_timeout_ms": settings.sqlite_busy_timeout_ms,
        # The backend writes each state's status file too (status_files.py).
        "iris_status_dir": None if (folder := status_dir(settings)) is None else str(folder),
        # Celery's own engine (the backend's reads) locks as the writer's does.
        "database_engine_callback": partial(
            configure_sqlite, immediate=True, busy_timeout_ms=settings.sqlite_busy_timeout_ms
        ),
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        # A worker consumes the queues its --queues names: predictions by default,
        # training for a training worker (launch_celery_worker.sh --queue training).
        "task_queues": [queue, training],
        "task_routes": {TRAIN_TASK: {"queue": settings.training_queue_name}},
        "task_default_queue": settings.queue_name,
        "task_default_exchange": settings.queue_name,
        "task_default_routing_key": settings.queue_name,
        "task_create_missing_queues": False,
        "task_default_delivery_mode": "persistent",
        # Publisher confirms: a 202 is sent only after RabbitMQ has the message.
        "broker_transport_options": {"confirm_publish": True},
        "task_publish_retry": True,
        # Short: a request must fail fast with 503, not hang on a dead broker.
        "task_publish_retry_policy": {
            "max_retries": 2,
            "interval_start": 0,
            "interval_step": 0.2,
            "interval_max": 0.5,
        },
        "broker_connection_timeout": settings.broker_connect_timeout,
        "broker_connection_retry_on_startup": True,
        "broker_connection_max_retries": None,
        # Late ack + requeue on worker loss: a job survives a dying worker.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        # STARTED is written by the task itself, in the same transaction that
        # counts its attempts (store.begin_attempt): one write less per job.
        "task_track_started": False,
        "task_soft_time_limit": settings.task_soft_time_limit,
        "task_time_limit": settings.task_time_limit,
        "result_expires": settings.retention_seconds,
        "enable_utc": True,
        "timezone": "UTC",
        "worker_hijack_root_logger": False,
        "worker_redirect_stdouts": False,
    }


def celery_init_app(app: Flask) -> Celery:
    """Build the Celery app from ``app.config["CELERY"]``.

    The web app publishes tasks by name (``PREDICT_TASK``) and never runs
    them, so the tasks, and the report and model code they import, are
    registered only in the worker (worker.py, through :func:`tasks.register`).
    """

    class FlaskTask(Task):  # type: ignore[misc]
        def __call__(self, *args: object, **kwargs: object) -> object:
            with app.app_context():
                return self.run(*args, **kwargs)

    celery_app = Celery(app.name, task_cls=FlaskTask)
    celery_app.config_from_object(app.config["CELERY"])
    celery_app.set_default()
    app.extensions["celery"] = celery_app

    return celery_app
