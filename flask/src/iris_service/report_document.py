"""The report's PDF document class (``ReportPDF``) and its embedded DejaVu Sans.

fpdf2 parses a TrueType file on every ``add_font`` and runs fontTools' subsetter
on every ``output``: fine for one document, far too slow for a report per job.
A ``ReportPDF`` does each expensive step once per process:

- each style's font is parsed once (``_prototype``); a document gets a cheap
  copy of it with its own glyph map;
- every document's glyph map starts with the same base repertoire (printable
  ASCII and the symbols the layout uses) in the same order, so the same
  characters get the same codes in every report, and content recorded on one
  document is valid in another (``report_recording``);
- the embedded subset (font program, widths, ToUnicode map, CIDToGIDMap) is
  built once per distinct glyph map and kept in a small LRU cache, so a report
  whose text stays within the repertoire reuses it, and one with unusual
  Unicode (a model card field in Greek, say) pays for one subsetting.

The fpdf2 internals this needs live in ``fpdf_internals``.
"""

from __future__ import annotations

import threading
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from functools import cache
from io import BytesIO
from typing import Any

from fontTools import subset as ftsubset  # type: ignore[import-untyped]
from fontTools import ttLib
from fpdf import FPDF
from fpdf.fonts import CoreFont, TTFFont
from fpdf.output import CIDSystemInfo, PDFFont
from fpdf.syntax import Name, PDFArray, PDFContentStream

from .fpdf_internals import (
    FontObjects,
    ReportOutputProducer,
    cid_widths,
    clone_font,
    cmap_blocks,
)
from .report_style import FONT_FILES

FAMILY = "dejavu"
# Pre-assigned in this order in every document: stable codes, one cached subset.
BASE_REPERTOIRE = "".join(chr(c) for c in range(0x21, 0x7F)) + "–—…×±≈·°µ≤≥→←⚠✓•●‘’“”σΣ"  # noqa: RUF001
_CACHE_SIZE = 32


class ReportPDF(FPDF):
    """An A4 FPDF with DejaVu Sans (regular, bold) as family ``dejavu``."""

    def __init__(self) -> None:
        super().__init__(format="A4")
        for style in FONT_FILES:
            self.fonts[FAMILY + style] = clone_font(_prototype(style), len(self.fonts) + 1)

    def output_bytes(self) -> bytes:
        return bytes(self.output(output_producer_class=_CachingOutputProducer))


@cache
def _prototype(style: str) -> TTFFont:
    """One style's font, parsed and given the base repertoire, once per process.

    Never used in a document itself: documents get clones (``clone_font``).
    """
    scratch = FPDF()
    scratch.add_font(FAMILY, style, FONT_FILES[style])
    font = scratch.fonts[FAMILY + style]
    assert isinstance(font, TTFFont)
    for char in BASE_REPERTOIRE:
        font.subset.pick(ord(char))
    # Glyph maps need only the tables parsed above (cmap, widths); the subset is
    # cut from a fresh parse in _build_embedded, so the file can be closed now.
    font.close()
    return font


def uses_base_repertoire_only(font: TTFFont) -> bool:
    """True while a document's font has picked no glyph beyond the base repertoire."""
    return len(font.subset) == len(_prototype(font.fontkey[len(FAMILY) :]).subset)


@dataclass(frozen=True)
class _Embedded:
    """The per-glyph-map parts of an embedded font, compressed once."""

    font_program: bytes  # zlib-compressed TrueType subset
    font_program_length: int
    widths: str
    to_unicode: bytes
    cid_to_gid: bytes  # zlib-compressed


_embedded_cache: OrderedDict[tuple[str, tuple[Any, ...]], _Embedded] = OrderedDict()
# Documents may be rendered on several threads (the web app's bench endpoint).
_embedded_lock = threading.Lock()


def _glyph_key(font: TTFFont) -> tuple[Any, ...]:
    return tuple(
        (glyph.glyph_id, glyph.unicode, code)
        for glyph, code in font.subset.items()
        if glyph is not None
    )


def _build_embedded(font: TTFFont) -> _Embedded:
    """What fpdf2's output computes for a TrueType font, done once per glyph map."""
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
        f"{cmap_blocks(bfchar, 'bfchar')}"
        "endcmap\nCMapName currentdict /CMap defineresource pop\nend\nend"
    ).encode("latin-1")
    return _Embedded(
        font_program=zlib.compress(program),
        font_program_length=len(program),
        widths=cid_widths(font),
        to_unicode=to_unicode,
        cid_to_gid=zlib.compress(bytes(cid_to_gid)),
    )


def _embedded(font: TTFFont) -> _Embedded:
    key = (font.fontkey, _glyph_key(font))
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


def _stream(content: bytes, *, deflated: bool) -> PDFContentStream:
    """A stream of bytes as given; ``deflated`` says they are zlib-compressed already."""
    stream = PDFContentStream(contents=content, compress=False)
    if deflated:
        stream.filter = Name("FlateDecode")
    return stream


class _CachingOutputProducer(ReportOutputProducer):
    """The report's producer: the TrueType font objects come from the cache."""

    def embed_fonts(self, fonts: list[CoreFont | TTFFont]) -> FontObjects | None:
        ours = [
            f
            for f in fonts
            if isinstance(f, TTFFont) and f.fontkey.startswith(FAMILY) and not f.color_font
        ]
        if len(ours) != len(fonts):
            return None
        font_objs: FontObjects = {}
        for font in ours:
            embedded = _embedded(font)
            fontname = f"MPDFAA+{font.name}"
            composite = PDFFont(subtype="Type0", base_font=fontname, encoding="Identity-H")
            self.add_object(composite, "fonts")
            font_objs[font.i] = composite
            cid_font = PDFFont(
                subtype="CIDFontType2",
                base_font=fontname,
                d_w=font.desc.missing_width,
                w=embedded.widths,
            )
            self.add_object(cid_font, "fonts")
            composite.descendant_fonts = PDFArray([cid_font])
            to_unicode = _stream(embedded.to_unicode, deflated=False)
            self.add_object(to_unicode, "fonts")
            composite.to_unicode = to_unicode
            system_info = CIDSystemInfo()
            self.add_object(system_info, "fonts")
            cid_font.c_i_d_system_info = system_info
            descriptor = font.desc
            descriptor.font_name = Name(fontname)
            self.add_object(descriptor, "fonts")
            cid_font.font_descriptor = descriptor
            cid_to_gid = _stream(embedded.cid_to_gid, deflated=True)
            self.add_object(cid_to_gid, "fonts")
            cid_font.c_i_d_to_g_i_d_map = cid_to_gid
            program = _stream(embedded.font_program, deflated=True)
            program.length1 = embedded.font_program_length  # type: ignore[attr-defined]
            self.add_object(program, "fonts")
            descriptor.font_file2 = program  # type: ignore[attr-defined]
        return font_objs
