"""Text on a report page: choose font and colour, measure, place, wrap.

fpdf2's ``text()`` with width sums of our own, rather than ``cell()`` and
``multi_cell()``: the layout places every line itself, and cells cost several
times as much per line of text.
"""

from __future__ import annotations

from fpdf import FPDF
from fpdf.fonts import TTFFont

from .report_document import FAMILY
from .report_style import INK, RGB


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
