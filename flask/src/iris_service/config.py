"""Every setting the service reads from its environment, each declared once.

Each field names its environment variable, its default and what it is for;
pydantic-settings reads and checks them, so a bad value stops the process at
start with the variable's name. The defaults work for local mode run from the
repository root; Docker mode and the test suite differ only in the environment
they pass. Values are read once, in :func:`load_settings`, and passed down.
"""

from __future__ import annotations

import ipaddress
import multiprocessing
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote

from pydantic import AfterValidator, BeforeValidator, Field, SecretStr
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)


def _absolute(path: Path) -> Path:
    return path.resolve()


def _allow_list(value: str) -> str:
    # Checked at start, so that a typo stops the process with the variable's name.
    if value.strip().lower() != "none":
        for item in value.split(","):
            ipaddress.ip_network(item.strip(), strict=False)
    return value


def _upper(value: object) -> object:
    return value.upper() if isinstance(value, str) else value


# A relative path is taken from the working directory at load time, once, so a
# later chdir (a daemonising worker) cannot move it.
AbsolutePath = Annotated[Path, AfterValidator(_absolute)]
LogLevel = Annotated[
    Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], BeforeValidator(_upper)
]


class _TrimmedEnv(EnvSettingsSource):
    """The process environment, where a blank value means the default.

    Compose files and ``export X=`` leave variables set to ""; those, and
    surrounding blanks, are dropped. Secrets are taken exactly as given.
    """

    def prepare_field_value(
        self, field_name: str, field: FieldInfo, value: Any, value_is_complex: bool
    ) -> Any:
        if isinstance(value, str) and field.annotation is not SecretStr:
            value = value.strip() or None
        return super().prepare_field_value(field_name, field, value, value_is_complex)


class _FromEnvironment(BaseSettings):
    """Read keyword arguments, then the environment; nothing else."""

    model_config = SettingsConfigDict(
        # The variable names exactly as declared, as the shell scripts spell them.
        case_sensitive=True,
        frozen=True,
        # Keyword arguments use the field names (tests, and callers in Python).
        validate_by_name=True,
        # Defaults go through the same checks (paths made absolute).
        validate_default=True,
        extra="forbid",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # No .env file or secrets folder: the scripts and images pass the
        # environment, and a stray file in the working directory must not count.
        return (init_settings, _TrimmedEnv(settings_cls))


class _Logged(_FromEnvironment):
    log_level: LogLevel = Field(
        default="INFO",
        validation_alias="LOG_LEVEL",
        description="Log level of the app, worker and gunicorn",
    )
    # issue 14 part E: read by gunicorn's master too (GunicornSettings), hence here.
    log_format: Literal["text", "json"] = Field(
        default="text",
        validation_alias="LOG_FORMAT",
        description="text: human-readable lines; json: one JSON object per line (logs.py)",
    )


class RabbitMQSettings(_FromEnvironment):
    """The parts of the broker URL when BROKER_URL is not set (the broker's own credentials)."""

    user: str = Field(default="iris", validation_alias="RABBITMQ_USER")
    password: SecretStr = Field(default=SecretStr(""), validation_alias="RABBITMQ_PASSWORD")
    host: str = Field(default="127.0.0.1", validation_alias="RABBITMQ_HOST")
    port: int = Field(default=5672, gt=0, lt=65536, validation_alias="RABBITMQ_PORT")
    vhost: str = Field(default="iris", validation_alias="RABBITMQ_VHOST")

    @property
    def url(self) -> str:
        return (
            f"amqp://{quote(self.user, safe='')}:{quote(self.password.get_secret_value(), safe='')}"
            f"@{self.host}:{self.port}/{quote(self.vhost, safe='')}"
        )


def _broker_url_from_parts() -> str:
    return RabbitMQSettings().url


def _default_database_url() -> str:
    return "sqlite:///" + str(Path("db/results.sqlite").resolve())


class Settings(_Logged):
    """Runtime configuration of the app and the worker; build it with :func:`load_settings`."""

    broker_url: str = Field(
        default_factory=_broker_url_from_parts,
        validation_alias="BROKER_URL",
        # It holds the broker password.
        repr=False,
        description="AMQP URL; unset: built from RABBITMQ_USER/PASSWORD/HOST/PORT/VHOST",
    )
    database_url: str = Field(
        default_factory=_default_database_url,
        validation_alias="DATABASE_URL",
        description="Result backend (SQLAlchemy URL); default: db/results.sqlite",
    )
    reports_dir: AbsolutePath = Field(
        default=Path("document_root/reports"),
        validation_alias="REPORTS_DIR",
        description="Where the PDF reports are written",
    )
    model_path: AbsolutePath = Field(
        default=Path("var/model/iris_model.json"),
        validation_alias="MODEL_PATH",
        description="Model file, trained on first start if missing",
    )
    queue_name: str = Field(
        default="predictions", validation_alias="QUEUE_NAME", description="The durable job queue"
    )
    queue_max_length: int = Field(
        default=100_000,
        gt=0,
        validation_alias="QUEUE_MAX_LENGTH",
        description="Bounded queue: beyond this RabbitMQ refuses publishes and clients get 503",
    )
    task_soft_time_limit: int = Field(
        default=20, gt=0, validation_alias="TASK_SOFT_TIME_LIMIT", description="Per job, seconds"
    )
    task_time_limit: int = Field(
        default=30, gt=0, validation_alias="TASK_TIME_LIMIT", description="Per job, seconds"
    )
    max_attempts: int = Field(
        default=3,
        gt=0,
        validation_alias="TASK_MAX_ATTEMPTS",
        description="How many times a job may start before it is declared poison",
    )
    retention_seconds: int = Field(
        default=7 * 24 * 3600,
        ge=0,
        validation_alias="RESULT_RETENTION_SECONDS",
        description="Results and PDFs are kept this long, counted from the submit",
    )
    max_content_length: int = Field(
        default=16 * 1024,
        gt=0,
        validation_alias="MAX_CONTENT_LENGTH",
        description="Request body limit in bytes (nginx has the same)",
    )
    sqlite_busy_timeout_ms: int = Field(
        default=10_000,
        ge=0,
        validation_alias="SQLITE_BUSY_TIMEOUT_MS",
        description="How long an SQLite statement waits for a lock held by another process",
    )
    broker_connect_timeout: float = Field(
        default=2.0,
        gt=0,
        validation_alias="BROKER_CONNECT_TIMEOUT",
        description="How long a submit waits for the broker before 503, seconds",
    )
    cleanup_interval_seconds: int = Field(
        default=3600,
        gt=0,
        validation_alias="RESULT_CLEANUP_INTERVAL_SECONDS",
        description="How often each worker deletes results and PDFs older than the retention",
    )
    status_files: bool = Field(
        default=True,
        validation_alias="STATUS_FILES",
        # Off, every poll reaches the app.
        description="Each state write also writes the job's status body as a file that nginx "
        "answers polls from (status_files.py)",
    )
    status_dir: AbsolutePath | None = Field(
        default=None,
        validation_alias="STATUS_DIR",
        # A cache, so a tmpfs is the right place (local mode uses one): file
        # creation is far cheaper there than on disk (docs/performance.md).
        description="Where the status files go; unset: <REPORTS_DIR>/status",
    )
    status_file_seconds: int = Field(
        default=120,
        ge=0,
        validation_alias="STATUS_FILE_SECONDS",
        # A tmpfs holds a page per file, and polls are of recent jobs.
        description="A status file older than this is deleted (then the app answers)",
    )
    tasks_api_token: str | None = Field(
        default=None,
        validation_alias="TASKS_API_TOKEN",
        repr=False,
        description='When set, GET /flask/tasks requires "Authorization: Bearer <token>"',
    )
    test_hooks: bool = Field(
        default=False,
        validation_alias="IRIS_TEST_HOOKS",
        description="Test-only fault injection (tasks.py); never set in production",
    )
    test_task_delay_seconds: float = Field(
        default=5.0,
        ge=0,
        validation_alias="TEST_TASK_DELAY_SECONDS",
        description="Test only: how long the slow test job runs",
    )
    bench_inline_endpoint: bool = Field(
        default=False,
        validation_alias="BENCH_INLINE_ENDPOINT",
        description="Benchmark-only inline endpoint (bench_views.py); never on in production",
    )

    # ?wait= on the status (job_ends.py, waiter.py)
    status_wait_slots: int | None = Field(
        default=None,
        ge=0,
        validation_alias="STATUS_WAIT_SLOTS",
        description="Waits (?wait=) a gunicorn process holds in its own threads when a client "
        "reaches it directly; past that a wait answers at once. Unset: GUNICORN_THREADS - 1",
    )
    waiter_bind: str = Field(
        default="127.0.0.1:8002",
        validation_alias="WAITER_BIND",
        description="Where the waiter process (waiter.py) listens: host:port or unix:path",
    )

    # issue 14 part C: metrics (GET /flask/metrics, metrics.py)
    metrics_token: str | None = Field(
        default=None,
        validation_alias="METRICS_TOKEN",
        repr=False,
        description="When set, /flask/metrics is readable from any address with "
        '"Authorization: Bearer <token>"',
    )
    metrics_allow: Annotated[str, AfterValidator(_allow_list)] = Field(
        default="127.0.0.1,::1",
        validation_alias="METRICS_ALLOW",
        description="Addresses or CIDRs (comma-separated; none: no address) that may read "
        "/flask/metrics without the token",
    )
    prometheus_multiproc_dir: AbsolutePath | None = Field(
        default=None,
        validation_alias="PROMETHEUS_MULTIPROC_DIR",
        # prometheus-client reads it from the environment itself, at import;
        # declared here so that it is documented and checked with the rest.
        description="Folder where every process writes its metrics (multiprocess mode); "
        "unset: each process's own",
    )

    # issue 16: the model registry and training jobs (registry.py, training_jobs.py)
    models_dir: AbsolutePath = Field(
        default=Path("var/models"),
        validation_alias="MODELS_DIR",
        description="Model artifacts and uploaded training data; shared by the app and workers",
    )
    training_queue_name: str = Field(
        default="training",
        validation_alias="TRAINING_QUEUE_NAME",
        description="The durable queue of training jobs (consumed by training workers only)",
    )
    training_soft_time_limit: int = Field(
        default=600,
        gt=0,
        validation_alias="TRAINING_SOFT_TIME_LIMIT",
        description="Per training job, seconds",
    )
    training_time_limit: int = Field(
        default=660,
        gt=0,
        validation_alias="TRAINING_TIME_LIMIT",
        description="Per training job, seconds",
    )
    max_training_upload: int = Field(
        default=10 * 1024 * 1024,
        gt=0,
        validation_alias="MAX_TRAINING_UPLOAD",
        description="Body limit of POST /flask/models in bytes (nginx has the same: 10 MB)",
    )


class GunicornSettings(_Logged):
    """gunicorn's own settings, read by its master before the app loads (gunicorn_conf.py)."""

    bind: str = Field(
        default="127.0.0.1:8001",
        validation_alias="GUNICORN_BIND",
        description="Comma-separated host:port or unix:path addresses",
    )
    # One process per core, each with enough threads to hold the submits that
    # arrive together, so that they share a transaction and a confirm wait
    # (group_commit.py; docs/performance.md).
    workers: int = Field(
        default_factory=multiprocessing.cpu_count,
        gt=0,
        validation_alias="WEB_CONCURRENCY",
        description="Worker processes; default one per core",
    )
    threads: int = Field(
        default=16, gt=0, validation_alias="GUNICORN_THREADS", description="Threads per worker"
    )
    timeout: int = Field(
        default=30,
        gt=0,
        validation_alias="GUNICORN_TIMEOUT",
        description="Requests never wait on tasks; anything slower is a bug to surface",
    )
    access_log: bool = Field(
        default=False, validation_alias="GUNICORN_ACCESS_LOG", description="Access log on stdout"
    )
    socket_private: bool = Field(
        default=False,
        validation_alias="GUNICORN_SOCKET_PRIVATE",
        description="Unix socket for the owner and group only, not every user",
    )


def status_dir(settings: Settings) -> Path | None:
    """Where the status files go, or None when they are off."""
    if not settings.status_files:
        return None
    return settings.status_dir or settings.reports_dir / "status"


def load_settings() -> Settings:
    """Read the environment once; the app factory and the worker both call this."""
    return Settings()
