"""The iris classifier as the service uses it: load the model file, check it, predict.

The model is a multinomial logistic regression stored as JSON (coefficients,
intercepts and the model card), never as a pickle, so loading a model file
cannot run code whoever wrote it; the file's version is the hash of those
parameters, checked on every load. Training it needs scikit-learn and lives in
training.py, so the processes that only load it (the web app) do not import it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .files import write_atomically

FEATURES: tuple[str, ...] = ("sepal_length", "sepal_width", "petal_length", "petal_width")


class ModelFileError(RuntimeError):
    """The model file is missing, malformed or does not match its version."""


class ArtifactError(ModelFileError):
    """A registered artifact that is missing, changed since it was registered, or holds
    untrusted types (registry.py)."""


@dataclass(frozen=True)
class Prediction:
    label: str
    probabilities: dict[str, float]


class ServingModel(Protocol):
    """What a prediction needs of a model, whichever estimator and artifact format
    (IrisModel here; registry.py loads the tree ensembles)."""

    card: dict[str, Any]
    version: str
    classes: list[str]

    def predict(self, features: dict[str, float]) -> Prediction: ...

    def public_card(self) -> dict[str, Any]: ...


def public_card(card: dict[str, Any]) -> dict[str, Any]:
    """A model card as the API serves it: without the raw parameters."""
    return {k: v for k, v in card.items() if k != "parameters"}


class IrisModel:
    """A trained classifier plus its model card."""

    def __init__(self, card: dict[str, Any]) -> None:
        params = card["parameters"]
        self.card = card
        self.version: str = card["version"]
        self.classes: list[str] = list(card["classes"])
        self._coef = np.asarray(params["coef"], dtype=np.float64)
        self._intercept = np.asarray(params["intercept"], dtype=np.float64)
        if self._coef.shape != (len(self.classes), len(FEATURES)):
            raise ModelFileError(f"coefficient shape {self._coef.shape} does not fit the card")

    def predict(self, features: dict[str, float]) -> Prediction:
        x = np.array([features[name] for name in FEATURES], dtype=np.float64)
        # Multinomial logistic regression: softmax of the linear scores, exactly
        # what LogisticRegression.predict_proba computes, without its overhead.
        scores = self._coef @ x + self._intercept
        scores -= scores.max()
        exp = np.exp(scores)
        probs = exp / exp.sum()
        best = int(np.argmax(probs))
        return Prediction(
            label=self.classes[best],
            probabilities={c: round(float(p), 6) for c, p in zip(self.classes, probs, strict=True)},
        )

    def public_card(self) -> dict[str, Any]:
        """The model card as served by GET /flask/model (without raw parameters)."""
        return public_card(self.card)


def parameters_version(parameters: dict[str, Any]) -> str:
    """The version of a model: a hash of its parameters, canonically encoded."""
    canonical = json.dumps(parameters, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def save(card: dict[str, Any], path: Path) -> None:
    """Write the model file whole or not at all, so a reader never sees half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(to_json(card), path)


def to_json(card: dict[str, Any]) -> bytes:
    """A model file's bytes."""
    return json.dumps(card, indent=2, sort_keys=True).encode()


def load(path: Path) -> IrisModel:
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise ModelFileError(f"cannot read model file {path}: {exc}") from exc
    return from_json(content, str(path))


def from_json(content: bytes, source: str) -> IrisModel:
    """The model in a model file's bytes, checked against its version."""
    try:
        card = json.loads(content)
        parameters = card["parameters"]
        expected = card["version"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelFileError(f"cannot read model file {source}: {exc}") from exc
    if parameters_version(parameters) != expected:
        raise ModelFileError(f"model file {source} does not match its version {expected}")
    return IrisModel(card)


def load_or_train(path: Path) -> IrisModel:
    """Load the model, training it first if this is the first start."""
    if not path.exists():
        # Imported here: only a first start without a model file trains, and
        # scikit-learn is most of a process's memory.
        from . import training

        save(training.train(), path)
    return load(path)


@cache
def get_model(path: Path) -> IrisModel:
    """The model at ``path``, loaded once per process."""
    return load_or_train(path)
