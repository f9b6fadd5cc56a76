"""Every use of fpdf2's private members, in one place.

The report needs four things fpdf2 has no public API for:

- content operators recorded on one document, written into a page of another
  (``append_operators``): the static parts of the charts are drawn once per process;
- a font that shares a parsed font's tables but has its own number and glyph map
  (``clone_font``): parsing DejaVu Sans for every document would cost more than
  the rest of the report;
- the embedded font objects built by the report from its own cache instead of
  fontTools' subsetter running on every ``output`` (``ReportOutputProducer``);
- page streams deflated at a level chosen per document: fpdf2 reads the level
  from a class attribute shared by the whole process, so changing it around a
  render would race with a render on another thread.

fpdf2 is pinned exactly (requirements.txt). ``tests/unit/test_report.py`` checks
each private member used here against the installed fpdf2 and names its version
when one of them changes; update this module, not its callers, when it does.
"""

from __future__ import annotations

import copy
import zlib
from typing import Any, Literal

from fpdf import FPDF
from fpdf.enums import PDFResourceType
from fpdf.fonts import CoreFont, SubsetMap, TTFFont
from fpdf.output import OutputProducer, PDFPage, _build_cmap_blocks, _tt_font_widths
from fpdf.syntax import Name, PDFContentStream, PDFObject

FontObjects = dict[int, Any]  # PDF font objects by font number


def append_operators(pdf: FPDF, operators: bytes, *, uses_fonts: bool = False) -> None:
    """Append raw content-stream operators to the current page.

    With ``uses_fonts``, every font of the document is listed in the page's
    resources first, as ``set_font`` does for the font it selects, so the text
    operators among them find their fonts.
    """
    if uses_fonts:
        for font in pdf.fonts.values():
            pdf._resource_catalog.add(PDFResourceType.FONT, font.i, pdf.page)
    pdf._out(operators)


def clone_font(prototype: TTFFont, index: int) -> TTFFont:
    """A font for another document: the prototype's parsed tables, shared read-only,
    with its own number, descriptor and a copy of its glyph map.

    The copied glyph map continues where the prototype's stopped, so the glyphs the
    prototype picked keep their codes in every clone.
    """
    font = copy.copy(prototype)
    font.i = index
    font.desc = copy.copy(prototype.desc)
    font.missing_glyphs = []
    font.biggest_size_pt = 0
    source = prototype.subset
    subset = SubsetMap.__new__(SubsetMap)
    subset.font = font
    subset._next = source._next
    subset._reserved = list(source._reserved)
    subset._char_id_per_glyph = dict(source._char_id_per_glyph)
    font.subset = subset
    return font


def cid_widths(font: TTFFont) -> str:
    """The /W array of a TrueType font's glyph map, as fpdf2 writes it."""
    text: str = _tt_font_widths(font)
    return text


def cmap_blocks(entries: list[str], operator: Literal["bfchar", "cidchar"]) -> str:
    """CMap mapping entries in blocks of at most 100, as fpdf2 writes them."""
    text: str = _build_cmap_blocks(entries, operator)
    return text


class ReportOutputProducer(OutputProducer):
    """fpdf2's producer with two steps done the report's way.

    Fonts: ``embed_fonts`` (for subclasses) builds the font objects; returning
    None leaves them to fpdf2. Pages: when the document compresses (fpdf2's
    default), its page streams are deflated at ``PAGE_COMPRESSION_LEVEL`` here,
    an attribute of this producer, not of the process.
    """

    # Level 1: a report's pages deflate several times faster than at the default
    # level, for a slightly larger file.
    PAGE_COMPRESSION_LEVEL = 1

    def embed_fonts(self, fonts: list[CoreFont | TTFFont]) -> FontObjects | None:
        """The PDF objects of the document's fonts by font number, or None for fpdf2's."""
        return None

    def add_object(self, pdf_object: PDFObject, trace_label: str) -> int:
        """Number an object and queue it for output; returns its object number."""
        number: int = self._add_pdf_obj(pdf_object, trace_label)
        return number

    def _add_pages(self, _slice: slice = slice(0, None)) -> list[PDFPage]:
        fpdf = self.fpdf
        if not fpdf.compress:
            pages: list[PDFPage] = super()._add_pages(_slice)
            return pages
        for page in [fpdf.pages[n] for n in range(1, fpdf.pages_count + 1)][_slice]:
            assert isinstance(page.contents, bytearray)
            page.contents = bytearray(zlib.compress(page.contents, self.PAGE_COMPRESSION_LEVEL))
        # fpdf2 would deflate the deflated bytes again; the switch is this document's.
        fpdf.set_compression(False)
        try:
            pages = super()._add_pages(_slice)
        finally:
            fpdf.set_compression(True)
        for page in pages:
            assert isinstance(page.contents, PDFContentStream)
            page.contents.filter = Name("FlateDecode")
        return pages

    def _add_fonts(self, *args: Any) -> FontObjects:
        fonts = sorted(self.fpdf.fonts.values(), key=lambda f: f.i)
        objects = self.embed_fonts(fonts)
        if objects is None:
            built: FontObjects = super()._add_fonts(*args)
            return built
        # What fpdf2's _add_fonts does last: these caches are process-wide and
        # would otherwise keep every document's glyph maps alive.
        SubsetMap.pick.cache_clear()
        SubsetMap.get_glyph.cache_clear()
        return objects


__all__ = [
    "FontObjects",
    "ReportOutputProducer",
    "append_operators",
    "cid_widths",
    "clone_font",
    "cmap_blocks",
]
