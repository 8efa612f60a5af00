"""Show-through, measured: the demo pages printed over another page's text seen from behind
(mirrored, blurred, at 10, 18 and 30% of the ink's darkness, as thin paper shows it), and
that reverse side alone on a blank front, read with `drop_show_through` on and off.

    python -m bench.show_through [--models SET]

Per strength it prints the front pages' word F1 against their truth and the lines read on
the blank fronts, each with the option on and off. Then the shared images (receipts and
PaddleOCR pages), read both ways: every line the option dropped there is a real line lost,
so the summary names them (there should be none), with the seconds each way.
"""

from __future__ import annotations

import json

import cv2
import numpy as np

from bench.orientation import word_f1
from bench.pages import demo_pages, on_off_main, read_texts

STRENGTHS = (0.10, 0.18, 0.30)


def with_show_through(front: np.ndarray, back: np.ndarray, strength: float, seed: int = 0) -> np.ndarray:
    """`front` (BGR) with `back`'s ink showing through the paper: mirrored, blurred by the
    paper, darkening the page by `strength` of its own darkness; then a scanner's noise and
    JPEG coding at quality 85."""
    height, width = front.shape[:2]
    behind = cv2.GaussianBlur(cv2.flip(cv2.resize(back, (width, height)), 1), (0, 0), 2.0).astype(np.float32)
    page = front.astype(np.float32) * (1 - strength * (255 - behind) / 255)
    page += np.random.default_rng(seed).normal(0, 3, page.shape)
    coded = cv2.imencode(".jpg", np.clip(page, 0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 85])[1]
    return cv2.imdecode(coded, cv2.IMREAD_COLOR)


def strength_rows(engine) -> list[dict]:
    """Each demo page over the next one's text, and that text alone, at each strength."""
    fronts, truths = demo_pages(upright_only=True)
    backs = fronts[1:] + fronts[:1]
    blank = np.full_like(fronts[0], 255)
    rows = []
    for strength in STRENGTHS:
        mixed = [with_show_through(f, b, strength, seed=i) for i, (f, b) in enumerate(zip(fronts, backs))]
        alone = [with_show_through(blank, b, strength, seed=i) for i, b in enumerate(backs)]
        row = {"strength": strength}
        for drop in (True, False):
            found, _ = read_texts(engine, mixed, {"drop_show_through": drop})
            behind, _ = read_texts(engine, alone, {"drop_show_through": drop})
            key = "on" if drop else "off"
            row[f"front_word_f1_{key}"] = round(word_f1(found, truths), 4)
            row[f"lines_on_blank_fronts_{key}"] = sum(len(lines) for lines in behind)
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def main() -> int:
    return on_off_main("show_through", __doc__.splitlines()[0], strength_rows, {"drop_show_through": True}, {"drop_show_through": False})


if __name__ == "__main__":
    raise SystemExit(main())
