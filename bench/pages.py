"""What the in-process benches share: an engine on a model set, and the labelled pages they
read (the shared SROIE receipts with their lines in reading order, the shared PaddleOCR photos
transcribed in ground_truth.json, and the demo pages)."""

from __future__ import annotations

import json
import tempfile
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
