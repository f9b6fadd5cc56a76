"""The PDF report a job produces (two A4 pages, fpdf2): its page layout and ``render``.

Page 1 explains the prediction: the verdict and the class probabilities, the
warnings, how each measurement compares with the training flowers of the
predicted species, and where the sample sits in two scatter plots. Page 2 is
the model card. The other report modules hold the parts:

- ``report_document``: the PDF document class and its embedded fonts;
- ``report_charts``: the charts; ``report_text``: text placement and wrapping;
- ``report_recording``: static page parts drawn once and replayed per report;
- ``report_stats``: training-data statistics and the warnings;
- ``report_style``: colours and typeface files (shared with ``probability_png``);
- ``fpdf_internals``: every use of fpdf2's private members.

Fonts, static page parts and statistics are prepared once per process, so a
report takes milliseconds.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache, lru_cache
from typing import Any

import fpdf

from .model import FEATURES
from .report_charts import (
    PROBABILITY_ROW,
    Plot,
    axis_for,
    heatmap,
    probability_bars,
    probability_tracks,
    range_strip,
    range_track,
    sample_marker,
    scatter_static,
)
from .report_document import ReportPDF
from .report_recording import Recording, record, replay
from .report_stats import (
    CLOSE_MARGIN,
    FAR_SIGMAS,
    FEATURE_LABELS,
    Assessment,
    assess,
    ordinal,
    training_stats,
)
from .report_style import (
    BANNER_INK,
    INK,
    MUTED,
    NAVY,
    RGB,
    RULE,
    WARN_EDGE,
    WARN_FILL,
    WARN_INK,
    WHITE,
    species_colour,
    tint,
)
from .report_text import set_text, text, width, wrap

SERVICE_NAME = "Iris prediction service"
LEFT, RIGHT, PAGE_W = 16.0, 194.0, 210.0
CONTENT_W = RIGHT - LEFT


@dataclass(frozen=True)
class ReportData:
    task_id: str
    created_at: datetime  # when the job finished: the report's completion time
    features: dict[str, float]
    label: str
    probabilities: dict[str, float]
    model_version: str
    submitted_at: datetime | None = None
    # The model card (GET /flask/model plus parameters); optional so a report
    # can still be drawn for a model file written before a field existed.
    model_card: Mapping[str, Any] = field(default_factory=dict)


def _utc(value: datetime | None) -> str:
    if value is None:
        return "not recorded"
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _label(pdf: ReportPDF, x: float, y: float, value: str) -> None:
    """A small upper-case section label."""
    set_text(pdf, 7, "B", MUTED)
    text(pdf, x, y, value.upper())


def _rule(pdf: ReportPDF, y: float) -> None:
    pdf.set_draw_color(*RULE)
    pdf.set_line_width(0.3)
    pdf.line(LEFT, y, RIGHT, y)


def _footer(pdf: ReportPDF, data: ReportData, page: int) -> None:
    if page != 1:  # page 1's rule and number are part of its recorded frame
        _rule(pdf, 284)
        set_text(pdf, 7, colour=MUTED)
        text(pdf, RIGHT, 288.5, f"page {page} of 2", "R")
    set_text(pdf, 7, colour=MUTED)
    text(pdf, LEFT, 288.5, f"{SERVICE_NAME} · task {data.task_id}")


_META_Y = 35.0
_VERDICT_Y = 51.0
_BARS_X = 112.0


def _frame_static(pdf: ReportPDF, classes: int) -> None:
    """Page 1's fixed furniture: banner, labels, empty bar tracks, footer rule."""
    pdf.set_fill_color(*NAVY)
    pdf.rect(0, 0, PAGE_W, 27, style="F")
    set_text(pdf, 18, "B", WHITE)
    text(pdf, LEFT, 13.5, "Iris species prediction")
    for index, name in enumerate(
        ("Submitted (UTC)", "Completed (UTC)", "Model version", "Model accuracy")
    ):
        _label(pdf, LEFT + index * CONTENT_W / 4, _META_Y, name)
    _rule(pdf, 44)
    _label(pdf, LEFT, _VERDICT_Y, "Predicted species")
    _label(pdf, _BARS_X, _VERDICT_Y, "Class probabilities")
    probability_tracks(pdf, _BARS_X, _VERDICT_Y + 2.5, RIGHT - _BARS_X, classes)
    _rule(pdf, 284)
    set_text(pdf, 7, colour=MUTED)
    text(pdf, RIGHT, 288.5, "page 1 of 2", "R")


@cache
def _frame_recording(classes: int) -> Recording:
    return record(lambda scratch: _frame_static(scratch, classes))


def _header(pdf: ReportPDF, data: ReportData) -> float:
    replay(pdf, _frame_recording(len(data.probabilities)))
    set_text(pdf, 8.5, colour=BANNER_INK)
    text(pdf, LEFT, 20.5, f"{SERVICE_NAME} · task {data.task_id}")
    values = (
        _utc(data.submitted_at),
        _utc(data.created_at),
        data.model_version,
        _accuracy(data.model_card),
    )
    set_text(pdf, 9, colour=INK)
    for index, value in enumerate(values):
        text(pdf, LEFT + index * CONTENT_W / 4, _META_Y + 5, value)
    return _VERDICT_Y


def _cm(value: float) -> str:
    """At least one decimal (6.0, 6.35): measurements read as measurements."""
    return f"{value:.1f}" if round(value, 1) == value else f"{value:g}"


def _accuracy(card: Mapping[str, Any]) -> str:
    accuracy = card.get("cv_accuracy")
    if not isinstance(accuracy, int | float):
        return "not recorded"
    folds = card.get("cv_folds")
    return f"{accuracy * 100:.1f} % ({folds}-fold CV)" if folds else f"{accuracy * 100:.1f} %"


def _verdict(pdf: ReportPDF, data: ReportData, verdict: Assessment, colour: RGB, y: float) -> float:
    # Darkened a fifth: the orange of versicolor is too light for text on white.
    set_text(pdf, 24, "B", (colour[0] * 4 // 5, colour[1] * 4 // 5, colour[2] * 4 // 5))
    text(pdf, LEFT, y + 11, f"Iris {data.label}")
    set_text(pdf, 9, colour=INK)
    bottom = y + 18
    for line in wrap(pdf, verdict.confidence_sentence(), 86):
        text(pdf, LEFT, bottom, line)
        bottom += 4.4
    probability_bars(pdf, _BARS_X, y + 2.5, RIGHT - _BARS_X, data.probabilities, data.label)
    return max(bottom, y + 2.5 + len(data.probabilities) * PROBABILITY_ROW + 3) + 3


def _warnings(pdf: ReportPDF, warnings: list[str], y: float) -> float:
    for message in warnings:
        set_text(pdf, 8.5, colour=WARN_INK)
        lines = wrap(pdf, message, CONTENT_W - 14)
        height = len(lines) * 4.1 + 4.2
        pdf.set_fill_color(*WARN_FILL)
        pdf.set_draw_color(*WARN_EDGE)
        pdf.set_line_width(0.35)
        pdf.rect(LEFT, y, CONTENT_W, height, style="DF")
        pdf.set_fill_color(*WARN_EDGE)
        pdf.rect(LEFT, y, 1.6, height, style="F")
        set_text(pdf, 11, "B", WARN_EDGE)
        text(pdf, LEFT + 4, y + 6, "⚠")
        set_text(pdf, 8.5, colour=WARN_INK)
        for index, line in enumerate(lines):
            text(pdf, LEFT + 10, y + 5.6 + index * 4.1, line)
        y += height + 2.5
    return y + 2


# The measurements table's fixed parts are drawn once at this height and shifted.
_TABLE_Y0 = 100.0
_ROW_H = 10.5
_STRIP_X, _STRIP_W = 80.0, 78.0


def _measurements_static(pdf: ReportPDF, y: float) -> None:
    set_text(pdf, 6.5, colour=MUTED)
    text(pdf, LEFT, y, "measurement")
    text(pdf, 72, y, "value", "R")
    text(pdf, _STRIP_X, y, "where it falls (species range, middle half, median; ● this sample)")
    text(pdf, RIGHT, y, "percentile", "R")
    y += 2
    for feature in FEATURES:
        _rule(pdf, y)
        set_text(pdf, 9.5, colour=INK)
        text(pdf, LEFT, y + 6.3, FEATURE_LABELS[feature])
        range_track(pdf, _STRIP_X, y + 2.8, _STRIP_W, 4.4, axis_for(feature))
        y += _ROW_H
    _rule(pdf, y)


@cache
def _measurements_recording() -> Recording:
    return record(lambda scratch: _measurements_static(scratch, _TABLE_Y0))


def _measurements(
    pdf: ReportPDF, data: ReportData, verdict: Assessment, colour: RGB, y: float
) -> float:
    stats = training_stats().per_class[data.label]
    _label(pdf, LEFT, y, f"Your measurements and the 50 training flowers of Iris {data.label}")
    y += 6
    replay(pdf, _measurements_recording(), dy=y - _TABLE_Y0)
    y += 2
    for comparison in verdict.comparisons:
        feature = comparison.feature
        feature_stats = stats[feature]
        set_text(pdf, 9.5, "B", INK)
        text(pdf, 72, y + 6.3, f"{_cm(comparison.value)} cm", "R")
        range_strip(
            pdf,
            _STRIP_X,
            y + 2.8,
            _STRIP_W,
            4.4,
            axis_for(feature),
            feature_stats,
            comparison.value,
            colour,
        )
        if comparison.value < feature_stats.low:
            position = "below all 50"
        elif comparison.value > feature_stats.high:
            position = "above all 50"
        else:
            position = ordinal(max(1, min(99, round(comparison.percentile))))
        set_text(pdf, 9.5, "B" if comparison.far else "", WARN_EDGE if comparison.far else INK)
        text(pdf, RIGHT, y + 6.3, position, "R")
        y += _ROW_H
    return y + 8


# The scatter section is drawn once at this height and shifted into place.
_SCATTER_Y0 = 150.0
_PLOT_W, _PLOT_H = 74.0, 70.0
_LAST_Y_WITH_CAPTION = 180.0


def _plots(y: float) -> tuple[Plot, Plot]:
    top = y + 5
    return (
        Plot(LEFT + 11, top, _PLOT_W, _PLOT_H, axis_for("petal_length"), axis_for("petal_width")),
        Plot(
            RIGHT - _PLOT_W,
            top,
            _PLOT_W,
            _PLOT_H,
            axis_for("sepal_length"),
            axis_for("sepal_width"),
        ),
    )


def _scatters_static(pdf: ReportPDF, y: float, caption: bool) -> None:
    _label(pdf, LEFT, y, "Where the sample sits among the 150 training flowers")
    for plot in _plots(y):
        scatter_static(pdf, plot)
    # Legend: the species colours and the sample's marker.
    y += 5 + _PLOT_H + 14
    x = LEFT + 11
    for index, name in enumerate(training_stats().classes):
        pdf.set_fill_color(*species_colour(name, index))
        pdf.circle(x + 0.9, y - 1.1, 0.9, style="F")
        set_text(pdf, 8, colour=INK)
        text(pdf, x + 3, y, f"Iris {name}")
        x += 6 + width(pdf, f"Iris {name}") + 4
    pdf.set_draw_color(*INK)
    pdf.set_line_width(0.4)
    pdf.circle(x + 1.3, y - 1.1, 1.3, style="D")
    text(pdf, x + 4, y, "this sample")
    if not caption:
        return
    set_text(pdf, 7.5, colour=MUTED)
    note = (
        "Each dot is one flower the model learnt from. Petal measurements separate the "
        "three species best; in the sepal plot versicolor and virginica overlap, so a "
        "sample between their clouds is the hardest to call."
    )
    for index, line in enumerate(wrap(pdf, note, CONTENT_W)):
        text(pdf, LEFT, y + 6 + index * 3.8, line)


@cache
def _scatters_recording(caption: bool) -> Recording:
    return record(lambda scratch: _scatters_static(scratch, _SCATTER_Y0, caption))


def _scatters(pdf: ReportPDF, data: ReportData, y: float) -> None:
    # With both warnings shown, the caption would run into the footer.
    replay(pdf, _scatters_recording(y <= _LAST_Y_WITH_CAPTION), dy=y - _SCATTER_Y0)
    for plot in _plots(y):
        sample_marker(pdf, plot, data.features)


def _page_one(pdf: ReportPDF, data: ReportData, verdict: Assessment) -> None:
    pdf.add_page()
    # The predicted species' colour, as in the probability bars and the scatters.
    colour = species_colour(data.label, list(data.probabilities).index(data.label))
    y = _header(pdf, data)
    y = _verdict(pdf, data, verdict, colour, y)
    y = _warnings(pdf, verdict.warnings(), y)
    y = _measurements(pdf, data, verdict, colour, y)
    _scatters(pdf, data, y)
    _footer(pdf, data, 1)


def _key_values(pdf: ReportPDF, rows: list[tuple[str, str]], y: float) -> float:
    for name, value in rows:
        set_text(pdf, 8.5, colour=MUTED)
        text(pdf, LEFT, y, name)
        set_text(pdf, 8.5, colour=INK)
        lines = wrap(pdf, value, CONTENT_W - 48) or [""]
        for line in lines:
            text(pdf, LEFT + 48, y, line)
            y += 4.4
        y += 1.4
    return y


def _classifier(card: Mapping[str, Any]) -> str:
    name = str(card.get("classifier", "not recorded"))
    if name == "LogisticRegression":
        return "LogisticRegression (multinomial, scikit-learn)"
    return name


def _settings(card: Mapping[str, Any]) -> str:
    settings = card.get("hyperparameters")
    if not isinstance(settings, Mapping) or not settings:
        return "not recorded"
    return ", ".join(f"{k}={v}" for k, v in sorted(settings.items()))


def _training_data(card: Mapping[str, Any]) -> str:
    data = card.get("training_data")
    if isinstance(data, Mapping) and data.get("source") == "upload":
        return (
            f"{data.get('rows', '?')} flowers from an uploaded CSV "
            f"(SHA-256 {str(data.get('sha256', ''))[:16]}); four measurements in centimetres"
        )
    return (
        f"{card.get('training_samples', '?')} flowers, the iris data set shipped with "
        "scikit-learn; four measurements in centimetres"
    )


def _ensemble(card: Mapping[str, Any]) -> bool:
    return card.get("estimator") in ("random_forest", "gradient_boosting")


def _version_basis(card: Mapping[str, Any]) -> str:
    if _ensemble(card):
        return "SHA-256 of the estimator, its parameters, the data and scikit-learn's version"
    return "SHA-256 of the parameters"


def model_card_page(pdf: ReportPDF, card: Mapping[str, Any]) -> None:
    """The model card page on a new page (the training report's first page too)."""
    pdf.add_page()
    _model_card(pdf, card, str(card.get("version", "")))


def _libraries(card: Mapping[str, Any]) -> str:
    versions = card.get("library_versions")
    listed = (
        [f"{k} {v}" for k, v in sorted(versions.items())] if isinstance(versions, Mapping) else []
    )
    return " · ".join([*listed, f"fpdf2 {fpdf.__version__} (this report)"])


def _page_two(pdf: ReportPDF, data: ReportData) -> None:
    pdf.add_page()
    recording = _model_card_recording(
        json.dumps(data.model_card, sort_keys=True, default=str), data.model_version
    )
    if recording.portable:
        replay(pdf, recording)
    else:
        _model_card(pdf, data.model_card, data.model_version)
    _footer(pdf, data, 2)


@lru_cache(maxsize=8)
def _model_card_recording(card_json: str, model_version: str) -> Recording:
    """Page 2 depends on the model card alone: drawn once per card."""
    card = json.loads(card_json)
    return record(lambda scratch: _model_card(scratch, card, model_version))


def _model_card(pdf: ReportPDF, card: Mapping[str, Any], model_version: str) -> None:
    pdf.set_fill_color(*NAVY)
    pdf.rect(0, 0, PAGE_W, 16, style="F")
    set_text(pdf, 13, "B", WHITE)
    text(pdf, LEFT, 10.5, "Model card")
    set_text(pdf, 8.5, colour=BANNER_INK)
    text(pdf, RIGHT, 10.5, f"model version {model_version}", "R")

    y = 26.0
    _label(pdf, LEFT, y, "The classifier")
    accuracy = card.get("cv_accuracy")
    spread = card.get("cv_accuracy_std")
    if isinstance(accuracy, int | float):
        cv = f"{accuracy * 100:.1f} %"
        if isinstance(spread, int | float):
            cv += f" ± {spread * 100:.1f} points"
        cv += f" ({card.get('cv_folds', '?')}-fold stratified cross-validation)"
    else:
        cv = "not recorded"
    rows = [
        ("Classifier", _classifier(card)),
        ("Settings", _settings(card)),
        ("Training data", _training_data(card)),
        ("Cross-validated accuracy", cv),
        ("Trained at (UTC)", str(card.get("trained_at", "not recorded"))),
        ("Model version", f"{model_version} ({_version_basis(card)})"),
        ("Library versions", _libraries(card)),
    ]
    y = _key_values(pdf, rows, y + 6)

    y += 4
    _label(pdf, LEFT, y, "Confusion matrix (cross-validated)")
    _label(pdf, 100, y, "Coefficients (per cm)")
    classes = [str(c) for c in card.get("classes", training_stats().classes)]
    matrix = card.get("cv_confusion_matrix")
    if isinstance(matrix, list) and len(matrix) == len(classes):
        heatmap(pdf, LEFT, y + 13, 14, matrix, classes)
        set_text(pdf, 7, colour=MUTED)
        note = (
            "Each flower was predicted by a model that had not seen it. "
            "Rows: true species; columns: predicted."
        )
        for index, line in enumerate(wrap(pdf, note, 78)):
            text(pdf, LEFT, y + 13 + 14 * len(classes) + 5 + index * 3.6, line)
    else:
        set_text(pdf, 8.5, colour=MUTED)
        text(pdf, LEFT, y + 8, "not recorded in this model card")
    bottom = _coefficients(pdf, card, classes, 100, y + 8)
    y = max(y + 13 + 14 * len(classes) + 14, bottom) + 4

    _label(pdf, LEFT, y, "How to read this report")
    set_text(pdf, 8.5, colour=INK)
    notes = [
        "Probabilities are the model's own: it spreads 100 % over the three species. "
        "Very confident means at least 95 %, fairly confident at least 80 %, unsure below.",
        "A close-call warning appears when the two most likely species are less than "
        f"{CLOSE_MARGIN * 100:.0f} percentage points apart.",
        "An input is far outside the training data when a measurement lies more than "
        f"{FAR_SIGMAS:g} standard deviations from the mean of the predicted species' 50 "
        "training flowers; the model then extrapolates.",
        "A percentile says how many of those 50 flowers measure less (the 62nd percentile: "
        "62 % are smaller).",
    ]
    y += 6
    for note in notes:
        lines = wrap(pdf, note, CONTENT_W - 5)
        text(pdf, LEFT, y, "•")
        for line in lines:
            text(pdf, LEFT + 4, y, line)
            y += 4.3
        y += 1.5


def _coefficients(
    pdf: ReportPDF, card: Mapping[str, Any], classes: list[str], x: float, y: float
) -> float:
    parameters = card.get("parameters")
    coef = parameters.get("coef") if isinstance(parameters, Mapping) else None
    intercept = parameters.get("intercept") if isinstance(parameters, Mapping) else None
    if not isinstance(coef, list) or not isinstance(intercept, list) or len(coef) != len(classes):
        set_text(pdf, 8.5, colour=MUTED)
        text(
            pdf,
            x,
            y,
            "none: a tree ensemble" if _ensemble(card) else "not recorded in this model card",
        )
        return y + 6
    names = ["sepal len.", "sepal wid.", "petal len.", "petal wid.", "intercept"]
    label_w, cell_w, cell_h = 19.0, (RIGHT - x - 19.0) / 5, 9.0
    biggest = max(abs(v) for row in coef for v in row) or 1.0
    set_text(pdf, 6.5, colour=MUTED)
    for j, name in enumerate(names):
        text(pdf, x + label_w + (j + 0.5) * cell_w, y + 3.2, name, "C")
    top = y + 5
    for i, name in enumerate(classes):
        row_y = top + i * cell_h
        set_text(pdf, 7.5, colour=INK)
        text(pdf, x, row_y + cell_h / 2 + 1, name)
        for j, value in enumerate([*coef[i], intercept[i]]):
            cx = x + label_w + j * cell_w
            if j < len(FEATURES):
                # Diverging shade: blue raises this species' score, red lowers it.
                hue = (33, 102, 172) if value > 0 else (178, 24, 43)
                pdf.set_fill_color(*tint(hue, 0.1 + 0.5 * abs(value) / biggest))
            else:
                pdf.set_fill_color(245, 245, 245)
            pdf.set_draw_color(*WHITE)
            pdf.set_line_width(0.5)
            pdf.rect(cx, row_y, cell_w, cell_h, style="DF")
            set_text(pdf, 7.5, colour=INK)
            text(pdf, cx + cell_w / 2, row_y + cell_h / 2 + 1, f"{value:+.2f}", "C")
    set_text(pdf, 7, colour=MUTED)
    note = (
        "Score of a species = intercept + Σ coefficient × measurement; the softmax of the "  # noqa: RUF001
        "three scores gives the probabilities. Blue raises a species' score, red lowers it."
    )
    y = top + len(classes) * cell_h + 5
    for line in wrap(pdf, note, RIGHT - x):
        text(pdf, x, y, line)
        y += 3.6
    return y


def render(data: ReportData) -> bytes:
    """Lay out the two-page report and return the PDF bytes."""
    verdict = assess(data.features, data.probabilities)
    pdf = ReportPDF()
    pdf.set_title(f"Iris prediction {data.task_id}: Iris {data.label}")
    pdf.set_subject(f"{SERVICE_NAME} report, model {data.model_version}")
    pdf.set_creator(SERVICE_NAME)
    pdf.set_creation_date(data.created_at)
    pdf.set_auto_page_break(False)
    _page_one(pdf, data, verdict)
    _page_two(pdf, data)
    return pdf.output_bytes()


def warm_up(model_card: Mapping[str, Any]) -> None:
    """Pay the once-per-process costs (font parsing and subsetting, recorded
    charts, the model card page) now, so the first job is as fast as the rest."""
    now = datetime.now(UTC)
    classes = [str(c) for c in model_card.get("classes", training_stats().classes)]
    render(
        ReportData(
            task_id="00000000-0000-0000-0000-000000000000",
            created_at=now,
            submitted_at=now,
            features={name: training_stats().per_class[classes[0]][name].mean for name in FEATURES},
            label=classes[0],
            probabilities={c: 1.0 if i == 0 else 0.0 for i, c in enumerate(classes)},
            model_version=str(model_card.get("version", "")),
            model_card=model_card,
        )
    )
