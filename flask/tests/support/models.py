"""A second model in an in-process app's registry (issue 16), for tests that name versions."""

from __future__ import annotations

from flask import Flask

from iris_service import training
from iris_service.registry import Registry
from iris_service.training_request import TrainingSpec

# Three shallow trees: a real skops model that trains in well under a second.
SMALL_FOREST = TrainingSpec(
    "random_forest", {"n_estimators": 3, "max_depth": 2, "min_samples_leaf": 1}
)


def registry_of(app: Flask) -> Registry:
    registry: Registry = app.extensions["iris_registry"]
    return registry


def register_forest(app: Flask) -> str:
    """Train and register a small random forest (READY, not the default); its version."""
    card, artifact, suffix = training.train_model(SMALL_FOREST, training.builtin_data())
    return registry_of(app).register(card, artifact, suffix).version
