"""The PNG bar chart of a job's class probabilities (GET /flask/result/<task_id>.png).

Served by the web app, so it imports Pillow and the report's colours only, never
the PDF stack (fpdf2, fontTools): a unit test keeps it that way.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from functools import cache

from PIL import Image, ImageDraw, ImageFont

from .report_style import FONT_FILES, INK, MUTED, TRACK, WHITE, species_colour

PNG_SIZE = (640, 220)


@cache
def _font(size: int, bold: bool) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(FONT_FILES["B" if bold else ""]), size)


def probability_png(
    probabilities: Mapping[str, float], label: str, model_version: str | None = None
) -> bytes:
    """The class probabilities as a small PNG bar chart, same colours as the PDF,
    captioned with the version of the model that predicted them."""
    w = PNG_SIZE[0]
    image = Image.new("RGB", PNG_SIZE, WHITE)
    draw = ImageDraw.Draw(image)
    title = _font(18, True)
    regular, bold = _font(15, False), _font(15, True)
    draw.text((20, 14), f"Predicted: Iris {label}", font=title, fill=INK)
    if model_version:
        draw.text(
            (w - 20, 18), f"model {model_version}", font=_font(12, False), fill=MUTED, anchor="ra"
        )
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
    # zlib level 1: drawn per request, so speed matters more than the bytes the
    # default level would save.
    image.save(out, format="PNG", compress_level=1)
    return out.getvalue()
