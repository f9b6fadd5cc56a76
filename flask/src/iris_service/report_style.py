"""The report's look, shared by the PDF and the PNG chart: colours and typeface files.

It imports nothing but the standard library, so the web app's PNG chart
(``probability_png``) can use the report's colours without loading fpdf2.
"""

from __future__ import annotations

from pathlib import Path

RGB = tuple[int, int, int]

FONT_DIR = Path(__file__).resolve().parent / "fonts"
# DejaVu Sans: one typeface for Latin, Greek, Cyrillic and the symbols the layout uses.
FONT_FILES = {"": FONT_DIR / "DejaVuSans.ttf", "B": FONT_DIR / "DejaVuSans-Bold.ttf"}

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
NAVY: RGB = (31, 58, 96)
BANNER_INK: RGB = (200, 212, 230)
WARN_FILL: RGB = (255, 243, 205)
WARN_EDGE: RGB = (214, 158, 0)
WARN_INK: RGB = (102, 77, 3)


def species_colour(name: str, index: int = 0) -> RGB:
    """A species' colour; a class the table does not know gets one by its position."""
    return SPECIES_COLOURS.get(name, FALLBACK_COLOURS[index % len(FALLBACK_COLOURS)])


def tint(colour: RGB, amount: float) -> RGB:
    """The colour mixed with white: amount 0 is white, 1 the colour itself."""
    r, g, b = (round(255 - (255 - c) * amount) for c in colour)
    return (r, g, b)
