"""The model registry: every trained model as a version in the result-backend database.

A row of ``iris_models`` (store.py) names a model's artifact in ``MODELS_DIR``
and the SHA-256 of its bytes; its card (estimator, parameters, training data
fingerprint, metrics, library versions) is in the row, so listing models never
opens an artifact. A model is registered by writing its artifact whole
(write_atomically) and then inserting its row READY: a worker killed in between
leaves at most a file no row names, never a half-registered model; the rerun
writes its own file and registers it (or finds the row an earlier run made).

Artifacts are in safe formats only. The logistic regression is the JSON model
file model.py reads (its version is the hash of its coefficients, checked on
load); tree ensembles are skops files loaded with an explicit list of trusted
types (ensemble_model.py). Before either is parsed, its bytes must match the
recorded SHA-256: a changed artifact is refused and its row marked FAILED.

The first use registers the model file of ``MODEL_PATH`` (today's model) as the
default, so a fresh install answers exactly as before.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import current_app
from sqlalchemy import Engine, bindparam, exists, select, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from . import model
from .config import Settings
from .errors import ApiError
from .files import write_atomically
from .model import ArtifactError, ModelFileError, ServingModel
from .store import MODELS, utcnow
from .validation import InvalidInputError

MODEL_STATES = ("TRAINING", "READY", "FAILED")
# A version as model.parameters_version spells it.
VERSION_LENGTH = 16
# How long a process keeps the default version before asking again: a
# promotion reaches new predictions within this, without restarting anything.
DEFAULT_TTL_SECONDS = 1.0
# Loaded models kept per process (each a few hundred kB for the ensembles).
_LOADED_MAX = 8


@dataclass(frozen=True)
class ModelRow:
    model_id: int
    version: str
    estimator: str
    state: str
    is_default: bool
    created_at: Any
    artifact: str
    artifact_sha256: str
    card: dict[str, Any]
    task_id: str | None


def _row(r: Any) -> ModelRow:
    return ModelRow(
        model_id=r.id,
        version=r.version,
        estimator=r.estimator,
        state=r.state,
        is_default=bool(r.is_default),
        created_at=r.created_at,
        artifact=r.artifact,
        artifact_sha256=r.artifact_sha256,
        card=json.loads(r.card),
        task_id=r.task_id,
    )


def is_version(value: str) -> bool:
    return len(value) == VERSION_LENGTH and all(c in "0123456789abcdef" for c in value)


_GET = select(MODELS).where(MODELS.c.version == bindparam("version"))
_GET_DEFAULT = select(MODELS.c.version).where(MODELS.c.is_default == 1)


class Registry:
    """Reads and writes of ``iris_models``, and the artifacts it names."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.models_dir = settings.models_dir
        self.model_path = settings.model_path
        self._default: tuple[float, str] | None = None
        self._loaded: OrderedDict[str, ServingModel] = OrderedDict()
        self._lock = threading.Lock()

    # ------------------------------------------------------------ reads

    def get(self, version: str) -> ModelRow | None:
        with self.engine.connect() as conn:
            r = conn.execute(_GET, {"version": version}).first()
        return None if r is None else _row(r)

    def list(self, *, limit: int, before: int | None = None) -> tuple[list[ModelRow], int | None]:
        """Newest first; the page and the cursor of the next one (or None), as StatusStore.list."""
        query = select(MODELS).order_by(MODELS.c.id.desc()).limit(limit + 1)
        if before is not None:
            query = query.where(MODELS.c.id < before)
        self.default_version()  # a fresh install lists today's model
        with self.engine.connect() as conn:
            rows = [_row(r) for r in conn.execute(query)]
        page = rows[:limit]
        return page, (page[-1].model_id if len(rows) > limit else None)

    def default_version(self) -> str:
        """The default model's version, asked of the database at most once a second."""
        now = time.monotonic()
        cached = self._default
        if cached is not None and now - cached[0] < DEFAULT_TTL_SECONDS:
            return cached[1]
        with self.engine.connect() as conn:
            version: str | None = conn.execute(_GET_DEFAULT).scalar()
        if version is None:
            version = self._register_first_model()
        self._default = (now, version)
        return version

    def default_card(self) -> dict[str, Any]:
        row = self.get(self.default_version())
        assert row is not None  # a default row is never deleted
        return row.card

    # ----------------------------------------------------------- writes

    def register(
        self, card: dict[str, Any], artifact: bytes, suffix: str, *, task_id: str | None = None
    ) -> ModelRow:
        """Write the artifact whole, then its row READY (see :meth:`insert`)."""
        name, sha256 = self.write_artifact(card, artifact, suffix)
        return self.insert(card, name, sha256, task_id=task_id)

    def write_artifact(self, card: dict[str, Any], artifact: bytes, suffix: str) -> tuple[str, str]:
        """Write an artifact whole or not at all; its file name and SHA-256.

        The name carries the bytes' hash as well as the version: skops files of
        the same model differ from one write to the next (zip times), so a
        rerun must not replace the file a registered row names.
        """
        sha256 = hashlib.sha256(artifact).hexdigest()
        name = f"{card['version']}-{sha256[:16]}.{suffix}"
        self.models_dir.mkdir(parents=True, exist_ok=True)
        write_atomically(artifact, self.models_dir / name)
        return name, sha256

    def insert(
        self, card: dict[str, Any], name: str, sha256: str, *, task_id: str | None = None
    ) -> ModelRow:
        """Register a written artifact as READY; a version already registered is kept.

        Idempotent: a redelivered training job writes the same version's
        artifact again and finds its row.
        """
        version = str(card["version"])
        values = {
            "version": version,
            "estimator": str(card.get("estimator", "logistic_regression")),
            "state": "READY",
            "is_default": 0,
            "created_at": utcnow(),
            "artifact": name,
            "artifact_sha256": sha256,
            "card": json.dumps(model.public_card(card), sort_keys=True),
            "task_id": task_id,
        }
        with self.engine.begin() as conn:
            conn.execute(sqlite_insert(MODELS).values(values).on_conflict_do_nothing())
            r = conn.execute(_GET, {"version": version}).one()
        return _row(r)

    def promote(self, version: str) -> ModelRow | None:
        """Make a READY model the default in one transaction; the row as it is after.

        None when the version is unknown; a model that is not READY is returned
        unchanged (the caller refuses it).
        """
        with self.engine.begin() as conn:
            r = conn.execute(_GET, {"version": version}).first()
            if r is None or r.state != "READY":
                return None if r is None else _row(r)
            conn.execute(update(MODELS).where(MODELS.c.is_default == 1).values(is_default=0))
            conn.execute(update(MODELS).where(MODELS.c.version == version).values(is_default=1))
            r = conn.execute(_GET, {"version": version}).one()
        self._default = None
        return _row(r)

    def _register_first_model(self) -> str:
        """Register today's model file as the default (races between processes are harmless)."""
        first = model.get_model(self.model_path)
        self.register(first.card, model.to_json(first.card), "json")
        with self.engine.begin() as conn:
            # Only if no process made another model the default in between.
            conn.execute(
                update(MODELS)
                .where(MODELS.c.version == first.version, ~exists().where(MODELS.c.is_default == 1))
                .values(is_default=1)
            )
            version: str = conn.execute(_GET_DEFAULT).scalar_one()
        return version

    def _mark_failed(self, version: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(MODELS)
                .where(MODELS.c.version == version, MODELS.c.is_default == 0)
                .values(state="FAILED")
            )

    # ---------------------------------------------------------- loading

    def load(self, version: str) -> ServingModel:
        """The model of ``version``, checked and loaded once per process.

        Raises ArtifactError for an artifact that is missing, changed or holds
        untrusted types (the row becomes FAILED unless it is the default, which
        stays so that the operator sees what every prediction now fails on).
        """
        with self._lock:
            if (found := self._loaded.get(version)) is not None:
                self._loaded.move_to_end(version)
                return found
        row = self.get(version)
        if row is None:
            raise ArtifactError(f"no model with version {version}")
        try:
            loaded = load_artifact(self.models_dir / row.artifact, row.artifact_sha256)
        except ArtifactError:
            self._mark_failed(version)
            raise
        with self._lock:
            self._loaded[version] = loaded
            while len(self._loaded) > _LOADED_MAX:
                self._loaded.popitem(last=False)
        return loaded


def load_artifact(path: Path, sha256: str) -> ServingModel:
    """Check an artifact's bytes against its recorded SHA-256, then parse it safely."""
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise ArtifactError(f"model artifact {path.name} cannot be read: {exc.strerror}") from exc
    if hashlib.sha256(content).hexdigest() != sha256:
        raise ArtifactError(
            f"model artifact {path.name} was changed after it was registered "
            "(its SHA-256 differs); refusing to load it"
        )
    if path.suffix == ".json":
        try:
            return model.from_json(content, path.name)
        except ModelFileError as exc:
            raise ArtifactError(str(exc)) from exc
    # Imported here: only a process that serves a tree ensemble needs scikit-learn.
    from . import ensemble_model

    return ensemble_model.from_skops(content, path.name)


# ------------------------------------------------------------- for the views

# The optional field of POST /flask/predict that names the model to use.
MODEL_VERSION = "model_version"


def registry_of_app() -> Registry:
    found: Registry = current_app.extensions["iris_registry"]
    return found


def requested_version(value: object) -> str | None:
    """A version a client named, if READY (else a 400 saying why); None if none was named."""
    if value is None:
        return None
    if not isinstance(value, str) or not is_version(value):
        raise InvalidInputError({MODEL_VERSION: "must be a model version (16 hex digits)"})
    row = registry_of_app().get(value)
    if row is None:
        raise ApiError(
            400, "unknown model version", model_version=value, models_url="/flask/models"
        )
    if row.state != "READY":
        raise ApiError(400, f"model {value} is {row.state}, not READY", model_version=value)
    return value
