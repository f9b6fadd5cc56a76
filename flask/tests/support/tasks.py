"""A stand-in for a bound Celery task, to run a task function in process."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from flask import Flask


class FakeTask:
    """What the tasks use of a bound Celery task; ``on_progress`` runs at each PROGRESS."""

    def __init__(self, app: Flask, task_id: str, on_progress: Any = None) -> None:
        self.request = SimpleNamespace(id=task_id)
        self.backend = app.extensions["celery"].backend
        self.on_progress = on_progress

    def update_state(self, state: str, meta: dict[str, Any]) -> None:
        if self.on_progress is not None:
            self.on_progress()
        self.backend.store_result(self.request.id, meta, state)
