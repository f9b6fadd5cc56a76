"""What the report says about a prediction: training-data statistics and warnings.

Everything about the training data (per-species sorted values, means, spreads,
chart ranges) is computed once per process (``training_stats``), never per
report. The two warnings have explicit, tested thresholds:

- a *close call* when the two most probable species are less than
  ``CLOSE_MARGIN`` apart;
- an *input far outside the training data* when a measurement lies more than
  ``FAR_SIGMAS`` standard deviations from the mean of the training flowers of
  the predicted species (the model then extrapolates: its probabilities may be
  confident and still meaningless).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache

from .model import FEATURES
from .training import training_data

CLOSE_MARGIN = 0.20
FAR_SIGMAS = 4.0

FEATURE_LABELS = {
    "sepal_length": "Sepal length",
    "sepal_width": "Sepal width",
    "petal_length": "Petal length",
    "petal_width": "Petal width",
}


@dataclass(frozen=True)
class FeatureStats:
    """One feature's training values for one species, sorted."""

    values: tuple[float, ...]
    mean: float
    std: float

    @property
    def low(self) -> float:
        return self.values[0]

    @property
    def high(self) -> float:
        return self.values[-1]

    def quantile(self, q: float) -> float:
        """Linear-interpolated quantile (numpy's default method), q in [0, 1]."""
        position = q * (len(self.values) - 1)
        below = math.floor(position)
        above = min(below + 1, len(self.values) - 1)
        fraction = position - below
        return self.values[below] * (1 - fraction) + self.values[above] * fraction

    def percentile(self, value: float) -> float:
        """Share of training flowers below the value, ties counted half (0..100)."""
        below = bisect.bisect_left(self.values, value)
        equal = bisect.bisect_right(self.values, value) - below
        return 100.0 * (below + 0.5 * equal) / len(self.values)


@dataclass(frozen=True)
class TrainingStats:
    classes: tuple[str, ...]
    samples: tuple[tuple[tuple[float, ...], int], ...]  # (features, class index)
    per_class: Mapping[str, Mapping[str, FeatureStats]]


@cache
def training_stats() -> TrainingStats:
    """The statistics of the iris training data, computed once per process."""
    x, y, names = training_data()
    rows = [tuple(float(v) for v in row) for row in x]
    targets = [int(t) for t in y]
    per_class: dict[str, dict[str, FeatureStats]] = {}
    for index, name in enumerate(names):
        members = [row for row, t in zip(rows, targets, strict=True) if t == index]
        per_class[name] = {}
        for column, feature in enumerate(FEATURES):
            values = sorted(row[column] for row in members)
            mean = sum(values) / len(values)
            std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
            per_class[name][feature] = FeatureStats(tuple(values), mean, std)
    return TrainingStats(
        classes=tuple(names),
        samples=tuple(zip(rows, targets, strict=True)),
        per_class=per_class,
    )


@dataclass(frozen=True)
class FeatureComparison:
    feature: str
    value: float
    percentile: float
    sigmas: float  # signed distance from the species mean, in standard deviations

    @property
    def far(self) -> bool:
        return abs(self.sigmas) > FAR_SIGMAS


@dataclass(frozen=True)
class Assessment:
    label: str
    probability: float
    runner_up: str
    runner_up_probability: float
    comparisons: tuple[FeatureComparison, ...]

    @property
    def margin(self) -> float:
        return self.probability - self.runner_up_probability

    @property
    def close_call(self) -> bool:
        return self.margin < CLOSE_MARGIN

    @property
    def far_features(self) -> tuple[FeatureComparison, ...]:
        return tuple(c for c in self.comparisons if c.far)

    def confidence_sentence(self) -> str:
        p = self.probability
        strength = (
            "very confident"
            if p >= 0.95
            else "fairly confident"
            if p >= 0.80
            else "unsure"
            if p >= 0.5
            else "very unsure"
        )
        return (
            f"The model is {strength}: it gives Iris {self.label} a {_pct(p)} probability; "
            f"the next most likely species, Iris {self.runner_up}, "
            f"gets {_pct(self.runner_up_probability)}."
        )

    def warnings(self) -> list[str]:
        """Plain-language warnings, empty when the prediction is unremarkable."""
        out: list[str] = []
        if self.close_call:
            out.append(
                f"Close call: Iris {self.label} ({_pct(self.probability)}) and Iris "
                f"{self.runner_up} ({_pct(self.runner_up_probability)}) are only "
                f"{self.margin * 100:.1f} points apart (warning below "
                f"{CLOSE_MARGIN * 100:.0f}). Treat the species as uncertain."
            )
        far = self.far_features
        if far:
            details = "; ".join(
                f"{FEATURE_LABELS[c.feature].lower()} {c.value:g} cm is {abs(c.sigmas):.1f} "
                f"standard deviations {'above' if c.sigmas > 0 else 'below'} the Iris "
                f"{self.label} mean"
                for c in far
            )
            out.append(
                f"Input far outside the training data: {details} (warning beyond "
                f"{FAR_SIGMAS:g}). The model never saw a flower like this; its answer is an "
                "extrapolation. Check the measurements and their unit (centimetres)."
            )
        return out


def _pct(p: float) -> str:
    return f"{p * 100:.1f} %"


def assess(features: Mapping[str, float], probabilities: Mapping[str, float]) -> Assessment:
    ranked = sorted(probabilities.items(), key=lambda kv: -kv[1])
    (label, p1), (runner_up, p2) = ranked[0], ranked[1]
    species = training_stats().per_class[label]
    comparisons = []
    for feature in FEATURES:
        value = float(features[feature])
        stats = species[feature]
        sigmas = (value - stats.mean) / stats.std if stats.std > 0 else 0.0
        comparisons.append(FeatureComparison(feature, value, stats.percentile(value), sigmas))
    return Assessment(label, p1, runner_up, p2, tuple(comparisons))


def ordinal(n: int) -> str:
    """1st, 2nd, 3rd, 4th, 11th, 12th, 13th, 21st..."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"
