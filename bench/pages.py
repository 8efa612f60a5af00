"""What the in-process benches share: an engine on a model set, the labelled pages they
read (the shared SROIE receipts with their lines in reading order, the shared PaddleOCR photos
transcribed in ground_truth.json, and the demo pages), and the frame of a bench that turns
one engine check on and off."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from bench.paths import PADDLEOCR_TRUTH, SROIE_LABELS

Pages = tuple[list[np.ndarray], list[list[str]]]  # images, and each one's lines in reading order


def load_engine(models: str) -> Any:
    """An OcrEngine on CPU for a preset name, folder or s3:// set (a preset is imported)."""
    from converter.presets import ensure_model_set
    from docmill.modelset import ModelSet
    from docmill.settings import Settings
    from worker.engine.pipeline import OcrEngine

    settings = Settings(device="cpu")
    return OcrEngine.load(ModelSet.load(ensure_model_set(models, settings)), settings)


def sroie_pages() -> Pages | None:
    """The receipts and their labelled lines, or None without ../shared."""
    if not SROIE_LABELS.is_file():
        return None
    rows = [json.loads(line) for line in SROIE_LABELS.read_text("utf-8").splitlines() if line.strip()]
    return ([cv2.imread(str(SROIE_LABELS.parent / r["image"])) for r in rows],
            [[line["text"] for line in r["lines"]] for r in rows])


def photo_pages() -> Pages | None:
    """The shared PaddleOCR photos and scans transcribed line by line in reading order (its
    word crops left out), or None without ../shared."""
    if not PADDLEOCR_TRUTH.is_file():
        return None
    truth = {name: lines for name, lines in json.loads(PADDLEOCR_TRUTH.read_text("utf-8")).items()
             if "imgs_words" not in name}
    return [cv2.imread(str(PADDLEOCR_TRUTH.parent / name)) for name in truth], list(truth.values())


def vertical_pages() -> Pages | None:
    """The drawn pages of vertical Chinese and Japanese columns (demo/vertical.py) and their
    columns in reading order, or None without their font."""
    from demo.vertical import FONT, pages

    if not FONT.is_file():
        return None
    drawn = pages().values()
    return [image for image, _ in drawn], [truth for _, truth in drawn]


def demo_pages(upright_only: bool = False) -> Pages:
    """The demo pages (demo/pages.py) and their truth; `upright_only` leaves out the two
    that are drawn turned."""
    from demo.pages import truth, write_samples

    with tempfile.TemporaryDirectory() as tmp:
        write_samples(Path(tmp))
        names = [n for n in truth() if not (upright_only and n in ("rotated.jpg", "upside_down.png"))]
        return [cv2.imread(str(Path(tmp) / n)) for n in names], [truth()[n] for n in names]


def read_texts(engine: Any, images: list[np.ndarray], overrides: dict[str, Any]) -> tuple[list[list[str]], float]:
    """Each image's line texts read one at a time with `overrides`, and the seconds it took."""
    import time

    options = engine.options.merged(overrides)
    start = time.perf_counter()
    texts = [[line.text for line in engine.run([image], options)[0].lines] for image in images]
    return texts, time.perf_counter() - start


def shared_on_off(engine: Any, on: dict[str, Any], off: dict[str, Any]) -> dict:
    """The shared PaddleOCR images and receipts read with an option `on` and `off`: for a
    check that should leave real pages alone, the lines it removed and added, by image."""
    from bench.orientation import upright_images

    images = list(upright_images().items())
    if receipts := sroie_pages():
        images += [(f"sroie/{i}", image) for i, image in enumerate(receipts[0])]
    with_it, seconds_on = read_texts(engine, [image for _, image in images], on)
    without, seconds_off = read_texts(engine, [image for _, image in images], off)
    changed = {name: {"lost": [line for line in b if line not in a], "gained": [line for line in a if line not in b]}
               for (name, _), a, b in zip(images, with_it, without) if a != b}
    return {"images": len(images), "lines_on": sum(map(len, with_it)), "lines_off": sum(map(len, without)),
            "changed": changed, "seconds_on_off": [round(seconds_on, 2), round(seconds_off, 2)]}


def on_off_main(name: str, description: str, rows_of: Callable[[Any], list[dict]], on: dict[str, Any],
                off: dict[str, Any]) -> int:
    """The entry point of a bench that measures one engine check on drawn pages (`rows_of`)
    and then on the shared images, on and off; it saves bench/results/<name>.json."""
    import argparse

    from bench.results import save_result
    from docmill.settings import DEFAULT_MODEL_SET

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--models", default=DEFAULT_MODEL_SET)
    args = parser.parse_args()
    engine = load_engine(args.models)
    rows = rows_of(engine)
    shared = shared_on_off(engine, on, off)
    print("summary:", json.dumps(shared, indent=1))
    save_result(name, {"schema": f"docmill.bench.{name}/v1", "models": args.models, "rows": rows, "shared": shared})
    return 0
