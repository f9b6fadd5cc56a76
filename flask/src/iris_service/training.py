"""Training a classifier, deterministically, into a model card and an artifact (registry.py).

The default model is a multinomial logistic regression: on iris it is as
accurate as anything heavier (about 97 % cross-validated) and predicting is one
small matrix product. It is trained at image build time or on first start
(``flask/bin/train-model.sh``); training jobs (training_jobs.py) train any of
the estimators of training_request.py on the built-in data or an upload. Only
this module, ensemble_model.py and the training worker import scikit-learn.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import sklearn
from sklearn.base import ClassifierMixin, clone
from sklearn.datasets import load_iris
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support
from sklearn.model_selection import StratifiedKFold

from .model import FEATURES, parameters_version, save, to_json
from .training_request import BUILTIN_DATA, CV_FOLDS, SPECIES, TrainingData, TrainingSpec

SEED = 0
# The logistic regression's fixed settings, beside the ones a request may set.
_LR_FIXED: dict[str, Any] = {"solver": "lbfgs", "tol": 1e-6}
DEFAULT_SPEC = TrainingSpec("logistic_regression", {"C": 1.0, "max_iter": 1000})
_CLASSIFIER_NAMES = {
    "logistic_regression": "LogisticRegression",
    "random_forest": "RandomForestClassifier",
    "gradient_boosting": "GradientBoostingClassifier",
}

# Told (fold number from 1, number of folds) as each cross-validation fold ends.
FoldCallback = Callable[[int, int], None]


def training_data() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The iris data that scikit-learn ships (no download): measurements, class
    indices, class names."""
    iris = load_iris()
    return iris.data, iris.target, [str(n) for n in iris.target_names]


def builtin_data() -> TrainingData:
    """The built-in iris data as training rows."""
    x, y, names = training_data()
    rows = tuple(tuple(float(v) for v in row) for row in x)
    return TrainingData(rows, tuple(names[int(t)] for t in y), BUILTIN_DATA)


def _hyperparameters(spec: TrainingSpec) -> dict[str, Any]:
    if spec.estimator == "logistic_regression":
        return {**spec.params, **_LR_FIXED}
    return dict(spec.params)


def _estimator(spec: TrainingSpec) -> ClassifierMixin:
    settings = _hyperparameters(spec)
    if spec.estimator == "logistic_regression":
        return LogisticRegression(random_state=SEED, **settings)
    if spec.estimator == "random_forest":
        return RandomForestClassifier(random_state=SEED, n_jobs=1, **settings)
    return GradientBoostingClassifier(random_state=SEED, **settings)


def train_model(
    spec: TrainingSpec,
    data: TrainingData,
    on_fold: FoldCallback | None = None,
    trained_at: datetime | None = None,
) -> tuple[dict[str, Any], bytes, str]:
    """Cross-validate, fit on all rows; return the card, the artifact and its file suffix."""
    started = time.monotonic()
    x, y = np.asarray(data.x, dtype=np.float64), np.asarray(data.y)
    base = _estimator(spec)
    folds = StratifiedKFold(n_splits=CV_FOLDS, shuffle=True, random_state=SEED)
    # Out-of-fold predictions, for the confusion matrix and per-class metrics.
    predicted = np.empty_like(y)
    scores: list[float] = []
    for number, (train_rows, test_rows) in enumerate(folds.split(x, y), start=1):
        fold_model = clone(base).fit(x[train_rows], y[train_rows])
        predicted[test_rows] = fold_model.predict(x[test_rows])
        scores.append(float(np.mean(predicted[test_rows] == y[test_rows])))
        if on_fold is not None:
            on_fold(number, CV_FOLDS)
    estimator = clone(base).fit(x, y)
    precision, recall, _, support = precision_recall_fscore_support(
        y, predicted, labels=list(SPECIES), zero_division=0
    )
    card: dict[str, Any] = {
        "estimator": spec.estimator,
        "classifier": _CLASSIFIER_NAMES[spec.estimator],
        "hyperparameters": _hyperparameters(spec),
        "classes": [str(c) for c in estimator.classes_],
        "feature_names": list(FEATURES),
        "units": "cm",
        "cv_accuracy": round(float(np.mean(scores)), 4),
        "cv_accuracy_std": round(float(np.std(scores)), 4),
        "cv_folds": CV_FOLDS,
        "cv_fold_accuracy": [round(s, 4) for s in scores],
        "cv_confusion_matrix": confusion_matrix(y, predicted, labels=list(SPECIES)).tolist(),
        "cv_per_class": {
            name: {"precision": round(float(p), 4), "recall": round(float(r), 4), "rows": int(n)}
            for name, p, r, n in zip(SPECIES, precision, recall, support, strict=True)
        },
        "training_samples": len(y),
        "training_data": {"source": data.source, "sha256": data.sha256, "rows": len(y)},
        "data_summary": data.summary(),
        "trained_at": (trained_at or datetime.now(UTC)).isoformat(timespec="seconds"),
        "library_versions": {
            "python": platform.python_version(),
            "scikit-learn": sklearn.__version__,
            "numpy": np.__version__,
        },
    }
    if isinstance(estimator, LogisticRegression):
        # Rounded so the version hash is the same across BLAS builds and CPUs.
        parameters = {
            "coef": np.round(estimator.coef_, 10).tolist(),
            "intercept": np.round(estimator.intercept_, 10).tolist(),
        }
        card["version"] = parameters_version(parameters)
        card["training_seconds"] = round(time.monotonic() - started, 3)
        return (
            {**card, "parameters": parameters},
            to_json({**card, "parameters": parameters}),
            "json",
        )
    from . import ensemble_model

    # A tree ensemble is named by what made it: the same recipe on the same
    # data with the same library gives the same trees (the seed is fixed).
    card["version"] = parameters_version(
        {
            "estimator": spec.estimator,
            "params": spec.params,
            "data_sha256": data.sha256,
            "seed": SEED,
            "scikit-learn": sklearn.__version__,
        }
    )
    card["library_versions"]["skops"] = ensemble_model.skops_version()
    card["training_seconds"] = round(time.monotonic() - started, 3)
    return card, ensemble_model.dumps(estimator, card), "skops"


def train(trained_at: datetime | None = None) -> dict[str, Any]:
    """The default model's card (parameters included), trained on the built-in data."""
    card, _, _ = train_model(DEFAULT_SPEC, builtin_data(), trained_at=trained_at)
    return card


def main() -> None:
    """`python -m iris_service.training PATH`: train and write the model file."""
    import sys

    target = Path(sys.argv[1] if len(sys.argv) > 1 else "var/model/iris_model.json")
    card = train()
    save(card, target)
    print(f"model {card['version']} cv_accuracy={card['cv_accuracy']} -> {target}")


if __name__ == "__main__":
    main()
