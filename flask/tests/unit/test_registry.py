"""The model registry (issue 16), in process: the first model, promotion, and artifacts
that are refused (changed bytes, untrusted types)."""

from __future__ import annotations

import hashlib
import io
import json
from fractions import Fraction
from pathlib import Path

import pytest
import skops.io as sio
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image

from iris_service import ensemble_model, training
from iris_service.model import ArtifactError
from iris_service.probability_png import PNG_SIZE, probability_png
from iris_service.registry import load_artifact
from iris_service.training_request import TrainingSpec

from support.models import SMALL_FOREST, register_forest, registry_of


def test_the_first_use_registers_todays_model_as_the_default(
    app: Flask, client: FlaskClient
) -> None:
    card = client.get("/flask/model").get_json()
    assert card["version"] == training.train()["version"]
    assert "parameters" not in card
    listed = client.get("/flask/models").get_json()
    assert [(m["version"], m["default"], m["state"]) for m in listed["models"]] == [
        (card["version"], True, "READY")
    ]
    assert listed["next"] is None
    # Asked again (another process, a restart), nothing is added.
    registry_of(app)._default = None
    assert registry_of(app).default_version() == card["version"]
    assert len(client.get("/flask/models").get_json()["models"]) == 1


def test_promote_pages_and_errors(app: Flask, client: FlaskClient) -> None:
    first = client.get("/flask/model").get_json()["version"]
    forest = register_forest(app)
    page = client.get("/flask/models?limit=1").get_json()
    assert [m["version"] for m in page["models"]] == [forest]
    rest = client.get(f"/flask/models?limit=1&before={page['next']}").get_json()
    assert [m["version"] for m in rest["models"]] == [first] and rest["next"] is None

    r = client.post(f"/flask/models/{forest}/default")
    assert r.status_code == 200 and r.get_json()["default"] is True
    registry_of(app)._default = None  # the next second, in any process
    assert client.get("/flask/model").get_json()["version"] == forest
    assert client.get(f"/flask/models/{first}").get_json()["default"] is False

    assert client.post("/flask/models/0123456789abcdef/default").status_code == 404
    assert client.get("/flask/models/not-a-version").status_code == 400
    assert client.get("/flask/models?limit=0").status_code == 400


def test_register_is_idempotent(app: Flask) -> None:
    card, artifact, suffix = training.train_model(SMALL_FOREST, training.builtin_data())
    registry = registry_of(app)
    first = registry.register(card, artifact, suffix)
    # A rerun of the same job: the same version, other bytes (skops zips carry times).
    again = registry.register(card, ensemble_model.dumps(object(), card), suffix)
    assert again == first
    assert (
        registry.load(first.version)
        .predict({"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2})
        .label
        == "setosa"
    )


@pytest.mark.parametrize("suffix", ["json", "skops"])
def test_changed_bytes_are_refused_and_the_model_marked_failed(
    app: Flask, client: FlaskClient, suffix: str
) -> None:
    registry = registry_of(app)
    if suffix == "json":
        spec = TrainingSpec("logistic_regression", {"C": 0.5, "max_iter": 1000})
        card, artifact, _ = training.train_model(spec, training.builtin_data())
        version = registry.register(card, artifact, "json").version
    else:
        version = register_forest(app)
    row = registry.get(version)
    assert row is not None
    path = app.extensions["iris_settings"].models_dir / row.artifact
    path.write_bytes(path.read_bytes().replace(b"0", b"1", 1))
    with pytest.raises(ArtifactError, match="was changed after it was registered"):
        registry.load(version)
    assert client.get(f"/flask/models/{version}").get_json()["state"] == "FAILED"
    r = client.post(
        "/flask/predict",
        json={
            "sepal_length": 5.1,
            "sepal_width": 3.5,
            "petal_length": 1.4,
            "petal_width": 0.2,
            "model_version": version,
        },
    )
    assert r.status_code == 400 and "FAILED" in r.get_json()["error"]
    assert client.post(f"/flask/models/{version}/default").status_code == 409


def test_an_untrusted_type_is_refused_even_with_a_matching_hash(tmp_path: Path) -> None:
    folder = tmp_path
    content = sio.dumps({"estimator": Fraction(1, 2), "card": json.dumps({"version": "x"})})
    path = folder / "0123456789abcdef-0.skops"
    path.write_bytes(content)
    with pytest.raises(ArtifactError, match=r"untrusted types \(fractions.Fraction\)"):
        load_artifact(path, hashlib.sha256(content).hexdigest())


def test_a_file_that_is_no_skops_zip_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "0123456789abcdef-0.skops"
    path.write_bytes(b"not a zip")
    with pytest.raises(ArtifactError, match="not a readable skops file"):
        load_artifact(path, hashlib.sha256(b"not a zip").hexdigest())


def test_the_png_names_the_model_version() -> None:
    probabilities = {"setosa": 0.9, "versicolor": 0.07, "virginica": 0.03}

    def caption_ink(png: bytes) -> int:
        image = Image.open(io.BytesIO(png)).convert("L")
        # The top right corner, where the version goes.
        corner = image.crop((PNG_SIZE[0] - 200, 5, PNG_SIZE[0] - 10, 35))
        return sum(1 for value in corner.tobytes() if value < 200)

    assert caption_ink(probability_png(probabilities, "setosa")) == 0
    assert caption_ink(probability_png(probabilities, "setosa", "94719adb164dfc5c")) > 50
