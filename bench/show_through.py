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

import argparse
import json
import time

import cv2
import numpy as np

from bench.orientation import upright_images, word_f1
from bench.pages import demo_pages, load_engine, sroie_pages
from bench.results import save_result
from docmill.settings import DEFAULT_MODEL_SET

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


def _read(engine, images: list[np.ndarray], drop: bool) -> tuple[list[list[str]], float]:
    options = engine.options.merged({"drop_show_through": drop})
    start = time.perf_counter()
    texts = [[line.text for line in engine.run([image], options)[0].lines] for image in images]
    return texts, time.perf_counter() - start


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
            found, _ = _read(engine, mixed, drop)
            behind, _ = _read(engine, alone, drop)
            key = "on" if drop else "off"
            row[f"front_word_f1_{key}"] = round(word_f1(found, truths), 4)
            row[f"lines_on_blank_fronts_{key}"] = sum(len(lines) for lines in behind)
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def real_lines_check(engine) -> dict:
    """The shared images read with the option on and off: the lines it dropped, by image."""
    images = list(upright_images().items())
    if receipts := sroie_pages():
        images += [(f"sroie/{i}", image) for i, image in enumerate(receipts[0])]
    named = [name for name, _ in images]
    on, seconds_on = _read(engine, [image for _, image in images], True)
    off, seconds_off = _read(engine, [image for _, image in images], False)
    dropped = {name: [line for line in b if line not in a] for name, a, b in zip(named, on, off) if a != b}
    return {"images": len(images), "lines_off": sum(map(len, off)), "lines_on": sum(map(len, on)),
            "dropped": dropped, "seconds_on_off": [round(seconds_on, 2), round(seconds_off, 2)]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=DEFAULT_MODEL_SET)
    args = ap.parse_args()
    engine = load_engine(args.models)
    rows = strength_rows(engine)
    summary = real_lines_check(engine)
    print("summary:", json.dumps(summary, indent=1))
    save_result("show_through", {"schema": "docmill.bench.show_through/v1", "models": args.models,
                                 "rows": rows, "real_lines": summary})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
