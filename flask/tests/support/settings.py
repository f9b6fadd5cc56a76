"""Settings for an in-process app on temporary files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from iris_service.config import Settings


class _Given(Settings):
    """Keyword arguments and defaults only: a LOG_LEVEL or QUEUE_NAME exported in the
    shell that runs pytest must not change the app a test builds."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def given_settings(**values: Any) -> Settings:
    """Settings from these values and the declared defaults, never the environment."""
    return _Given(**values)


def make_settings(
    tmp: Path, broker_url: str = "amqp://nobody:nothing@127.0.0.1:1/none", **overrides: Any
) -> Settings:
    values: dict[str, Any] = {
        "broker_url": broker_url,
        "database_url": f"sqlite:///{tmp / 'results.sqlite'}",
        "reports_dir": tmp / "reports",
        "model_path": tmp / "model" / "iris_model.json",
        "models_dir": tmp / "models",
        "broker_connect_timeout": 0.5,
    }
    values.update(overrides)
    return given_settings(**values)
