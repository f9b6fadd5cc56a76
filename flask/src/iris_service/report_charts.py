"""The report's charts, drawn with fpdf2's vector primitives, and the PNG probability chart.

Parts of a chart that never change between reports (the 150 training flowers
of a scatter plot, its grid) are drawn once per process on a scratch page with
fpdf2's own ``line``/``rect`` calls; the operators fpdf2 produced are then
copied into each report inside a saved graphics state (``replay``). Only the
sample's marker, labels and bars are drawn per report.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache

from fpdf import FPDF
from fpdf.enums import PDFResourceType
from fpdf.fonts import TTFFont
from PIL import Image, ImageDraw, ImageFont

from .model import FEATURES
from .report_fonts import FAMILY, FONT_FILES, ReportPDF, uses_base_repertoire_only
from .report_stats import FEATURE_LABELS, FeatureStats, training_stats

RGB = tuple[int, int, int]

# Okabe-Ito colours: distinct for the common kinds of colour blindness.
SPECIES_COLOURS: dict[str, RGB] = {
    "setosa": (0, 114, 178),
    "versicolor": (230, 159, 0),
    "virginica": (0, 158, 115),
}
FALLBACK_COLOURS: tuple[RGB, ...] = ((204, 121, 167), (86, 180, 233), (213, 94, 0))
INK: RGB = (33, 37, 41)
MUTED: RGB = (108, 117, 125)
RULE: RGB = (222, 226, 230)
TRACK: RGB = (241, 243, 245)
WHITE: RGB = (255, 255, 255)


def species_colour(name: str, index: int = 0) -> RGB:
    return SPECIES_COLOURS.get(name, FALLBACK_COLOURS[index % len(FALLBACK_COLOURS)])


def tint(colour: RGB, amount: float) -> RGB:
    """The colour mixed with white: amount 0 is white, 1 the colour itself."""
    r, g, b = (round(255 - (255 - c) * amount) for c in colour)
    return (r, g, b)


# --- text helpers (fpdf2's text() plus our own width sums: cell() is 5x slower) ---


def set_text(pdf: FPDF, size: float, style: str = "", colour: RGB = INK) -> None:
    pdf.set_font(FAMILY, style, size)
    pdf.set_text_color(*colour)


def width(pdf: FPDF, text: str) -> float:
    """String width in mm from the font's advance widths (what fpdf2 sums too)."""
    font = pdf.current_font
    assert isinstance(font, TTFFont)
    widths: dict[int, float] = font.cw
    return sum(map(widths.__getitem__, map(ord, text))) * pdf.font_size_pt / 1000 / pdf.k


def text(pdf: FPDF, x: float, y: float, value: str, align: str = "L") -> None:
    """Text with its baseline at y; align L, R (x is the right edge) or C (the centre)."""
    if align != "L":
        w = width(pdf, value)
        x -= w if align == "R" else w / 2
    pdf.text(x, y, value)


def wrap(pdf: FPDF, value: str, max_width: float) -> list[str]:
    """Greedy word wrap in the current font."""
    space = width(pdf, " ")
    lines: list[str] = []
    line: list[str] = []
    used = 0.0
    for word in value.split():
        w = width(pdf, word)
        if line and used + space + w > max_width:
            lines.append(" ".join(line))
            line, used = [word], w
        else:
            used += (space if line else 0.0) + w
            line.append(word)
    if line:
        lines.append(" ".join(line))
    return lines


# --- recorded static layers ---


@dataclass(frozen=True)
class Recording:
    """Content operators fpdf2 wrote on a scratch page, to be copied into reports."""

    operators: bytes
    # False when the drawing used characters beyond the base repertoire: their
    # codes would differ in another document, so the caller draws live instead.
    portable: bool


def record(draw: Callable[[ReportPDF], None]) -> Recording:
    """Draw on a scratch page of a fresh ReportPDF and keep the operators.

    Every ReportPDF numbers its fonts and the base repertoire's glyphs the same
    way, so text operators recorded here are valid in any report.
    """
    scratch = ReportPDF()
    scratch.add_page()
    contents = scratch.pages[1].contents
    assert isinstance(contents, bytearray)
    start = len(contents)
    draw(scratch)
    portable = all(
        isinstance(font, TTFFont) and uses_base_repertoire_only(font)
        for font in scratch.fonts.values()
    )
    return Recording(bytes(contents[start:]), portable)


# fpdf2's state at the start of the scratch page, restored before a replay so
# operators fpdf2 skipped as redundant there mean the same here.
_REPLAY_PROLOGUE = "q 0 G 0 g 0.57 w 0 J 0 j [] 0 d"


def replay(pdf: ReportPDF, recording: Recording, dy: float = 0.0) -> None:
    """Copy a recording into the current page, shifted down by dy mm."""
    if not recording.portable:
        raise ValueError("a recording with glyphs beyond the base repertoire: draw it live")
    for font in pdf.fonts.values():
        # What fpdf2's set_font does for a page: list the font in its resources.
        pdf._resource_catalog.add(PDFResourceType.FONT, font.i, pdf.page)
    shift = f" 1 0 0 1 0 {-dy * pdf.k:.2f} cm" if dy else ""
    pdf._out(f"{_REPLAY_PROLOGUE}{shift}\n".encode() + recording.operators + b"Q")


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
    # 4-curve circle, and just as crisp at any zoom.
    pdf._out("1 J")
    pdf.set_line_width(DOT_DIAMETER)
    for index, name in enumerate(stats.classes):
        pdf.set_draw_color(*species_colour(name, index))
        for row, target in stats.samples:
            if target == index:
                x, y = plot.px(row[xi]), plot.py(row[yi])
                pdf.line(x, y, x, y)
    pdf._out("0 J")


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
            pdf.set_fill_color(*tint((31, 58, 96), 0.08 + 0.92 * share))
            pdf.set_draw_color(*WHITE)
            pdf.set_line_width(0.5)
            pdf.rect(x + label_w + j * cell, top, cell, cell, style="DF")
            set_text(pdf, 9, "B" if i == j else "", WHITE if share > 0.45 else INK)
            text(pdf, x + label_w + (j + 0.5) * cell, top + cell / 2 + 1.3, str(count), "C")
    set_text(pdf, 6.5, colour=MUTED)
    with pdf.rotation(90, x + 3, y + cell * len(classes) / 2):
        text(pdf, x + 3, y + cell * len(classes) / 2, "true", "C")


# --- the PNG chart (GET /flask/result/<task_id>.png) ---

PNG_SIZE = (640, 220)


@cache
def _png_font(size: int, bold: bool) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(FONT_FILES["B" if bold else ""]), size)


def probability_png(probabilities: Mapping[str, float], label: str) -> bytes:
    """The class probabilities as a small PNG bar chart, same colours as the PDF."""
    w = PNG_SIZE[0]
    image = Image.new("RGB", PNG_SIZE, WHITE)
    draw = ImageDraw.Draw(image)
    title = _png_font(18, True)
    regular, bold = _png_font(15, False), _png_font(15, True)
    draw.text((20, 14), f"Predicted: Iris {label}", font=title, fill=INK)
    left, right, top, row = 130, w - 90, 58, 48
    for index, (name, p) in enumerate(probabilities.items()):
        y = top + index * row
        font = bold if name == label else regular
        draw.text((20, y + 6), name, font=font, fill=INK)
        draw.rectangle((left, y + 4, right, y + 30), fill=TRACK)
        if p > 0:
            end = left + max((right - left) * p, 2)
            draw.rectangle((left, y + 4, end, y + 30), fill=species_colour(name, index))
        draw.text((right + 10, y + 6), f"{p * 100:.1f} %", font=font, fill=INK)
    middle = (left + right) // 2
    for dash in range(top, top + 3 * row - 14, 6):
        draw.line((middle, dash, middle, dash + 3), fill=MUTED)
    out = io.BytesIO()
    # zlib level 1: half the time of the default level for a file 15 % larger.
    image.save(out, format="PNG", compress_level=1)
    return out.getvalue()
