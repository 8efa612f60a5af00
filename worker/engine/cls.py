"""Text-line angle classification (0 or 180 degrees): preprocess -> session run -> postprocess,
then a decision per page.

Follows PaddleOCR's TextClassifier: each crop is resized to height 48 keeping its aspect
ratio (at most 192 wide), scaled to [-1, 1] and right-padded with zeros to 192. The padded
width is fixed, so a crop's result never depends on which crops share its batch.

Unlike PaddleOCR, a line is not turned on its own verdict alone. The classifier errs on
short crops ("6" read as an upside-down "9") and now and then on clean upright lines, so
each page first takes a majority from its crops long enough to judge; a line is turned
against its page's majority only on strong evidence, and crops too short to judge follow
the majority.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

from docmill.options import EngineOptions
from worker.engine.lineimage import line_batch
from worker.engine.session import ModelSession

LABELS = (0, 180)


@dataclass(frozen=True)
class Angle:
    """An angle for one crop with its probability; `rotate` is True when the crop is turned."""

    angle: int
    score: float
    rotate: bool


def postprocess(probs: np.ndarray) -> list[Angle]:
    """Each row's winning label with its probability (`rotate` is decided per page)."""
    idx = probs.argmax(axis=1)
    return [Angle(LABELS[label], float(row[label]), LABELS[label] == 180) for row, label in zip(probs, idx)]


def classify(session: ModelSession, crops: Sequence[np.ndarray], opts: EngineOptions) -> list[Angle]:
    """The classifier's own verdict on every crop, batching crops of similar aspect ratio."""
    results: list[Angle | None] = [None] * len(crops)
    order = np.argsort([c.shape[1] / float(c.shape[0]) for c in crops], kind="stable")
    _, height, width = opts.cls_image_shape
    for start in range(0, len(order), opts.cls_batch_size):
        chunk = order[start : start + opts.cls_batch_size]
        batch = line_batch([crops[i] for i in chunk], height, width)
        for i, angle in zip(chunk, postprocess(session.run(batch, opts.batch_buckets))):
            results[i] = angle
    return results  # type: ignore[return-value]


def majority(verdicts: Sequence[Angle], aspects: Sequence[float], opts: EngineOptions) -> int:
    """The page's angle: the aspect-weighted vote of its judgeable crops (aspect at least
    `cls_min_aspect`) whose verdict beats `cls_thresh`; 0 on a tie or with no such crop."""
    votes = {0: 0.0, 180: 0.0}
    for verdict, aspect in zip(verdicts, aspects):
        if aspect >= opts.cls_min_aspect and verdict.score > opts.cls_thresh:
            votes[verdict.angle] += aspect
    return 180 if votes[180] > votes[0] else 0


@dataclass(frozen=True)
class PageAngles:
    """One page's majority angle and each of its lines' final angle."""

    angle: int
    lines: list[Angle]


def decide(verdicts: Sequence[Angle], aspects: Sequence[float], opts: EngineOptions) -> PageAngles:
    """One page's final angles from the classifier's verdicts on its crops (width / height
    in `aspects`): the page's majority, except for a judgeable crop whose own verdict reaches
    `cls_strong_thresh`."""
    page = majority(verdicts, aspects, opts)
    lines = []
    for verdict, aspect in zip(verdicts, aspects):
        own = aspect >= opts.cls_min_aspect and verdict.score >= opts.cls_strong_thresh
        angle = verdict.angle if own or verdict.angle == page else page
        score = verdict.score if angle == verdict.angle else 1.0 - verdict.score
        lines.append(Angle(angle, score, angle == 180))
    return PageAngles(page, lines)


def apply(crops: list[np.ndarray], angles: Sequence[Angle]) -> list[np.ndarray]:
    """Crops with the 180-degree ones turned upright."""
    return [cv2.rotate(c, cv2.ROTATE_180) if a.rotate else c for c, a in zip(crops, angles)]
