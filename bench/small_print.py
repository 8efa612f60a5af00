"""Small print, measured: drawn pages of dense small text at 300 dpi (newspaper-like columns
of 7 and 8 pt on A4 and A3, and a strip of 6 pt ledger lines), read with the finer second
detection on (`det_small_text_side_len` 2560) and off (0), scored by lines found exactly
and word F1; then the shared images both ways, where no page should change.

    python -m bench.small_print [--models SET]
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from bench.orientation import word_f1
from bench.pages import on_off_main, read_texts

FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")  # fonts-dejavu-core (scripts/ensure-tools.sh)
WORDS = ["the", "council", "met", "on", "monday", "to", "discuss", "harbour", "repairs", "budget", "school",
         "roads", "market", "winter", "festival", "report"]
# (width, height, points at 300 dpi, columns): A3 portrait and landscape, A4
PAGES = {"a3 8pt": (3508, 4960, 8, 3), "a3 landscape 8pt": (4960, 3508, 8, 4), "a4 7pt": (2480, 3508, 7, 3)}


def columns_page(width: int, height: int, points: float, columns: int, seed: int = 3) -> tuple[np.ndarray, list[str]]:
    """A white page of `columns` columns of `points`-point text at 300 dpi, lines of random
    words each as long as its column allows; BGR, and its lines in reading order."""
    rng = random.Random(seed)
    px = round(points / 72 * 300)
    image = Image.new("L", (width, height), 255)
    draw, face = ImageDraw.Draw(image), ImageFont.truetype(str(FONT), px)
    column_width, lines = (width - 200) // columns, []
    for column in range(columns):
        for y in range(100, height - 150, int(px * 1.4)):
            line = " ".join(rng.choice(WORDS) for _ in range(40))
            while draw.textlength(line, font=face) > column_width - 60:
                line = line.rsplit(" ", 1)[0]
            draw.text((100 + column * column_width, y), line, font=face, fill=0)
            lines.append(line)
    return cv2.cvtColor(np.asarray(image), cv2.COLOR_GRAY2BGR), lines


def ledger_strip(px: int = 24) -> tuple[np.ndarray, list[str]]:
    """A 4960 x 1400 strip (an A3 page's width at 300 dpi) of 30 short lines in three
    columns, each `px` pixels high (24: 6 pt): the detector misses whole rows of them at
    1280 px."""
    image = Image.new("L", (4960, 1400), 255)
    draw, face = ImageDraw.Draw(image), ImageFont.truetype(str(FONT), px)
    lines = [f"Line {k} of the small print in the ledger {k * 7}" for k in range(30)]
    for k, line in enumerate(lines):
        draw.text((100 + (k % 3) * 1600, 100 + (k // 3) * int(px * 1.6) * 3), line, font=face, fill=0)
    return cv2.cvtColor(np.asarray(image), cv2.COLOR_GRAY2BGR), lines


def drawn_rows(engine) -> list[dict]:
    pages = {name: columns_page(*spec) for name, spec in PAGES.items()}
    pages["ledger strip 6pt"] = ledger_strip()
    rows = []
    for name, (image, truth) in pages.items():
        row: dict = {"page": name, "size": list(image.shape[1::-1]), "lines": len(truth)}
        for side, key in ((2560, "on"), (0, "off")):
            (found,), seconds = read_texts(engine, [image], {"det_small_text_side_len": side})
            row[f"exact_lines_{key}"] = len(set(found) & set(truth))
            row[f"word_f1_{key}"] = round(word_f1([found], [truth]), 4)
            row[f"seconds_{key}"] = round(seconds, 2)
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def main() -> int:
    return on_off_main("small_print", __doc__.splitlines()[0], drawn_rows, {"det_small_text_side_len": 2560}, {"det_small_text_side_len": 0})


if __name__ == "__main__":
    raise SystemExit(main())
