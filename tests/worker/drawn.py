"""Pages of words drawn at known positions (DejaVu Sans), for the tests that check word boxes
against where each word really is: the engine's `Line.words` and the outputs built on them.

A word's drawn box is its ink's left and right edges and its line's full height (the font's
ascent plus descent), the extent a reader means by "where the word is" and what a line box
covers; ink alone would make short lowercase words look shorter than their line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")  # Debian fonts-dejavu-core
LINES = ("The quick brown fox jumps", "over 42 lazy dogs, twice.", "Invoice total: 1,250.00 EUR")
Box = tuple[float, float, float, float]  # left, top, right, bottom in pixels


@dataclass(frozen=True)
class DrawnPage:
    """A BGR page, its lines top to bottom and every word with its drawn box."""

    image: np.ndarray
    lines: tuple[str, ...]
    words: tuple[tuple[str, Box], ...]


def font(size: int) -> ImageFont.FreeTypeFont:
    if not FONT.is_file():
        pytest.fail(f"{FONT} is missing: `make test` installs fonts-dejavu-core (scripts/ensure-tools.sh)")
    return ImageFont.truetype(str(FONT), size)


def draw_page(lines: tuple[str, ...] = LINES, size: tuple[int, int] = (1400, 500), px: int = 40,
              left: int = 80, top: int = 60, pitch: int = 140) -> DrawnPage:
    """White page, one line of `px`-pixel words every `pitch` pixels from (`left`, `top`)."""
    face = font(px)
    ascent, descent = face.getmetrics()
    image = Image.new("L", size, 255)
    draw = ImageDraw.Draw(image)
    words = []
    for i, line in enumerate(lines):
        x, y = float(left), top + i * pitch
        for word in line.split():
            ink = draw.textbbox((x, y), word, font=face)
            draw.text((x, y), word, fill=0, font=face)
            words.append((word, (float(ink[0]), float(y), float(ink[2]), float(y + ascent + descent))))
            x += face.getlength(word + " ")
    grey = np.asarray(image)
    return DrawnPage(np.repeat(grey[:, :, None], 3, axis=2), tuple(lines), tuple(words))


_TURNS = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}


def turned(page: DrawnPage, angle: int) -> DrawnPage:
    """The page turned `angle` degrees clockwise, its word boxes turned with it."""
    if angle == 0:
        return page
    height, width = page.image.shape[:2]
    words = tuple((text, _turn_box(box, angle, width, height)) for text, box in page.words)
    return DrawnPage(cv2.rotate(page.image, _TURNS[angle]), page.lines, words)


def _turn_box(box: Box, angle: int, width: int, height: int) -> Box:
    x0, y0, x1, y1 = box
    if angle == 90:
        return height - y1, x0, height - y0, x1
    if angle == 180:
        return width - x1, height - y1, width - x0, height - y0
    return y0, width - x1, y1, width - x0


def bounds(points: list[list[float]] | np.ndarray) -> Box:
    """The axis-aligned box around a quadrilateral's points."""
    array = np.asarray(points, np.float64)
    return (float(array[:, 0].min()), float(array[:, 1].min()), float(array[:, 0].max()), float(array[:, 1].max()))


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two axis-aligned boxes."""
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0
