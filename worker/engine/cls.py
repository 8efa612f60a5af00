"""Text-line angle classification (0 or 180 degrees): preprocess -> session run -> postprocess.

Follows PaddleOCR's TextClassifier: each crop is resized to height 48 keeping its aspect
ratio (at most 192 wide), scaled to [-1, 1] and right-padded with zeros to 192. The padded
width is fixed, so a crop's result never depends on which crops share its batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

from docmill.options import EngineOptions
from worker.engine.lineimage import line_tensor
from worker.engine.session import ModelSession

LABELS = (0, 180)


@dataclass(frozen=True)
class Angle:
    """The classifier's verdict for one crop; `rotate` is True when the crop gets turned."""

    angle: int
    score: float
    rotate: bool


def preprocess(crop: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """One crop as a 3 x H x W tensor at the classifier's fixed size."""
    _, height, width = shape
    return line_tensor(crop, height, width)


def postprocess(probs: np.ndarray, thresh: float) -> list[Angle]:
    """Argmax label per row; a crop is rotated only when 180 wins with score > thresh.
    The reported angle is the one applied, with that angle's probability."""
    idx = probs.argmax(axis=1)
    out = []
    for row, label in zip(probs, idx):
        rotate = LABELS[label] == 180 and float(row[label]) > thresh
        reported = 1 if rotate else 0
        out.append(Angle(LABELS[reported], float(row[reported]), rotate))
    return out


def classify(session: ModelSession, crops: Sequence[np.ndarray], opts: EngineOptions) -> list[Angle]:
    """Classify every crop, batching crops of similar aspect ratio together."""
    results: list[Angle | None] = [None] * len(crops)
    order = np.argsort([c.shape[1] / float(c.shape[0]) for c in crops], kind="stable")
    for start in range(0, len(order), opts.cls_batch_size):
        chunk = order[start : start + opts.cls_batch_size]
        batch = np.stack([preprocess(crops[i], opts.cls_image_shape) for i in chunk])
        for i, angle in zip(chunk, postprocess(session.run(batch), opts.cls_thresh)):
            results[i] = angle
    return results  # type: ignore[return-value]


def apply(crops: list[np.ndarray], angles: Sequence[Angle]) -> list[np.ndarray]:
    """Crops with the 180-degree ones turned upright."""
    return [cv2.rotate(c, cv2.ROTATE_180) if a.rotate else c for c, a in zip(crops, angles)]
