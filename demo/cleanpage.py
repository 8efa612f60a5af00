"""A clean printed A4 page at 300 dpi: 50 lines of DejaVu Sans at 42 px on 2480 x 3508, the
page a new user tried that the angle classifier damaged (3 lines turned upside down, 4 lost).
Deterministic text: sentences of plain words, numbers and punctuation, so each line is an
exact-match target."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")  # Debian fonts-dejavu-core
SIZE = (2480, 3508)
FONT_PX, LINES, LEFT, TOP, PITCH = 42, 50, 200, 220, 62
WORDS = ("the", "order", "ships", "on", "Monday", "with", "invoice", "total", "paid", "account", "north",
         "office", "paper", "parcel", "weight", "school", "report", "meeting", "budget", "April", "price",
         "list", "staff", "warehouse", "new", "shops", "energy", "costs", "sales", "growth", "range")


def lines(count: int = LINES) -> list[str]:
    """`count` distinct lines of 6 to 9 words with a number, the same every run."""
    out = []
    for i in range(count):
        words = [WORDS[(i * 7 + k * 5) % len(WORDS)] for k in range(6 + i % 4)]
        words.insert(2 + i % 3, f"{(i * 37) % 900 + 10}")
        out.append(" ".join(words).capitalize() + ("." if i % 2 else ","))
    return out


def render(count: int = LINES) -> tuple[np.ndarray, list[str]]:
    """The page as a BGR array, with its lines top to bottom."""
    text = lines(count)
    page = Image.new("L", SIZE, 255)
    draw = ImageDraw.Draw(page)
    font = ImageFont.truetype(str(FONT), FONT_PX)
    for i, line in enumerate(text):
        draw.text((LEFT, TOP + i * PITCH), line, fill=0, font=font)
    grey = np.asarray(page)
    return np.repeat(grey[:, :, None], 3, axis=2), text
