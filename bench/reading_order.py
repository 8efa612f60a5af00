"""Reading order, measured: PaddleOCR's rows against docmill's columns-and-blocks XY-cut, on
the shared receipts (labels in their annotated reading order), the shared PaddleOCR photos
transcribed in ground_truth.json, the drawn vertical Chinese and Japanese pages
(demo/vertical.py) and the demo pages (truth in reading order), graded by `docmill report`'s
sequence score.

    python -m bench.reading_order [--models SET]

The sequence score is 1 - edit distance / length over the page text in reading order
(demo/scoring.py), so it drops when lines come out of order; receipts are upper-cased on both
sides, as their labels are. Prints one JSON line per dataset and order.

With `--skew 2,4,8`, each page is also read turned that many degrees (counter-clockwise, on
a canvas grown to hold it, white around), as a page scanned askew is: the default order only,
with page orientation off, as the skew is no turn the page model knows. With `--turns
90,180,270`, each page is also read turned that many degrees clockwise with page orientation
on: a sideways or upside-down page should read in its own order.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys

import cv2
import numpy as np

from bench.orientation import TURNS
from bench.pages import (
    demo_pages,
    load_engine,
    photo_pages,
    sroie_pages,
    vertical_pages,
)
from bench.results import save_result
from docmill.settings import DEFAULT_MODEL_SET


def datasets() -> dict[str, tuple[list, list[list[str]], bool]]:
    """dataset -> (images, truths, upper-case both sides: the receipts' labels are)."""
    out = {}
    if receipts := sroie_pages():
        out["sroie"] = (*receipts, True)
    if photos := photo_pages():
        out["photos"] = (*photos, False)
    if vertical := vertical_pages():
        out["vertical"] = (*vertical, False)
    return {**out, "demo": (*demo_pages(), False)}


def askew(image: np.ndarray, degrees: float) -> np.ndarray:
    """The page turned `degrees` counter-clockwise about its centre, on a canvas grown to hold
    all of it, white where the page was not."""
    height, width = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)
    cos, sin = abs(matrix[0, 0]), abs(matrix[0, 1])
    grown = (int(height * sin + width * cos), int(height * cos + width * sin))
    matrix[:, 2] += (grown[0] - width) / 2, (grown[1] - height) / 2
    return cv2.warpAffine(image, matrix, grown, borderValue=(255, 255, 255))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=DEFAULT_MODEL_SET)
    ap.add_argument("--skew", default="", help="comma-separated degrees to also read each page turned by")
    ap.add_argument("--turns", default="", help="comma-separated quarter turns (90,180,270) to also read each "
                                                 "page turned by, page orientation on")
    args = ap.parse_args()
    try:
        skews = [float(d) for d in args.skew.split(",") if d.strip()]
    except ValueError:
        raise SystemExit(f"--skew {args.skew!r}: give degrees separated by commas, e.g. --skew 2,4,8") from None
    turns = [t.strip() for t in args.turns.split(",") if t.strip()]
    if any(t not in {str(turn) for turn in TURNS if turn} for t in turns):
        raise SystemExit(f"--turns {args.turns!r}: give quarter turns separated by commas, e.g. --turns 90,180,270")
    from demo.scoring import compare_lines

    engine = load_engine(args.models)
    rows = []
    runs = [(order, 0.0, 0, {"reading_order": order}) for order in ("rows", "columns")]
    runs += [("columns", skew, 0, {"use_doc_orientation": False}) for skew in skews]
    runs += [("columns", 0.0, int(turn), {"use_doc_orientation": True}) for turn in turns]
    for name, (images, truths, upper) in datasets().items():
        for order, skew, turn, options in runs:
            scores, exact = [], 0
            for image, truth in zip(images, truths):
                image = askew(image, skew) if skew else image
                image = cv2.rotate(image, TURNS[turn]) if turn else image
                page = engine.run([image], engine.options.merged(options))[0]
                found = [line.text for line in page.lines]
                if upper:
                    truth, found = [t.upper() for t in truth], [t.upper() for t in found]
                check = compare_lines(truth, found)
                scores.append(check["sequence_score"])
                exact += check["exact_lines"]
            rows.append({"dataset": name, "reading_order": order, "skew_degrees": skew, "turn": turn,
                         "pages": len(images),
                         "mean_sequence_score": round(statistics.mean(scores), 4),
                         "exact_lines_in_order": exact, "expected_lines": sum(len(t) for t in truths),
                         "per_page": scores})
            print(json.dumps({k: v for k, v in rows[-1].items() if k != "per_page"}), flush=True)
    save_result("reading_order", {"schema": "docmill.bench.reading_order/v1", "models": args.models, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
