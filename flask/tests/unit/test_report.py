"""The PDF report: its text, its pixels, its warnings, its fonts, and the PNG chart.

The page is rendered with poppler's pdftoppm and the pixels are checked, so a
chart that silently stops drawing fails here, not in a user's inbox.
"""

from __future__ import annotations

import io
import subprocess
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from pypdf import PdfReader

from iris_service import files, model, report, report_charts, report_stats, training
from iris_service.model import FEATURES
from iris_service.report_stats import CLOSE_MARGIN, FAR_SIGMAS

from support.pdf import count_near, pdf_text
from support.samples import NEAR_TIE, SETOSA, VIRGINICA

TASK_ID = "6fa5a799-21e9-49d0-8268-be5827d5315f"
# A petal length no iris has: 40 cm.
FAR_OUT = {**SETOSA, "petal_length": 40.0}


@pytest.fixture(scope="module")
def card() -> dict[str, Any]:
    return training.train(datetime(2026, 11, 21, 9, 30, tzinfo=UTC))


def make_data(card: Mapping[str, Any], features: dict[str, float], **overrides: Any) -> Any:
    prediction = model.IrisModel(dict(card)).predict(features)
    values: dict[str, Any] = {
        "task_id": TASK_ID,
        "created_at": datetime(2026, 11, 21, 12, 0, 1, tzinfo=UTC),
        "submitted_at": datetime(2026, 11, 21, 11, 59, 58, tzinfo=UTC),
        "features": features,
        "label": prediction.label,
        "probabilities": prediction.probabilities,
        "model_version": card["version"],
        "model_card": card,
    }
    values.update(overrides)
    return report.ReportData(**values)


def render_page(content: bytes, tmp_path: Path, page: int = 1) -> Image.Image:
    tmp_path.mkdir(parents=True, exist_ok=True)
    source = tmp_path / "report.pdf"
    source.write_bytes(content)
    subprocess.run(
        ["pdftoppm", "-r", "60", "-f", str(page), "-l", str(page), "-png", str(source), "page"],
        cwd=tmp_path,
        check=True,
        timeout=60,
    )
    (image,) = tmp_path.glob("page*.png")
    return Image.open(image).convert("RGB")


def test_report_text(card: dict[str, Any]) -> None:
    data = make_data(card, SETOSA)
    content = report.render(data)
    assert content.startswith(b"%PDF-")
    reader = PdfReader(io.BytesIO(content))
    assert len(reader.pages) == 2
    text = pdf_text(content)
    assert data.task_id in text
    assert "Iris setosa" in text
    assert data.model_version in text
    for label in ("Sepal length", "Sepal width", "Petal length", "Petal width"):
        assert label in text
    for value in ("5.1 cm", "3.5 cm", "1.4 cm", "0.2 cm"):
        assert value in text
    assert "2026-11-21 11:59:58" in text and "2026-11-21 12:00:01" in text
    # The model card: accuracy, confusion matrix, settings, training date, libraries.
    assert f"{card['cv_accuracy'] * 100:.1f} %" in text
    assert "solver=lbfgs" in text
    assert "2026-11-21T09:30:00" in text
    assert f"scikit-learn {card['library_versions']['scikit-learn']}" in text
    assert "LogisticRegression" in text
    assert "Close call" not in text and "Input far outside" not in text
    assert "very confident" in text


def test_percentiles_are_computed_against_the_predicted_species(card: dict[str, Any]) -> None:
    stats = report_stats.training_stats().per_class["setosa"]["petal_length"]
    # 1.4 cm is setosa's median petal length: about the 50th percentile.
    assert 35 <= stats.percentile(1.4) <= 65
    assert stats.percentile(0.5) == 0.0
    assert stats.percentile(3.0) == 100.0
    text = pdf_text(report.render(make_data(card, FAR_OUT)))
    assert "above all 50" in text


def test_near_tie_warns(card: dict[str, Any]) -> None:
    data = make_data(card, NEAR_TIE)
    top, second = sorted(data.probabilities.values(), reverse=True)[:2]
    assert top - second < CLOSE_MARGIN
    text = pdf_text(report.render(data))
    assert "Close call" in text
    assert "Input far outside" not in text


def test_far_outside_input_warns(card: dict[str, Any]) -> None:
    text = pdf_text(report.render(make_data(card, FAR_OUT)))
    assert "Input far outside the training data" in text
    assert "petal length 40 cm" in text


@pytest.mark.parametrize(
    ("p1", "p2", "close"),
    [
        (0.55, 0.45, True),
        (0.5 + CLOSE_MARGIN / 2 - 0.001, 0.5 - CLOSE_MARGIN / 2 + 0.001, True),
        (0.5 + CLOSE_MARGIN / 2 + 0.001, 0.5 - CLOSE_MARGIN / 2 - 0.001, False),
        (0.99, 0.01, False),
    ],
)
def test_close_call_threshold(p1: float, p2: float, close: bool) -> None:
    verdict = report_stats.assess(
        VIRGINICA, {"virginica": p1, "versicolor": p2, "setosa": 1 - p1 - p2}
    )
    assert verdict.close_call is close
    assert any("Close call" in w for w in verdict.warnings()) is close


@pytest.mark.parametrize(("sigmas", "far"), [(FAR_SIGMAS - 0.05, False), (FAR_SIGMAS + 0.05, True)])
@pytest.mark.parametrize("feature", FEATURES)
def test_far_threshold(feature: str, sigmas: float, far: bool) -> None:
    stats = report_stats.training_stats().per_class["versicolor"]
    features = {name: stats[name].mean for name in FEATURES}
    features[feature] = stats[feature].mean + sigmas * stats[feature].std
    verdict = report_stats.assess(features, {"versicolor": 0.9, "virginica": 0.1, "setosa": 0.0})
    assert [c.feature for c in verdict.far_features] == ([feature] if far else [])
    assert any("far outside" in w for w in verdict.warnings()) is far


def test_ordinals() -> None:
    assert [report_stats.ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 99)] == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "99th"
    ]  # fmt: skip


def test_rendered_page_shows_the_charts(card: dict[str, Any], tmp_path: Path) -> None:
    image = render_page(report.render(make_data(card, VIRGINICA)), tmp_path)
    pixels = image.width * image.height
    non_white = pixels - count_near(image, (255, 255, 255), 0)
    assert non_white > pixels * 0.05, "the page is (almost) blank"
    for name, colour in report_charts.SPECIES_COLOURS.items():
        assert count_near(image, colour) > 60, f"no {name} colour on the page"


def test_warning_box_is_drawn(card: dict[str, Any], tmp_path: Path) -> None:
    calm = render_page(report.render(make_data(card, VIRGINICA)), tmp_path / "calm")
    tie = render_page(report.render(make_data(card, NEAR_TIE)), tmp_path / "tie")
    assert count_near(calm, report.WARN_FILL, 4) == 0
    assert count_near(tie, report.WARN_FILL, 4) > 1000


def test_unicode_metadata_renders_and_does_not_leak(card: dict[str, Any]) -> None:
    plain = make_data(card, SETOSA)
    before = report.render(plain)
    odd = {
        **card,
        "classifier": "Λογιστική παλινδρόμηση",
        "library_versions": {"numpy": "2.4.6", "Straße": "1.0 ✓ ≥ naïve"},
    }
    text = pdf_text(report.render(make_data(card, SETOSA, model_card=odd)))
    assert "Λογιστική παλινδρόμηση" in text
    assert "Straße 1.0 ✓ ≥ naïve" in text
    # The next plain report is byte-identical to the plain one rendered before.
    assert "Λογιστική" not in pdf_text(report.render(plain))
    assert report.render(plain) == before


def test_fonts_are_embedded_subsets(card: dict[str, Any]) -> None:
    content = report.render(make_data(card, SETOSA))
    reader = PdfReader(io.BytesIO(content))
    fonts = reader.pages[0]["/Resources"]["/Font"]
    names = []
    for ref in fonts.values():
        font = ref.get_object()
        descendant = font["/DescendantFonts"][0].get_object()
        descriptor = descendant["/FontDescriptor"].get_object()
        assert "/FontFile2" in descriptor
        names.append(str(font["/BaseFont"]))
    assert any("DejaVuSans" in n and "Bold" not in n for n in names)
    assert any("DejaVuSans-Bold" in n or "DejaVuSansBold" in n for n in names)
    assert len(content) < 60_000


def test_probability_png_draws_each_class() -> None:
    png = report_charts.probability_png(
        {"setosa": 0.2, "versicolor": 0.3, "virginica": 0.5}, "virginica"
    )
    image = Image.open(io.BytesIO(png)).convert("RGB")
    assert image.size == report_charts.PNG_SIZE
    for colour in report_charts.SPECIES_COLOURS.values():
        assert count_near(image, colour, 2) > 500


def test_write_atomically_replaces(tmp_path: Path) -> None:
    target = tmp_path / "reports" / "x.pdf"
    target.parent.mkdir()
    files.write_atomically(b"first", target)
    files.write_atomically(b"second", target)
    assert target.read_bytes() == b"second"
    assert [p.name for p in target.parent.iterdir()] == ["x.pdf"]
    assert target.stat().st_mode & 0o644 == 0o644
