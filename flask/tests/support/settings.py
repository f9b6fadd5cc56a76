"""Settings for an in-process app on temporary files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from iris_service.config import Settings


def make_settings(
    tmp: Path, broker_url: str = "amqp://nobody:nothing@127.0.0.1:1/none", **overrides: Any
) -> Settings:
    values: dict[str, Any] = {
        "broker_url": broker_url,
        "database_url": f"sqlite:///{tmp / 'results.sqlite'}",
        "reports_dir": tmp / "reports",
        "model_path": tmp / "model" / "iris_model.json",
        "broker_connect_timeout": 0.5,
    }
    values.update(overrides)
    return Settings(**values)
