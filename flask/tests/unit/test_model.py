"""The model: deterministic, accurate, and refused when its file was tampered with."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from iris_service import model, training


def test_training_is_deterministic() -> None:
    first, second = training.train(), training.train()
    assert first["version"] == second["version"]
    assert first["parameters"] == second["parameters"]


def test_accuracy_floor() -> None:
    card = training.train()
    assert card["cv_accuracy"] >= 0.93
    x, y, names = training.training_data()
    m = model.IrisModel(card)
    hits = sum(
        m.predict(dict(zip(model.FEATURES, map(float, row), strict=True))).label == names[t]
        for row, t in zip(x, y, strict=True)
    )
    assert hits / len(y) >= 0.95


def test_probabilities_sum_to_one() -> None:
    m = model.IrisModel(training.train())
    p = m.predict(
        {"sepal_length": 6.0, "sepal_width": 2.9, "petal_length": 4.5, "petal_width": 1.5}
    )
    assert set(p.probabilities) == {"setosa", "versicolor", "virginica"}
    assert abs(sum(p.probabilities.values()) - 1) < 1e-5
    assert p.label == "versicolor"


def test_save_load_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    loaded = model.load_or_train(path)
    assert path.exists()
    assert model.load(path).version == loaded.version


def test_tampered_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    model.save(training.train(), path)
    card = json.loads(path.read_text())
    card["parameters"]["intercept"][0] += 1.0
    path.write_text(json.dumps(card))
    with pytest.raises(model.ModelFileError, match="does not match"):
        model.load(path)


def test_garbage_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    path.write_bytes(b"\x80\x04pickle?")
    with pytest.raises(model.ModelFileError):
        model.load(path)
