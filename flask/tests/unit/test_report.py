"""The PDF report: its text, its pixels, its warnings, its fonts, the PNG chart,
rendering on several threads, and the fpdf2 internals the report relies on.

The page is rendered with poppler's pdftoppm and the pixels are checked, so a
chart that silently stops drawing fails here, not in a user's inbox.
"""

from __future__ import annotations

import inspect
import io
import re
import subprocess
import sys
import threading
import zlib
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fpdf
import pytest
from fpdf.fonts import SubsetMap, TTFFont
from fpdf.output import OutputProducer
from PIL import Image
from pypdf import PdfReader

from iris_service import (
    files,
    fpdf_internals,
    model,
    probability_png,
    report,
    report_document,
    report_stats,
    report_style,
    training,
)
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
    for name, colour in report_style.SPECIES_COLOURS.items():
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
    png = probability_png.probability_png(
        {"setosa": 0.2, "versicolor": 0.3, "virginica": 0.5}, "virginica"
    )
    image = Image.open(io.BytesIO(png)).convert("RGB")
    assert image.size == probability_png.PNG_SIZE
    for colour in report_style.SPECIES_COLOURS.values():
        assert count_near(image, colour, 2) > 500


def test_probability_png_does_not_import_the_pdf_stack() -> None:
    """The web app draws the PNG chart; loading fpdf2 and fontTools for it is waste."""
    code = (
        "import sys, iris_service.probability_png; "
        "print(' '.join(m for m in ('fpdf', 'fontTools') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "", f"probability_png imports {result.stdout.strip()}"


def _plain_fpdf_document() -> bytes:
    document = fpdf.FPDF()
    document.set_creation_date(datetime(2026, 1, 1, tzinfo=UTC))
    document.add_page()
    document.set_font("helvetica", size=12)
    for line in range(40):
        document.text(10, 10 + line * 6, "a plain fpdf2 document " * 4)
    return bytes(document.output())


def test_reports_render_on_two_threads_at_once(card: dict[str, Any]) -> None:
    """Two threads rendering at once get exactly what a single thread gets, and
    leave fpdf2's settings for other documents of the process as they were.

    Each report used to set fpdf2's process-wide compression level around its
    output: a render on another thread could deflate at the wrong level, and the
    level could stay changed for every document after.
    """
    items = [make_data(card, features) for features in (SETOSA, NEAR_TIE, VIRGINICA, FAR_OUT)]
    expected = [report.render(item) for item in items]
    plain = _plain_fpdf_document()
    start = threading.Barrier(2)

    def work(offset: int) -> list[bytes]:
        start.wait(timeout=60)
        return [report.render(items[(i + offset) % len(items)]) for i in range(60)]

    with ThreadPoolExecutor(max_workers=2) as pool:
        outputs = dict(zip((0, 1), pool.map(work, (0, 1)), strict=True))
    for offset, rendered in outputs.items():
        for i, content in enumerate(rendered):
            assert content == expected[(i + offset) % len(items)], f"thread {offset}, report {i}"
    assert "Iris setosa" in pdf_text(outputs[1][-1])
    assert _plain_fpdf_document() == plain, "rendering reports changed fpdf2's output elsewhere"


# --- the fpdf2 internals fpdf_internals.py relies on (fpdf2 is pinned exactly) ---


def _changed(what: str) -> str:
    return (
        f"fpdf2 {fpdf.__version__} changed {what}, which iris_service/fpdf_internals.py relies "
        "on: read the new fpdf2 source and update fpdf_internals.py"
    )


def _parameters(function: Any) -> list[str]:
    return list(inspect.signature(function).parameters)


def test_fpdf_private_signatures_are_as_relied_upon() -> None:
    expected = {
        "OutputProducer._add_pages": (OutputProducer._add_pages, ["self", "_slice"]),
        "OutputProducer._add_fonts": (
            OutputProducer._add_fonts,
            ["self", "image_objects_per_index", "gfxstate_objs_per_name", "pattern_objs_per_name"],
        ),
        "OutputProducer._add_pdf_obj": (
            OutputProducer._add_pdf_obj,
            ["self", "pdf_obj", "trace_label"],
        ),
        "FPDF._out": (fpdf.FPDF._out, ["self", "s"]),
    }
    for name, (function, parameters) in expected.items():
        assert _parameters(function) == parameters, _changed(f"the signature of {name}")
    catalog = fpdf.FPDF()._resource_catalog
    assert _parameters(catalog.add)[:3] == ["resource_type", "resource", "page_number"], _changed(
        "FPDF._resource_catalog.add"
    )


def test_fpdf_subset_map_clones_as_relied_upon() -> None:
    prototype = report_document._prototype("")
    fields = {"_next": int, "_reserved": list, "_char_id_per_glyph": dict}
    for name, kind in fields.items():
        assert isinstance(getattr(prototype.subset, name, None), kind), _changed(
            f"SubsetMap.{name}"
        )
    assert len(prototype.subset) == len(prototype.subset._char_id_per_glyph), _changed(
        "SubsetMap.__len__"
    )
    first, second = (fpdf_internals.clone_font(prototype, i) for i in (1, 2))
    assert list(first.subset.items()) == list(prototype.subset.items()), _changed("SubsetMap")
    # A glyph beyond the base repertoire gets the same new code in every clone and
    # leaves the prototype's glyph map as it was.
    codes = {font.subset.pick(ord("λ")) for font in (first, second)}
    assert len(codes) == 1 and None not in codes, _changed("SubsetMap.pick")
    assert len(first.subset) == len(prototype.subset) + 1, _changed("SubsetMap.pick")
    assert report_document.uses_base_repertoire_only(second) is False
    assert report_document.uses_base_repertoire_only(fpdf_internals.clone_font(prototype, 3)), (
        _changed("SubsetMap (a clone shares its prototype's glyph map)")
    )
    SubsetMap.pick.cache_clear()
    SubsetMap.get_glyph.cache_clear()


def test_fpdf_output_helpers_behave_as_relied_upon() -> None:
    blocks = fpdf_internals.cmap_blocks(["<0001> <0041>\n"] * 101, "bfchar")
    assert blocks.startswith("100 beginbfchar\n<0001> <0041>\n"), _changed("_build_cmap_blocks")
    assert blocks.endswith("endbfchar\n1 beginbfchar\n<0001> <0041>\nendbfchar\n"), _changed(
        "_build_cmap_blocks"
    )
    font = fpdf_internals.clone_font(report_document._prototype(""), 1)
    assert isinstance(font, TTFFont)
    widths = fpdf_internals.cid_widths(font)
    assert re.fullmatch(r"\[[0-9 \[\]\n]+\]", widths), _changed("_tt_font_widths")


def test_report_producer_hooks_are_called(
    card: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The report's producer builds the fonts and deflates the pages at its own level."""
    calls: list[int] = []
    embed = report_document._CachingOutputProducer.embed_fonts

    def counting(self: Any, fonts: Any) -> Any:
        calls.append(len(fonts))
        return embed(self, fonts)

    monkeypatch.setattr(report_document._CachingOutputProducer, "embed_fonts", counting)
    content = report.render(make_data(card, SETOSA))
    assert calls == [2], _changed("OutputProducer._add_fonts (the report's fonts hook)")
    reader = PdfReader(io.BytesIO(content))
    level = fpdf_internals.ReportOutputProducer.PAGE_COMPRESSION_LEVEL
    for page in reader.pages:
        stream = page["/Contents"].get_object()
        assert stream["/Filter"] == "/FlateDecode", _changed("OutputProducer._add_pages")
        # zlib is deterministic: the stream is in the file as this level deflates it.
        deflated = zlib.compress(stream.get_data(), level)
        assert deflated in content, _changed("OutputProducer._add_pages (page compression level)")


def test_write_atomically_replaces(tmp_path: Path) -> None:
    target = tmp_path / "reports" / "x.pdf"
    target.parent.mkdir()
    files.write_atomically(b"first", target)
    files.write_atomically(b"second", target)
    assert target.read_bytes() == b"second"
    assert [p.name for p in target.parent.iterdir()] == ["x.pdf"]
    assert target.stat().st_mode & 0o644 == 0o644
