"""Reading what the service produced: PDF text and pixels of a given colour."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image
from pypdf import PdfReader


def pdf_text(content: bytes) -> str:
    reader = PdfReader(io.BytesIO(content))
    return "\n".join(page.extract_text() for page in reader.pages)


def count_near(image: Image.Image, colour: tuple[int, int, int], tolerance: int = 12) -> int:
    """Pixels within tolerance of a colour on every channel."""
    pixels = np.asarray(image, dtype=np.int16)
    return int(np.all(np.abs(pixels - np.array(colour)) <= tolerance, axis=-1).sum())
