"""Embedded DejaVu Sans for the reports, at a cost of microseconds per report.

fpdf2 parses a TrueType file on every ``add_font`` (about 70 ms for DejaVu Sans)
and runs fontTools' subsetter on every ``output`` (over 100 ms): fine for one
document, far too slow for a report per job. This module does each expensive
step once per process:

- each style's font is parsed once; a document gets a cheap copy of it with a
  fresh glyph map (``ReportPDF.__init__``);
- every document's glyph map starts with the same base repertoire (printable
  ASCII and the symbols the layout uses) in the same order, so the same
  characters get the same codes in every report;
- the embedded subset (font program, widths, ToUnicode map, CIDToGIDMap) is
  built once per distinct glyph map and kept in a small LRU cache, so a report
  whose text stays within the repertoire reuses it, and one with unusual
  Unicode (a model card field in Greek, say) pays for one subsetting.

It relies on fpdf2 internals (``TTFFont``, ``SubsetMap``, ``OutputProducer``);
fpdf2 is pinned exactly and the report tests check the result text and pixels.
"""

from __future__ import annotations

import copy
import threading
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from functools import cache
from io import BytesIO
from pathlib import Path
from typing import Any

from fontTools import subset as ftsubset  # type: ignore[import-untyped]
from fontTools import ttLib
from fpdf import FPDF
from fpdf.fonts import SubsetMap, TTFFont
from fpdf.output import (
    CIDSystemInfo,
    OutputProducer,
    PDFFont,
    _build_cmap_blocks,
    _tt_font_widths,
)
from fpdf.syntax import Name, PDFArray, PDFContentStream

FONT_DIR = Path(__file__).resolve().parent / "fonts"
FAMILY = "dejavu"
FONT_FILES = {"": FONT_DIR / "DejaVuSans.ttf", "B": FONT_DIR / "DejaVuSans-Bold.ttf"}
# Pre-assigned in this order in every document: stable codes, one cached subset.
BASE_REPERTOIRE = "".join(chr(c) for c in range(0x21, 0x7F)) + "–—…×±≈·°µ≤≥→←⚠✓•●‘’“”σΣ"  # noqa: RUF001
_CACHE_SIZE = 32


@dataclass(frozen=True)
class _Embedded:
    """The per-glyph-map parts of an embedded font, compressed once."""

    font_program: bytes  # zlib-compressed TrueType subset
    font_program_length: int
    widths: str
    to_unicode: bytes
    cid_to_gid: bytes  # zlib-compressed


@dataclass(frozen=True)
class _Prototype:
    font: TTFFont
    subset_entries: dict[Any, int]
    next_code: int
    reserved: list[int]


@cache
def _prototype(style: str) -> _Prototype:
    """Parse one style's font file and assign the base repertoire, once per process."""
    scratch = FPDF()
    scratch.add_font(FAMILY, style, FONT_FILES[style])
    font = scratch.fonts[FAMILY + style]
    assert isinstance(font, TTFFont)
    for char in BASE_REPERTOIRE:
        font.subset.pick(ord(char))
    # Glyph maps need only the tables parsed above (cmap, widths); the subset is
    # cut from a fresh parse in _build_embedded, so the file can be closed now.
    font.close()
    subset = font.subset
    return _Prototype(
        font=font,
        subset_entries=dict(subset._char_id_per_glyph),
        next_code=subset._next,
        reserved=list(subset._reserved),
    )


def _fresh_font(style: str, index: int) -> TTFFont:
    """A per-document copy sharing the parsed tables, with its own glyph map."""
    proto = _prototype(style)
    font = copy.copy(proto.font)
    font.i = index
    font.desc = copy.copy(proto.font.desc)
    font.missing_glyphs = []
    font.biggest_size_pt = 0
    subset = SubsetMap.__new__(SubsetMap)
    subset.font = font
    subset._next = proto.next_code
    subset._reserved = list(proto.reserved)
    subset._char_id_per_glyph = dict(proto.subset_entries)
    font.subset = subset
    return font


def uses_base_repertoire_only(font: TTFFont) -> bool:
    """True while a document's font has picked no glyph beyond the base repertoire."""
    proto = _prototype(font.fontkey[len(FAMILY) :])
    return len(font.subset._char_id_per_glyph) == len(proto.subset_entries)


class ReportPDF(FPDF):
    """An A4 FPDF with DejaVu Sans (regular, bold) as family ``dejavu``."""

    def __init__(self) -> None:
        super().__init__(format="A4")
        for style in FONT_FILES:
            self.fonts[FAMILY + style] = _fresh_font(style, len(self.fonts) + 1)

    def output_bytes(self) -> bytes:
        return bytes(self.output(output_producer_class=_CachingOutputProducer))


_embedded_cache: OrderedDict[tuple[str, tuple[Any, ...]], _Embedded] = OrderedDict()
_embedded_lock = threading.Lock()


def _glyph_key(font: TTFFont) -> tuple[Any, ...]:
    return tuple(
        (glyph.glyph_id, glyph.unicode, code)
        for glyph, code in font.subset.items()
        if glyph is not None
    )


def _build_embedded(font: TTFFont) -> _Embedded:
    """What fpdf2's OutputProducer._add_fonts computes for a TrueType font, once."""
    style = font.fontkey[len(FAMILY) :]
    # A fresh parse: the subsetter rewrites the font it is given in place.
    with ttLib.TTFont(FONT_FILES[style], recalcTimestamp=False, lazy=True) as ttfont:
        options = ftsubset.Options(notdef_outline=True, recommended_glyphs=True)
        # Hinting instructions are half the bytes and PDF viewers do not need them.
        options.hinting = False
        options.drop_tables += ["FFTM", "GDEF", "GPOS", "GSUB", "MATH", "hdmx", "meta", "kern"]
        subsetter = ftsubset.Subsetter(options)
        subsetter.populate(glyphs=font.subset.get_all_glyph_names())
        subsetter.subset(ttfont)
        out = BytesIO()
        ttfont.save(out)
        program = out.getvalue()
        glyph_ids = {
            code: ttfont.getGlyphID(glyph.glyph_name)
            for glyph, code in font.subset.items()
            if glyph is not None
        }

    cid_to_gid = bytearray(256 * 256 * 2)
    bfchar: list[str] = []
    for glyph, code in font.subset.items():
        if glyph is None:
            continue
        gid = glyph_ids[code]
        cid_to_gid[code * 2] = gid >> 8
        cid_to_gid[code * 2 + 1] = gid & 0xFF
        if isinstance(glyph.unicode, tuple) and glyph.unicode:
            target = "".join(chr(u).encode("utf-16-be").hex().upper() for u in glyph.unicode)
            bfchar.append(f"<{code:04X}> <{target}>\n")
    to_unicode = (
        "/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n"
        "/CIDSystemInfo\n<</Registry (Adobe)\n/Ordering (UCS)\n/Supplement 0\n>> def\n"
        "/CMapName /Adobe-Identity-UCS def\n/CMapType 2 def\n"
        "1 begincodespacerange\n<0000> <FFFF>\nendcodespacerange\n"
        f"{_build_cmap_blocks(bfchar, 'bfchar')}"
        "endcmap\nCMapName currentdict /CMap defineresource pop\nend\nend"
    ).encode("latin-1")
    return _Embedded(
        font_program=zlib.compress(program),
        font_program_length=len(program),
        widths=_tt_font_widths(font),
        to_unicode=to_unicode,
        cid_to_gid=zlib.compress(bytes(cid_to_gid)),
    )


def _embedded(font: TTFFont) -> _Embedded:
    key = (font.fontkey, _glyph_key(font))
    # A lock, for the web app's threads (the worker renders one report at a time).
    with _embedded_lock:
        found = _embedded_cache.get(key)
        if found is None:
            found = _build_embedded(font)
            _embedded_cache[key] = found
            if len(_embedded_cache) > _CACHE_SIZE:
                _embedded_cache.popitem(last=False)
        else:
            _embedded_cache.move_to_end(key)
        return found


def _stream(content: bytes, *, compressed: bool) -> PDFContentStream:
    stream = PDFContentStream(contents=content, compress=False)
    if compressed:
        stream.filter = Name("FlateDecode")
    return stream


class _CachingOutputProducer(OutputProducer):
    """fpdf2's producer, with the TrueType font objects built from the cache."""

    def _add_pages(self, *args: Any, **kwargs: Any) -> Any:
        # Page streams at zlib level 1: twice as fast as the default level (0.5 ms
        # a report) for about 1.5 KB more. fpdf2 reads the level from the class.
        previous = PDFContentStream._COMPRESSION_LEVEL
        PDFContentStream._COMPRESSION_LEVEL = 1
        try:
            return super()._add_pages(*args, **kwargs)
        finally:
            PDFContentStream._COMPRESSION_LEVEL = previous

    def _add_fonts(self, *args: Any) -> dict[int, Any]:
        fonts = [
            f
            for f in sorted(self.fpdf.fonts.values(), key=lambda f: f.i)
            if isinstance(f, TTFFont) and f.fontkey.startswith(FAMILY) and not f.color_font
        ]
        if len(fonts) != len(self.fpdf.fonts):
            return super()._add_fonts(*args)
        font_objs: dict[int, Any] = {}
        for font in fonts:
            embedded = _embedded(font)
            fontname = f"MPDFAA+{font.name}"
            composite = PDFFont(subtype="Type0", base_font=fontname, encoding="Identity-H")
            self._add_pdf_obj(composite, "fonts")
            font_objs[font.i] = composite
            cid_font = PDFFont(
                subtype="CIDFontType2",
                base_font=fontname,
                d_w=font.desc.missing_width,
                w=embedded.widths,
            )
            self._add_pdf_obj(cid_font, "fonts")
            composite.descendant_fonts = PDFArray([cid_font])
            to_unicode = _stream(embedded.to_unicode, compressed=False)
            self._add_pdf_obj(to_unicode, "fonts")
            composite.to_unicode = to_unicode
            system_info = CIDSystemInfo()
            self._add_pdf_obj(system_info, "fonts")
            cid_font.c_i_d_system_info = system_info
            descriptor = font.desc
            descriptor.font_name = Name(fontname)
            self._add_pdf_obj(descriptor, "fonts")
            cid_font.font_descriptor = descriptor
            cid_to_gid = _stream(embedded.cid_to_gid, compressed=True)
            self._add_pdf_obj(cid_to_gid, "fonts")
            cid_font.c_i_d_to_g_i_d_map = cid_to_gid
            program = _stream(embedded.font_program, compressed=True)
            program.length1 = embedded.font_program_length  # type: ignore[attr-defined]
            self._add_pdf_obj(program, "fonts")
            descriptor.font_file2 = program  # type: ignore[attr-defined]
        # fpdf2 clears these process-wide caches after each document too.
        SubsetMap.pick.cache_clear()
        SubsetMap.get_glyph.cache_clear()
        return font_objs
