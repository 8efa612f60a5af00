"""Text detection (DB): preprocess -> session run -> postprocess.

Follows PaddleOCR's DetResizeForTest, NormalizeImage and DBPostProcess. Images whose
resized shapes share a canvas (sides rounded up to `det_canvas_multiple`) run as one batch;
each image's canvas depends on that image alone, so a page gives the same boxes whether it
runs alone or with others.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

from docmill.options import EngineOptions
from worker.engine import geometry
from worker.engine.pixels import PixelBatch, mean_std_affine, pixel_batch
from worker.engine.session import ModelSession


SMALL_TEXT_PX = 12  # lines shorter than this at det's scale (their median) are small print
SMALL_TEXT_MIN_LINES = 10  # a page of fewer lines is judged by too few to call it dense


@dataclass(frozen=True)
class DetInput:
    """One image resized for the detector (HxWx3 uint8), with what maps it back."""

    pixels: np.ndarray
    src_hw: tuple[int, int]

    @property
    def hw(self) -> tuple[int, int]:
        return self.pixels.shape[0], self.pixels.shape[1]


def resized_shape(h: int, w: int, opts: EngineOptions) -> tuple[int, int]:
    """Target (h, w) per det_limit_type, both sides multiples of 32 and at least 32."""
    limit = opts.det_limit_side_len
    if opts.det_limit_type == "max":
        ratio = limit / max(h, w) if max(h, w) > limit else 1.0
    elif opts.det_limit_type == "min":
        ratio = limit / min(h, w) if min(h, w) < limit else 1.0
    else:
        ratio = limit / max(h, w)
    rh, rw = int(h * ratio), int(w * ratio)
    return max(int(round(rh / 32) * 32), 32), max(int(round(rw / 32) * 32), 32)


def finer(opts: EngineOptions) -> EngineOptions | None:
    """The options of a second, finer detection for pages of small print (see small_text),
    or None where there is none to be had: `det_small_text_side_len` 0, or a limit that is
    not on the long side."""
    if not opts.det_small_text_side_len or opts.det_limit_type != "max":
        return None
    return opts.merged({"det_limit_side_len": opts.det_small_text_side_len})


def small_text(boxes: Sequence[np.ndarray], src_hw: tuple[int, int], opts: EngineOptions,
               finer_opts: EngineOptions) -> bool:
    """True for a page whose lines came out under SMALL_TEXT_PX tall (their median) at det's
    scale, when `finer_opts` would see it larger. Such a page is dense small print, which
    the detector misses lines of at 1280 px: a drawn A3 page of 8 pt text at 300 dpi (lines
    10 px tall at det's scale) lost 15 of its 309 lines there and none at 2560. None of the
    shared receipts and pages comes under it (16 px at the least)."""
    if len(boxes) < SMALL_TEXT_MIN_LINES:
        return False
    now, then = resized_shape(*src_hw, opts), resized_shape(*src_hw, finer_opts)
    if max(then) <= max(now):
        return False
    quads = np.asarray(boxes, np.float32)
    sides = np.linalg.norm(quads[:, 1] - quads[:, 0], axis=1), np.linalg.norm(quads[:, 2] - quads[:, 1], axis=1)
    return float(np.median(np.minimum(*sides))) * now[0] / src_hw[0] < SMALL_TEXT_PX


def preprocess(image: np.ndarray, opts: EngineOptions) -> DetInput:
    """Resize (bilinear); the model scales to [0, 1], subtracts the mean and divides by the
    std per BGR channel (batch)."""
    h, w = image.shape[:2]
    rh, rw = resized_shape(h, w, opts)
    return DetInput(cv2.resize(image, (rw, rh)), (h, w))


def batch(inputs: Sequence[DetInput], canvas: tuple[int, int], opts: EngineOptions) -> PixelBatch:
    """The inputs laid on one canvas, with det's normalisation."""
    return pixel_batch([item.pixels for item in inputs], canvas, *mean_std_affine(opts.det_mean, opts.det_std))


def canvas_shape(hw: tuple[int, int], multiple: int) -> tuple[int, int]:
    """The canvas an input of shape `hw` is padded into (sides rounded up to `multiple`)."""
    return tuple(-(-side // multiple) * multiple for side in hw)  # type: ignore[return-value]


def run(session: ModelSession, inputs: Sequence[DetInput], canvas: tuple[int, int], opts: EngineOptions,
        bucketed: bool = False) -> list[np.ndarray]:
    """One batched session run; returns each input's probability map cropped to its size.
    A lone input that fills its canvas runs as it is, without a padded copy. `bucketed`:
    the batch is padded to a power of two (ModelSession.run_all)."""
    out = session.run(batch(inputs, canvas, opts), bucketed)
    return [out[i, 0, : item.hw[0], : item.hw[1]] for i, item in enumerate(inputs)]


def postprocess(prob: np.ndarray, src_hw: tuple[int, int], opts: EngineOptions) -> list[np.ndarray]:
    """Probability map -> text quadrilaterals in source pixels (clockwise from top-left,
    clipped, tiny ones dropped), unordered."""
    mask = (prob > opts.det_thresh).astype(np.uint8)
    if opts.det_use_dilation:
        mask = cv2.dilate(mask, np.array([[1, 1], [1, 1]], dtype=np.uint8))
    boxes = _boxes_from_bitmap(prob, mask, src_hw, opts)
    return _filter_boxes(boxes, src_hw)


def _boxes_from_bitmap(
    prob: np.ndarray, mask: np.ndarray, src_hw: tuple[int, int], opts: EngineOptions
) -> list[np.ndarray]:
    bitmap_size = np.array(mask.shape[::-1], np.float32)  # (width, height): boxes are (x, y)
    dest_size = np.array(src_hw[::-1], np.float32)
    contours, _ = cv2.findContours(mask * 255, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    boxes = []
    for contour in _candidates(contours, opts.det_max_candidates):
        points, short_side = geometry.mini_box(contour)
        if short_side < opts.det_min_size:
            continue
        if opts.det_score_mode == "fast":
            score = geometry.box_score_fast(prob, points)
        else:
            score = geometry.box_score_slow(prob, contour)
        if score < opts.det_box_thresh:
            continue
        expanded = geometry.unclip(points, opts.det_unclip_ratio)
        if expanded is None:
            continue
        box, short_side = geometry.mini_box(expanded)
        if short_side < opts.det_min_size + 2:
            continue
        box = np.minimum(np.maximum(np.round(box / bitmap_size * dest_size), 0), dest_size)
        boxes.append(box.astype(np.int32).astype(np.float32))
    return boxes


def _candidates(contours: Sequence[np.ndarray], cap: int) -> Sequence[np.ndarray]:
    """The contours to make boxes of: all of them up to `cap`, else the `cap` largest.
    PaddleOCR keeps the first `cap` in findContours' order, and on a textured photo (the
    shared img_11.jpg turned 8 degrees: 1,502 contours) specks filled the cap before any of
    its three lines of text was reached, so the page read empty."""
    if len(contours) <= cap:
        return contours
    return sorted(contours, key=cv2.contourArea, reverse=True)[:cap]


def _filter_boxes(boxes: list[np.ndarray], src_hw: tuple[int, int]) -> list[np.ndarray]:
    """Order clockwise, clip to the image, drop boxes 3 px or less on a side."""
    kept = []
    for box in boxes:
        box = geometry.clip_box(geometry.order_points_clockwise(box), *src_hw)
        if int(np.linalg.norm(box[0] - box[1])) <= 3 or int(np.linalg.norm(box[0] - box[3])) <= 3:
            continue
        kept.append(box)
    return kept
