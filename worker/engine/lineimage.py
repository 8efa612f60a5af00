"""The input cls and rec share: a text-line crop at a fixed height, aspect kept, scaled to
[-1, 1] ((x / 255 - 0.5) / 0.5, as PaddleOCR does) and zero-padded on the right; the scaling
and padding happen in the model (PixelBatch)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from worker.engine.pixels import PixelBatch

LINE_SCALE, LINE_SHIFT = np.full(3, 1 / 127.5, np.float32), np.full(3, -1.0, np.float32)


def resized_width(crop: np.ndarray, height: int, width: int) -> int:
    """How many of the tensor's `width` columns the crop fills: its width at `height`, aspect
    kept, at most `width` (rec maps its character positions back through this)."""
    ratio = crop.shape[1] / float(crop.shape[0])
    return min(width, int(math.ceil(height * ratio)))


def line_tensor(crop: np.ndarray, height: int, width: int) -> np.ndarray:
    """3 x height x width float32, as the model sees it (the quantiser's calibration input);
    crops wider than `width` at this height are squeezed."""
    return line_batch([crop], height, width).normalized()[0]


def line_batch(crops: Sequence[np.ndarray], height: int, width: int) -> PixelBatch:
    """The crops resized to `height`, aspect kept (squeezed to `width` at most), on one byte
    canvas N x height x width x 3, each valid up to its resized width; the model scales them
    to [-1, 1] and zeroes the rest."""
    canvas = np.zeros((len(crops), height, width, 3), dtype=np.uint8)
    valid = np.empty((len(crops), 2), np.int64)
    for row, extent, crop in zip(canvas, valid, crops):
        resized_w = resized_width(crop, height, width)
        row[:, :resized_w] = cv2.resize(crop, (resized_w, height))
        extent[:] = height, resized_w
    return PixelBatch(canvas, valid, LINE_SCALE, LINE_SHIFT)
