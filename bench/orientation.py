"""Page orientation, measured: the shared receipts and the demo pages turned 0, 90, 180 and
270 degrees, read with `use_doc_orientation` on (and off, for the cost and the upright
check), scored by word F1 against their upright truth.

    python -m bench.orientation [--models SET]

Word F1 compares token multisets (../shared/bench/score.py's definition), so it is blind to
where the boxes are and needs no labels turned with the page. Prints one JSON line per
(dataset, angle, setting) and a summary: each turned dataset's word F1 as a share of its
upright F1 with orientation on, the pages found at the wrong angle, and the orientation
model's cost per page.

The shared PaddleOCR images (photos, scans and word crops, all upright, unlabelled) are read
once with orientation on and once off: the summary's `paddleocr upright` counts those
reported at an angle other than 0 and those whose text turning orientation on changed.
`paddleocr turned` reads those of them that read upright then turns them 90, 180 and 270
degrees, and names the turns reported wrong.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter

import cv2
import numpy as np

from bench.pages import Pages, demo_pages, load_engine, sroie_pages
from bench.paths import SHARED
from bench.results import save_result
from docmill.settings import DEFAULT_MODEL_SET
from worker.engine import orientation

TURNS = {0: None, 90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}


def word_f1(pages: list[list[str]], truths: list[list[str]]) -> float:
    """Micro-averaged F1 of upper-cased whitespace tokens, per page multisets (score.py's)."""
    matches = predicted = expected = 0
    for found, truth in zip(pages, truths):
        a = Counter(" ".join(found).upper().split())
        b = Counter(" ".join(truth).upper().split())
        matches += sum((a & b).values())
        predicted += sum(a.values())
        expected += sum(b.values())
    precision, recall = matches / max(predicted, 1), matches / max(expected, 1)
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def datasets() -> dict[str, Pages]:
    found = {"sroie": sroie_pages(), "demo": demo_pages(upright_only=True)}
    return {name: pages for name, pages in found.items() if pages}


def upright_images() -> dict[str, np.ndarray]:
    """The shared PaddleOCR images by their path under its doc folder (empty without them)."""
    root = SHARED / "data" / "paddleocr" / "doc"
    files = sorted(path for path in root.rglob("*") if path.suffix.lower() in {".jpg", ".jpeg", ".png"})
    return {str(path.relative_to(root)): cv2.imread(str(path)) for path in files}


def upright_check(engine, images: dict[str, np.ndarray]) -> dict:
    """Of upright images, those reported turned with orientation on, and those whose text it
    changed (named, so a change can be looked at)."""
    on, off = (engine.options.merged({"use_doc_orientation": flag}) for flag in (True, False))
    turned, changed = {}, []
    for name, image in images.items():
        with_ori, without = engine.run([image], on)[0], engine.run([image], off)[0]
        if with_ori.orientation.angle != 0:
            turned[name] = with_ori.orientation.angle
        if [line.text for line in with_ori.lines] != [line.text for line in without.lines]:
            changed.append(name)
    return {"images": len(images), "reported_turned": turned, "text_changed": changed}


def turned_check(engine, images: dict[str, np.ndarray]) -> dict:
    """The upright images that read upright with lines, and are big enough for the page model
    to judge, turned 90, 180 and 270 degrees: those reported at another angle than their
    turn, named with what was reported. Most are photos of a few lines, where the page
    model is least sure."""
    on = engine.options.merged({"use_doc_orientation": True})
    judged = {name: image for name, image in images.items() if orientation.judges(*image.shape[:2])}
    upright = {name: image for name, image in judged.items()
               if (page := engine.run([image], on)[0]).orientation.angle == 0 and page.lines}
    wrong = {}
    for angle in (90, 180, 270):
        for name, image in upright.items():
            found = engine.run([cv2.rotate(image, TURNS[angle])], on)[0].orientation.angle
            if found != angle:
                wrong[f"{name}@{angle}"] = found
    return {"images": len(upright), "turned_pages": 3 * len(upright), "wrong_angle": wrong}


def measure(engine, images: list[np.ndarray], truths: list[list[str]], angle: int, on: bool) -> dict:
    turned = [img if TURNS[angle] is None else cv2.rotate(img, TURNS[angle]) for img in images]
    options = engine.options.merged({"use_doc_orientation": on})
    start = time.perf_counter()
    pages = [engine.run([img], options)[0] for img in turned]
    seconds = time.perf_counter() - start
    found = [[line.text for line in page.lines] for page in pages]
    wrong = sum(1 for p in pages if p.orientation and p.orientation.angle != angle) if on else None
    return {"angle": angle, "doc_orientation": on, "word_f1": round(word_f1(found, truths), 4),
            "seconds": round(seconds, 2), "pages": len(images), "wrong_angle": wrong,
            "ori_ms_per_page": round(sum(p.timings_ms["ori"] for p in pages) / len(pages), 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=DEFAULT_MODEL_SET)
    args = ap.parse_args()
    engine = load_engine(args.models)
    rows, summary = [], {}
    for name, (images, truths) in datasets().items():
        upright_off = measure(engine, images, truths, 0, False)
        rows.append({"dataset": name, **upright_off})
        print(json.dumps(rows[-1]), flush=True)
        upright_on = None
        for angle in TURNS:
            row = {"dataset": name, **measure(engine, images, truths, angle, True)}
            off = upright_off if angle == 0 else {"dataset": name, **measure(engine, images, truths, angle, False)}
            rows += [row] if angle == 0 else [row, off]
            print(json.dumps(row), flush=True)
            upright_on = upright_on or row
            summary[f"{name}@{angle}"] = {"share_of_upright_f1": round(row["word_f1"] / upright_on["word_f1"], 3),
                                          "share_without_orientation": round(off["word_f1"] / upright_on["word_f1"], 3),
                                          "wrong_angle": row["wrong_angle"]}
        summary[f"{name} cost"] = {"upright_f1_off": upright_off["word_f1"], "upright_f1_on": upright_on["word_f1"],
                                   "ori_ms_per_page": upright_on["ori_ms_per_page"],
                                   "seconds_off_on": [upright_off["seconds"], upright_on["seconds"]]}
    if images := upright_images():
        summary["paddleocr upright"] = upright_check(engine, images)
        summary["paddleocr turned"] = turned_check(engine, images)
    print("summary:", json.dumps(summary, indent=1))
    save_result("orientation", {"schema": "docmill.bench.orientation/v1", "models": args.models,
                                "rows": rows, "summary": summary})
    return 0


if __name__ == "__main__":
    sys.exit(main())
