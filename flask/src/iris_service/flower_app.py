"""The Celery app Flower runs with: ``celery --app iris_service.flower_app flower``.

Flower (the optional role, ``FLOWER=1``; ``flask/bin/start-flower.sh``) only
talks to the broker: it reads the workers' events and asks them inspect
commands. So its app has the service's broker and queue settings, built by the
same code as the web app's and the worker's (config.py, celery_app.py), and
nothing else: no Flask app, no database, no tasks, so the Flower container
needs no mounts and never opens the result backend.
"""

from __future__ import annotations

from celery import Celery

from .celery_app import celery_config
from .config import load_settings

_config = celery_config(load_settings())
# Job states are the service's (GET /flask/status); Flower's own result API
# would open the SQLite file, which the Flower container does not have.
_config["result_backend"] = None

app = Celery("iris_service")
app.config_from_object(_config)
