"""Record the static parts of a page once per process and replay them into each report.

Parts that never change between reports (the page frame, the 150 training
flowers of a scatter plot, the model card page) are drawn once on a scratch
page with fpdf2's own drawing calls; the operators fpdf2 produced are then
copied into each report inside a saved graphics state (``replay``), and only
what depends on the job is drawn per report.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fpdf.fonts import TTFFont

from .fpdf_internals import append_operators
from .report_document import ReportPDF, uses_base_repertoire_only


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
    shift = f" 1 0 0 1 0 {-dy * pdf.k:.2f} cm" if dy else ""
    append_operators(
        pdf, f"{_REPLAY_PROLOGUE}{shift}\n".encode() + recording.operators + b"Q", uses_fonts=True
    )
