"""Settings: each variable declared once (default, checks, precedence); values passed down."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from kombu.utils.url import url_to_parts
from pydantic import ValidationError
from sqlalchemy import Engine, create_engine

from iris_service import create_app, gunicorn_conf
from iris_service.celery_app import celery_config
from iris_service.config import GunicornSettings, RabbitMQSettings, Settings, load_settings

from support.settings import make_settings

ENV_NAMES = sorted(
    str(field.validation_alias)
    for cls in (Settings, RabbitMQSettings, GunicornSettings)
    for field in cls.model_fields.values()
)


@pytest.fixture(autouse=True)
def bare_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No setting in the environment (whatever the shell running pytest exports),
    and a working directory of our own, where relative paths resolve."""
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_every_variable_is_declared() -> None:
    assert set(ENV_NAMES) >= {
        "BROKER_URL",
        "DATABASE_URL",
        "REPORTS_DIR",
        "MODEL_PATH",
        "QUEUE_NAME",
        "QUEUE_MAX_LENGTH",
        "TASK_SOFT_TIME_LIMIT",
        "TASK_TIME_LIMIT",
        "TASK_MAX_ATTEMPTS",
        "RESULT_RETENTION_SECONDS",
        "MAX_CONTENT_LENGTH",
        "SQLITE_BUSY_TIMEOUT_MS",
        "BROKER_CONNECT_TIMEOUT",
        "LOG_LEVEL",
        "RESULT_CLEANUP_INTERVAL_SECONDS",
        "STATUS_FILES",
        "STATUS_DIR",
        "STATUS_FILE_SECONDS",
        "TASKS_API_TOKEN",
        "IRIS_TEST_HOOKS",
        "TEST_TASK_DELAY_SECONDS",
        "BENCH_INLINE_ENDPOINT",
        "RABBITMQ_USER",
        "RABBITMQ_PASSWORD",
        "RABBITMQ_HOST",
        "RABBITMQ_PORT",
        "RABBITMQ_VHOST",
        "GUNICORN_BIND",
        "WEB_CONCURRENCY",
        "GUNICORN_THREADS",
        "GUNICORN_TIMEOUT",
        "GUNICORN_ACCESS_LOG",
        "GUNICORN_SOCKET_PRIVATE",
    }


def test_defaults(bare_env: Path) -> None:
    s = load_settings()
    assert s.broker_url == "amqp://iris:@127.0.0.1:5672/iris"
    assert s.database_url == f"sqlite:///{bare_env.resolve() / 'db' / 'results.sqlite'}"
    assert s.reports_dir == bare_env.resolve() / "document_root" / "reports"
    assert s.model_path == bare_env.resolve() / "var" / "model" / "iris_model.json"
    assert s.queue_name == "predictions"
    assert s.queue_max_length == 100_000
    assert (s.task_soft_time_limit, s.task_time_limit, s.max_attempts) == (20, 30, 3)
    assert s.retention_seconds == 7 * 24 * 3600
    assert s.max_content_length == 16 * 1024
    assert s.sqlite_busy_timeout_ms == 10_000
    assert s.broker_connect_timeout == 2.0
    assert s.log_level == "INFO"
    assert s.cleanup_interval_seconds == 3600
    assert s.status_files is True
    assert s.status_dir is None
    assert s.status_file_seconds == 120
    assert s.tasks_api_token is None
    assert s.test_hooks is False
    assert s.test_task_delay_seconds == 5.0
    assert s.bench_inline_endpoint is False


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch, bare_env: Path) -> None:
    env = {
        "BROKER_URL": "amqp://u:p@broker:5673/v",
        "DATABASE_URL": "sqlite:////srv/db.sqlite",
        "REPORTS_DIR": "out/reports",
        "MODEL_PATH": "/models/m.json",
        "QUEUE_NAME": "jobs",
        "QUEUE_MAX_LENGTH": "10",
        "TASK_MAX_ATTEMPTS": "5",
        "RESULT_RETENTION_SECONDS": "60",
        "RESULT_CLEANUP_INTERVAL_SECONDS": "1",
        "SQLITE_BUSY_TIMEOUT_MS": "250",
        "BROKER_CONNECT_TIMEOUT": "0.5",
        "LOG_LEVEL": "debug",
        "STATUS_FILES": "0",
        "STATUS_DIR": "status",
        "TASKS_API_TOKEN": "secret",
        "IRIS_TEST_HOOKS": "1",
        "TEST_TASK_DELAY_SECONDS": "0.2",
        "BENCH_INLINE_ENDPOINT": "1",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    s = load_settings()
    assert s.broker_url == "amqp://u:p@broker:5673/v"
    assert s.database_url == "sqlite:////srv/db.sqlite"
    assert s.reports_dir == bare_env.resolve() / "out" / "reports"
    assert s.model_path == Path("/models/m.json")
    assert (s.queue_name, s.queue_max_length, s.max_attempts) == ("jobs", 10, 5)
    assert (s.retention_seconds, s.cleanup_interval_seconds) == (60, 1)
    assert s.sqlite_busy_timeout_ms == 250
    assert s.broker_connect_timeout == 0.5
    assert s.log_level == "DEBUG"
    assert s.status_files is False
    assert s.status_dir == bare_env.resolve() / "status"
    assert s.tasks_api_token == "secret"
    assert s.test_hooks is True
    assert s.test_task_delay_seconds == 0.2
    assert s.bench_inline_endpoint is True


@pytest.mark.parametrize("value", ["", "   "])
def test_a_blank_value_means_the_default(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    for name in ("BROKER_URL", "QUEUE_NAME", "TASK_MAX_ATTEMPTS", "STATUS_DIR", "TASKS_API_TOKEN"):
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("LOG_LEVEL", f" warning {value}")
    s = load_settings()
    assert s.broker_url == "amqp://iris:@127.0.0.1:5672/iris"
    assert s.queue_name == "predictions"
    assert s.max_attempts == 3
    assert s.status_dir is None
    assert s.tasks_api_token is None
    assert s.log_level == "WARNING"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("QUEUE_MAX_LENGTH", "lots"),
        ("TASK_MAX_ATTEMPTS", "0"),
        ("SQLITE_BUSY_TIMEOUT_MS", "10s"),
        ("RABBITMQ_PORT", "amqp"),
        ("LOG_LEVEL", "loud"),
        ("STATUS_FILES", "maybe"),
    ],
)
def test_a_bad_value_names_its_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as caught:
        load_settings()
    assert caught.value.error_count() == 1
    assert caught.value.errors()[0]["loc"][0] == name
    assert name in str(caught.value)


def test_broker_url_from_parts_quotes_them(monkeypatch: pytest.MonkeyPatch) -> None:
    password = "p@ss:w/rd %#?"
    monkeypatch.setenv("RABBITMQ_USER", "the user")
    monkeypatch.setenv("RABBITMQ_PASSWORD", password)
    monkeypatch.setenv("RABBITMQ_HOST", "rabbitmq")
    monkeypatch.setenv("RABBITMQ_PORT", "5673")
    monkeypatch.setenv("RABBITMQ_VHOST", "/")
    url = load_settings().broker_url
    assert url == "amqp://the%20user:p%40ss%3Aw%2Frd%20%25%23%3F@rabbitmq:5673/%2F"
    # kombu, which opens the connection, reads back exactly what was set.
    parts = url_to_parts(url)
    assert (parts.username, parts.password, parts.hostname, parts.port, parts.path) == (
        "the user",
        password,
        "rabbitmq",
        5673,
        "/",
    )


def test_broker_url_wins_over_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RABBITMQ_PASSWORD", "unused")
    monkeypatch.setenv("BROKER_URL", "amqp://a:b@c:1/d")
    assert load_settings().broker_url == "amqp://a:b@c:1/d"


def test_keyword_arguments_override_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "sqlite:////from/env.sqlite")
    monkeypatch.setenv("TASK_MAX_ATTEMPTS", "9")
    monkeypatch.setenv("QUEUE_NAME", "from-env")
    s = Settings(database_url="sqlite:////given.sqlite", max_attempts=2)
    assert s.database_url == "sqlite:////given.sqlite"
    assert s.max_attempts == 2
    # What was not given still comes from the environment.
    assert s.queue_name == "from-env"


def test_unknown_keyword_is_refused() -> None:
    with pytest.raises(ValidationError, match="max_attempt"):
        Settings(max_attempt=2)  # type: ignore[call-arg]


def test_test_settings_ignore_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("QUEUE_NAME", "from-env")
    monkeypatch.setenv("DATABASE_URL", "sqlite:////from/env.sqlite")
    s = make_settings(tmp_path)
    assert s.queue_name == "predictions"
    assert s.database_url == f"sqlite:///{tmp_path / 'results.sqlite'}"


def test_no_dotenv_file_is_read(bare_env: Path) -> None:
    (bare_env / ".env").write_text("QUEUE_NAME=from-file\n")
    assert load_settings().queue_name == "predictions"


def test_settings_are_frozen_and_hide_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RABBITMQ_PASSWORD", "hunter2")
    monkeypatch.setenv("TASKS_API_TOKEN", "token-value")
    s = load_settings()
    with pytest.raises(ValidationError, match="frozen"):
        s.queue_name = "other"  # type: ignore[misc]
    assert "hunter2" not in repr(s)
    assert "token-value" not in repr(s)
    assert hash(s) == hash(load_settings())


def _busy_timeout(engine: Engine) -> int:
    with engine.connect() as conn:
        value = conn.exec_driver_sql("PRAGMA busy_timeout").scalar()
    assert isinstance(value, int)
    return value


def test_busy_timeout_reaches_every_engine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # The environment says otherwise: only the settings given may count.
    monkeypatch.setenv("SQLITE_BUSY_TIMEOUT_MS", "10000")
    settings = make_settings(tmp_path, sqlite_busy_timeout_ms=1234)
    app = create_app({"TESTING": True}, settings=settings)
    backend = app.extensions["celery"].backend
    assert _busy_timeout(app.extensions["iris_store"].engine) == 1234
    # The backend's one-statement writes, and Celery's own engine (its reads).
    assert _busy_timeout(backend._writer()) == 1234
    session = backend.ResultSession()
    try:
        assert _busy_timeout(session.get_bind()) == 1234
    finally:
        session.close()
    # The callback Celery is given applies the setting to any engine.
    engine = create_engine(f"sqlite:///{tmp_path / 'other.sqlite'}")
    celery_config(settings)["database_engine_callback"](engine)
    assert _busy_timeout(engine) == 1234


def test_gunicorn_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = GunicornSettings()
    assert (defaults.bind, defaults.threads, defaults.timeout) == ("127.0.0.1:8001", 16, 30)
    assert defaults.workers >= 1
    assert (defaults.access_log, defaults.socket_private) == (False, False)

    monkeypatch.setenv("GUNICORN_BIND", "unix:/run/a.sock,127.0.0.1:9000")
    monkeypatch.setenv("WEB_CONCURRENCY", "3")
    monkeypatch.setenv("GUNICORN_THREADS", "4")
    monkeypatch.setenv("GUNICORN_TIMEOUT", "10")
    monkeypatch.setenv("GUNICORN_ACCESS_LOG", "1")
    monkeypatch.setenv("GUNICORN_SOCKET_PRIVATE", "1")
    monkeypatch.setenv("LOG_LEVEL", "Warning")
    conf = importlib.reload(gunicorn_conf)
    try:
        assert conf.bind == ["unix:/run/a.sock", "127.0.0.1:9000"]
        assert (conf.workers, conf.threads, conf.timeout) == (3, 4, 10)
        assert conf.accesslog == "-"
        assert conf.umask == 0o007
        assert conf.loglevel == "warning"
    finally:
        monkeypatch.undo()
        importlib.reload(gunicorn_conf)


def test_bad_gunicorn_value_names_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEB_CONCURRENCY", "many")
    with pytest.raises(ValidationError, match="WEB_CONCURRENCY"):
        GunicornSettings()
