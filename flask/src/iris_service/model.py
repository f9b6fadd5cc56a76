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
from typing import Any

import numpy as np

from .files import write_atomically

FEATURES: tuple[str, ...] = ("sepal_length", "sepal_width", "petal_length", "petal_width")


class ModelFileError(RuntimeError):
    """The model file is missing, malformed or does not match its version."""


@dataclass(frozen=True)
class Prediction:
    label: str
    probabilities: dict[str, float]


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
        return {k: v for k, v in self.card.items() if k != "parameters"}


def parameters_version(parameters: dict[str, Any]) -> str:
    """The version of a model: a hash of its parameters, canonically encoded."""
    canonical = json.dumps(parameters, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def save(card: dict[str, Any], path: Path) -> None:
    """Write the model file whole or not at all, so a reader never sees half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(json.dumps(card, indent=2, sort_keys=True).encode(), path)


def load(path: Path) -> IrisModel:
    try:
        card = json.loads(path.read_text())
        parameters = card["parameters"]
        expected = card["version"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelFileError(f"cannot read model file {path}: {exc}") from exc
    if parameters_version(parameters) != expected:
        raise ModelFileError(f"model file {path} does not match its version {expected}")
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
