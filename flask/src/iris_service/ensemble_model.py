"""Tree-ensemble models (random forest, gradient boosting) stored as skops files.

skops rebuilds a scikit-learn estimator from a zip of JSON and arrays without
unpickling: it refuses any type that is neither on its own list of safe types
nor on :data:`TRUSTED_TYPES` here, so loading an artifact never runs code from
it. Only the processes that serve or train an ensemble import this module
(and with it scikit-learn).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import skops.io as sio
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier

from .model import FEATURES, ArtifactError, Prediction, public_card

# The one type beyond skops' defaults that these estimators hold: the fitted
# trees' Cython structure. Anything else in an artifact is refused.
TRUSTED_TYPES = ["sklearn.tree._tree.Tree"]
_ESTIMATORS = (RandomForestClassifier, GradientBoostingClassifier)


def skops_version() -> str:
    from importlib.metadata import version

    return version("skops")


def dumps(estimator: Any, card: dict[str, Any]) -> bytes:
    """The artifact: the fitted estimator and its card (as JSON text) in one skops file."""
    return bytes(sio.dumps({"estimator": estimator, "card": json.dumps(card, sort_keys=True)}))


class EnsembleModel:
    """A fitted ensemble plus its model card, served like model.IrisModel."""

    def __init__(self, estimator: Any, card: dict[str, Any]) -> None:
        self._estimator = estimator
        self.card = card
        self.version: str = card["version"]
        self.classes: list[str] = [str(c) for c in estimator.classes_]

    def predict(self, features: dict[str, float]) -> Prediction:
        x = np.array([[features[name] for name in FEATURES]], dtype=np.float64)
        probs = self._estimator.predict_proba(x)[0]
        best = int(np.argmax(probs))
        return Prediction(
            label=self.classes[best],
            probabilities={c: round(float(p), 6) for c, p in zip(self.classes, probs, strict=True)},
        )

    def public_card(self) -> dict[str, Any]:
        return public_card(self.card)


def from_skops(content: bytes, source: str) -> EnsembleModel:
    """Load an ensemble artifact (a skops file with its card inside); raise on anything else."""
    try:
        untrusted = sorted(set(sio.get_untrusted_types(data=content)) - set(TRUSTED_TYPES))
    except Exception as exc:  # not a skops file at all: whatever the parser says
        raise ArtifactError(f"model artifact {source} is not a readable skops file") from exc
    if untrusted:
        raise ArtifactError(
            f"model artifact {source} holds untrusted types ({', '.join(untrusted)}); "
            "refusing to load it"
        )
    try:
        stored = sio.loads(content, trusted=TRUSTED_TYPES)
        estimator, card = stored["estimator"], json.loads(stored["card"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ArtifactError(f"model artifact {source} cannot be loaded: {exc}") from exc
    if not isinstance(estimator, _ESTIMATORS) or not isinstance(card, dict):
        raise ArtifactError(f"model artifact {source} does not hold a known estimator")
    return EnsembleModel(estimator, card)
