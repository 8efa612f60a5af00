"""Choose a model set's engine defaults by measurement: run the engine in-process on the
shared SROIE sample for each candidate option set and score it with ../shared/bench/score.py.

    python -m bench.sweep --models pp-ocrv4-ch [--grid FILE.json]

The winning options go into the set's preset `defaults` (converter/presets.py), which the
manifest records; the table printed here is the evidence.
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import json
import sys
import tempfile
import time
from pathlib import Path

import cv2

from bench.paths import SHARED, SROIE_LABELS

DEFAULT_GRID = {
    "det_limit_type": ["max", "min"],
    "det_limit_side_len": [960, 736],
    "det_box_thresh": [0.6, 0.5],
    "det_unclip_ratio": [1.5, 1.6, 2.0],
    "det_use_dilation": [False, True],
}


def load_scorer():
    spec = importlib.util.spec_from_file_location("docmill_score", SHARED / "bench" / "score.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def candidates(grid: dict[str, list]) -> list[dict]:
    keys = sorted(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]


def score_pages(model_set, images: dict[str, object], pages: list, labels: Path, scorer=None) -> dict:
    """Write each page as docmill.result/v1 into a temp folder and score it against labels."""
    from docmill.messages import TaskItem
    from docmill.result import ModelsInfo
    from worker.items import DecodedItem
    from worker.results import build_result

    models = ModelsInfo(set=model_set.name, version=model_set.version)
    with tempfile.TemporaryDirectory() as tmp:
        for (rel, image), page in zip(images.items(), pages):
            out = Path(tmp) / f"{rel}.json"
            item = DecodedItem(item=TaskItem(src=rel, dst=str(out)), height=image.shape[0], width=image.shape[1])
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(build_result(item, page, models, []).to_json_bytes())
        return (scorer or load_scorer()).score(str(labels), tmp)


def sroie_images(labels: Path) -> dict[str, object]:
    """The labelled SROIE images, keyed by their path relative to the labels file."""
    rels = [json.loads(line)["image"] for line in labels.read_text("utf-8").splitlines() if line.strip()]
    return {rel: cv2.imread(str(labels.parent / rel)) for rel in rels}


def evaluate(engine, model_set, images: dict[str, object], options: dict, scorer, labels: Path) -> dict:
    """Score one option set on the images."""
    start = time.perf_counter()
    pages = engine.run(list(images.values()), engine.options.merged(options))
    seconds = time.perf_counter() - start
    metrics = score_pages(model_set, images, pages, labels, scorer)
    return {"options": options, "seconds": round(seconds, 2), **{k: metrics[k] for k in ("word_f1", "cer_nospace", "det_recall")}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="pp-ocrv4-ch")
    ap.add_argument("--grid", help="JSON {option: [values]} (default: the det grid in this file)")
    args = ap.parse_args()
    if not (SHARED / "data" / "sroie_sample").is_dir():
        print("bench.sweep: ../shared/data/sroie_sample is absent; nothing to measure")
        return 0
    from converter.presets import ensure_model_set
    from docmill.modelset import ModelSet
    from docmill.settings import Settings
    from worker.engine.pipeline import OcrEngine

    settings = Settings(device="cpu")
    model_set = ModelSet.load(ensure_model_set(args.models, settings))
    engine = OcrEngine.load(model_set, settings)
    labels = SROIE_LABELS
    images = sroie_images(labels)
    grid = json.loads(Path(args.grid).read_text()) if args.grid else DEFAULT_GRID
    scorer = load_scorer()
    rows = []
    for options in candidates(grid):
        row = evaluate(engine, model_set, images, options, scorer, labels)
        rows.append(row)
        print(json.dumps(row), flush=True)
    best = max(rows, key=lambda r: (r["word_f1"], -r["cer_nospace"]))
    print("best:", json.dumps(best))
    return 0


if __name__ == "__main__":
    sys.exit(main())
