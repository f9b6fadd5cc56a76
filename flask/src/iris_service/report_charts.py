"""The report's charts, drawn with fpdf2's vector primitives.

Scatter plots of the training flowers, probability bars, per-species range
strips and the confusion-matrix heat map. Each chart whose background never
changes comes in two halves: a static one (``scatter_static``,
``probability_tracks``, ``range_track``) that the layout records once per
process (``report_recording``), and one drawn per report for the job's values.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache

from fpdf import FPDF

from .fpdf_internals import append_operators
from .model import FEATURES
from .report_stats import FEATURE_LABELS, FeatureStats, training_stats
from .report_style import INK, MUTED, NAVY, RGB, RULE, TRACK, WHITE, species_colour, tint
from .report_text import set_text, text

# --- scatter plots ---


@dataclass(frozen=True)
class Axis:
    feature: str
    low: float
    high: float
    step: float

    def ticks(self) -> list[float]:
        count = round((self.high - self.low) / self.step)
        return [self.low + i * self.step for i in range(count + 1)]


@dataclass(frozen=True)
class Plot:
    """A scatter plot's frame: where it is on the page and what its axes show."""

    x: float
    y: float
    w: float
    h: float
    x_axis: Axis
    y_axis: Axis

    def px(self, value: float) -> float:
        a = self.x_axis
        return self.x + (value - a.low) / (a.high - a.low) * self.w

    def py(self, value: float) -> float:
        a = self.y_axis
        return self.y + self.h - (value - a.low) / (a.high - a.low) * self.h


@cache
def axis_for(feature: str) -> Axis:
    """Whole-centimetre bounds around all training flowers (half steps when narrow)."""
    values = [row[FEATURES.index(feature)] for row, _ in training_stats().samples]
    low, high = math.floor(min(values)), math.ceil(max(values))
    return Axis(feature, low, high, 0.5 if high - low <= 3 else 1.0)


DOT_DIAMETER = 1.5


def _draw_scatter_static(pdf: FPDF, plot: Plot) -> None:
    pdf.set_fill_color(*WHITE)
    pdf.set_draw_color(*RULE)
    pdf.set_line_width(0.15)
    pdf.rect(plot.x, plot.y, plot.w, plot.h, style="DF")
    for tick in plot.x_axis.ticks()[1:-1]:
        pdf.line(plot.px(tick), plot.y, plot.px(tick), plot.y + plot.h)
    for tick in plot.y_axis.ticks()[1:-1]:
        pdf.line(plot.x, plot.py(tick), plot.x + plot.w, plot.py(tick))
    stats = training_stats()
    xi, yi = FEATURES.index(plot.x_axis.feature), FEATURES.index(plot.y_axis.feature)
    # A zero-length line with round caps is a dot: 25 bytes instead of a
    # 4-curve circle, and just as crisp at any zoom. The cap style goes in as a
    # bare operator: fpdf2 sets it only through a graphics-state resource
    # (local_context), which a recording cannot carry into another document.
    append_operators(pdf, b"1 J")
    pdf.set_line_width(DOT_DIAMETER)
    for index, name in enumerate(stats.classes):
        pdf.set_draw_color(*species_colour(name, index))
        for row, target in stats.samples:
            if target == index:
                x, y = plot.px(row[xi]), plot.py(row[yi])
                pdf.line(x, y, x, y)
    append_operators(pdf, b"0 J")


def scatter_static(pdf: FPDF, plot: Plot) -> None:
    """Frame, grid, the 150 training flowers, ticks and axis titles."""
    _draw_scatter_static(pdf, plot)
    set_text(pdf, 6.5, colour=MUTED)
    for tick in plot.x_axis.ticks():
        text(pdf, plot.px(tick), plot.y + plot.h + 3.2, f"{tick:g}", "C")
    for tick in plot.y_axis.ticks():
        text(pdf, plot.x - 1.3, plot.py(tick) + 0.8, f"{tick:g}", "R")
    set_text(pdf, 7.5, colour=INK)
    text(
        pdf,
        plot.x + plot.w / 2,
        plot.y + plot.h + 7.5,
        f"{FEATURE_LABELS[plot.x_axis.feature]} (cm)",
        "C",
    )
    with pdf.rotation(90, plot.x - 7, plot.y + plot.h / 2):
        text(
            pdf,
            plot.x - 7,
            plot.y + plot.h / 2,
            f"{FEATURE_LABELS[plot.y_axis.feature]} (cm)",
            "C",
        )


def sample_marker(pdf: FPDF, plot: Plot, sample: Mapping[str, float]) -> None:
    """The submitted sample on a scatter plot drawn by ``scatter_static``."""
    # The sample: a black ring with a cross hair, pinned to the frame when the
    # value is off the chart (the table above says by how much).
    vx, vy = sample[plot.x_axis.feature], sample[plot.y_axis.feature]
    x = min(max(plot.px(vx), plot.x), plot.x + plot.w)
    y = min(max(plot.py(vy), plot.y), plot.y + plot.h)
    pdf.set_draw_color(*INK)
    pdf.set_line_width(0.45)
    pdf.circle(x, y, 1.9, style="D")
    pdf.set_line_width(0.25)
    pdf.line(x - 3.2, y, x - 2.0, y)
    pdf.line(x + 2.0, y, x + 3.2, y)
    pdf.line(x, y - 3.2, x, y - 2.0)
    pdf.line(x, y + 2.0, x, y + 3.2)
    off = vx != min(max(vx, plot.x_axis.low), plot.x_axis.high) or vy != min(
        max(vy, plot.y_axis.low), plot.y_axis.high
    )
    if off:
        set_text(pdf, 6.5, "B", INK)
        text(pdf, plot.x + plot.w - 1.5, plot.y + 3.5, "sample off the chart", "R")


# --- bars and strips ---


PROBABILITY_ROW = 8.0
_NAME_W, _VALUE_W = 24.0, 16.0


def probability_tracks(pdf: FPDF, x: float, y: float, w: float, count: int) -> None:
    """The static half of ``probability_bars``: empty 0..100 % tracks and their scale."""
    track_x, track_w = x + _NAME_W, w - _NAME_W - _VALUE_W
    pdf.set_fill_color(*TRACK)
    for index in range(count):
        pdf.rect(track_x, y + index * PROBABILITY_ROW + 1, track_w, 4.6, style="F")
    set_text(pdf, 6, colour=MUTED)
    bottom = y + count * PROBABILITY_ROW + 1.2
    text(pdf, track_x, bottom, "0", "C")
    text(pdf, track_x + track_w / 2, bottom, "50 %", "C")
    text(pdf, track_x + track_w, bottom, "100 %", "C")


def probability_bars(
    pdf: FPDF,
    x: float,
    y: float,
    w: float,
    probabilities: Mapping[str, float],
    label: str,
) -> None:
    """One row per class on the tracks: name, bar, percentage, and a 50 % guide."""
    track_x, track_w = x + _NAME_W, w - _NAME_W - _VALUE_W
    for index, (name, p) in enumerate(probabilities.items()):
        top = y + index * PROBABILITY_ROW
        set_text(pdf, 9, "B" if name == label else "", INK)
        text(pdf, x, top + 4.4, name)
        if p > 0:
            pdf.set_fill_color(*species_colour(name, index))
            pdf.rect(track_x, top + 1, max(track_w * p, 0.4), 4.6, style="F")
        text(pdf, x + w, top + 4.4, f"{p * 100:.1f} %", "R")
    # 50 % guide: a close call shows as two bars either side of it.
    pdf.set_draw_color(*MUTED)
    pdf.set_line_width(0.15)
    pdf.set_dash_pattern(dash=0.6, gap=0.6)
    middle = track_x + track_w / 2
    pdf.line(middle, y, middle, y + len(probabilities) * PROBABILITY_ROW - 1.4)
    pdf.set_dash_pattern()


def range_track(pdf: FPDF, x: float, y: float, w: float, h: float, axis: Axis) -> None:
    """The static half of ``range_strip``: the track and its scale."""
    pdf.set_fill_color(*TRACK)
    pdf.rect(x, y, w, h, style="F")
    set_text(pdf, 5.5, colour=MUTED)
    text(pdf, x, y + h + 2.6, f"{axis.low:g}")
    text(pdf, x + w, y + h + 2.6, f"{axis.high:g} cm", "R")


def range_strip(
    pdf: FPDF,
    x: float,
    y: float,
    w: float,
    h: float,
    axis: Axis,
    stats: FeatureStats,
    value: float,
    colour: RGB,
) -> None:
    """On a track: the species' range (light), middle half (darker), median, the sample."""

    def at(v: float) -> float:
        return x + (min(max(v, axis.low), axis.high) - axis.low) / (axis.high - axis.low) * w

    pdf.set_fill_color(*tint(colour, 0.35))
    pdf.rect(at(stats.low), y, max(at(stats.high) - at(stats.low), 0.3), h, style="F")
    q1, median, q3 = stats.quantile(0.25), stats.quantile(0.5), stats.quantile(0.75)
    pdf.set_fill_color(*tint(colour, 0.8))
    pdf.rect(at(q1), y, max(at(q3) - at(q1), 0.3), h, style="F")
    pdf.set_fill_color(*WHITE)
    pdf.rect(at(median) - 0.2, y, 0.4, h, style="F")
    pdf.set_fill_color(*INK)
    pdf.set_draw_color(*WHITE)
    pdf.set_line_width(0.3)
    pdf.circle(at(value), y + h / 2, 1.35, style="DF")


def heatmap(
    pdf: FPDF,
    x: float,
    y: float,
    cell: float,
    matrix: Sequence[Sequence[int]],
    classes: Sequence[str],
) -> None:
    """A confusion matrix: rows are the true species, columns the predicted ones."""
    label_w = 20.0
    biggest = max(max(r) for r in matrix) or 1
    set_text(pdf, 6.5, colour=MUTED)
    text(pdf, x + label_w + cell * len(classes) / 2, y - 6.5, "predicted", "C")
    for j, name in enumerate(classes):
        text(pdf, x + label_w + (j + 0.5) * cell, y - 1.8, name, "C")
    for i, name in enumerate(classes):
        top = y + i * cell
        set_text(pdf, 6.5, colour=MUTED)
        text(pdf, x + label_w - 2, top + cell / 2 + 1, name, "R")
        for j, count in enumerate(matrix[i]):
            share = count / biggest
            pdf.set_fill_color(*tint(NAVY, 0.08 + 0.92 * share))
            pdf.set_draw_color(*WHITE)
            pdf.set_line_width(0.5)
            pdf.rect(x + label_w + j * cell, top, cell, cell, style="DF")
            set_text(pdf, 9, "B" if i == j else "", WHITE if share > 0.45 else INK)
            text(pdf, x + label_w + (j + 0.5) * cell, top + cell / 2 + 1.3, str(count), "C")
    set_text(pdf, 6.5, colour=MUTED)
    with pdf.rotation(90, x + 3, y + cell * len(classes) / 2):
        text(pdf, x + 3, y + cell * len(classes) / 2, "true", "C")
