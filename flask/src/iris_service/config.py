"""Every setting the service reads, from environment variables, in one place.

The defaults work for local mode run from the repository root; Docker mode and
the test suite differ only in the environment they pass.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote


def _env(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip()
    return value or default


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from exc


def _broker_url_from_parts() -> str:
    user = _env("RABBITMQ_USER", "iris")
    password = os.environ.get("RABBITMQ_PASSWORD", "")
    host = _env("RABBITMQ_HOST", "127.0.0.1")
    port = _env_int("RABBITMQ_PORT", 5672)
    vhost = _env("RABBITMQ_VHOST", "iris")
    return (
        f"amqp://{quote(user, safe='')}:{quote(password, safe='')}"
        f"@{host}:{port}/{quote(vhost, safe='')}"
    )


@dataclass(frozen=True)
class Settings:
    """Runtime configuration; build it with :func:`load_settings`."""

    broker_url: str
    database_url: str
    reports_dir: Path
    model_path: Path
    queue_name: str = "predictions"
    # Bounded queue: beyond this RabbitMQ refuses publishes and clients get 503.
    queue_max_length: int = 100_000
    task_soft_time_limit: int = 20
    task_time_limit: int = 30
    # How many times a job may start before it is declared poison.
    max_attempts: int = 3
    retention_seconds: int = 7 * 24 * 3600
    max_content_length: int = 16 * 1024
    sqlite_busy_timeout_ms: int = 10_000
    broker_connect_timeout: float = 2.0
    log_level: str = "INFO"
    # How often each worker deletes results and PDFs older than the retention.
    cleanup_interval_seconds: int = 3600
    # Each state write also writes the job's status body as a file that nginx
    # answers polls from (status_files.py); off, every poll reaches the app.
    status_files: bool = True
    # Where those files go; None: <reports_dir>/status. A cache, so a tmpfs
    # is the right place (local mode uses one): creating and renaming a file
    # cost about 1 ms of CPU on this project's ext4 disk, 0.02 ms on tmpfs.
    status_dir: Path | None = None
    # A file older than this is deleted (then the app answers): a tmpfs holds a
    # page per file, and polls are of recent jobs.
    status_file_seconds: int = 120
    # When set, GET /flask/tasks requires "Authorization: Bearer <token>".
    tasks_api_token: str | None = None
    # Test-only fault injection (tasks.py, testhooks): never set in production.
    test_hooks: bool = False
    test_task_delay_seconds: float = 5.0
    # Benchmark-only inline endpoint (bench_views.py); never on in production.
    bench_inline_endpoint: bool = False


def status_dir(settings: Settings) -> Path | None:
    """Where the status files go, or None when they are off."""
    if not settings.status_files:
        return None
    return settings.status_dir or settings.reports_dir / "status"


def load_settings() -> Settings:
    """Read the environment once; the app factory and the worker both call this."""
    db_default = "sqlite:///" + str(Path("db/results.sqlite").resolve())
    return Settings(
        broker_url=_env("BROKER_URL", "") or _broker_url_from_parts(),
        database_url=_env("DATABASE_URL", db_default),
        reports_dir=Path(_env("REPORTS_DIR", "document_root/reports")).resolve(),
        model_path=Path(_env("MODEL_PATH", "var/model/iris_model.json")).resolve(),
        queue_name=_env("QUEUE_NAME", "predictions"),
        queue_max_length=_env_int("QUEUE_MAX_LENGTH", 100_000),
        task_soft_time_limit=_env_int("TASK_SOFT_TIME_LIMIT", 20),
        task_time_limit=_env_int("TASK_TIME_LIMIT", 30),
        max_attempts=_env_int("TASK_MAX_ATTEMPTS", 3),
        retention_seconds=_env_int("RESULT_RETENTION_SECONDS", 7 * 24 * 3600),
        max_content_length=_env_int("MAX_CONTENT_LENGTH", 16 * 1024),
        sqlite_busy_timeout_ms=_env_int("SQLITE_BUSY_TIMEOUT_MS", 10_000),
        broker_connect_timeout=float(_env("BROKER_CONNECT_TIMEOUT", "2.0")),
        log_level=_env("LOG_LEVEL", "INFO").upper(),
        cleanup_interval_seconds=_env_int("RESULT_CLEANUP_INTERVAL_SECONDS", 3600),
        status_files=_env("STATUS_FILES", "1") == "1",
        status_dir=Path(folder).resolve() if (folder := _env("STATUS_DIR", "")) else None,
        status_file_seconds=_env_int("STATUS_FILE_SECONDS", 120),
        tasks_api_token=_env("TASKS_API_TOKEN", "") or None,
        test_hooks=_env("IRIS_TEST_HOOKS", "0") == "1",
        test_task_delay_seconds=float(_env("TEST_TASK_DELAY_SECONDS", "5")),
        bench_inline_endpoint=_env("BENCH_INLINE_ENDPOINT", "0") == "1",
    )
