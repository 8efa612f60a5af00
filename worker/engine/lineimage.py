"""The input tensor cls and rec share: a text-line crop at a fixed height, aspect kept,
scaled to [-1, 1] ((x / 255 - 0.5) / 0.5, as PaddleOCR does) and zero-padded on the right."""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from worker.engine.pixels import planes_affine

_SCALE, _SHIFT = (1 / 127.5,) * 3, (-1.0,) * 3


def resized_width(crop: np.ndarray, height: int, width: int) -> int:
    """How many of the tensor's `width` columns the crop fills: its width at `height`, aspect
    kept, at most `width` (rec maps its character positions back through this)."""
    ratio = crop.shape[1] / float(crop.shape[0])
    return min(width, int(math.ceil(height * ratio)))


def line_tensor(crop: np.ndarray, height: int, width: int, out: np.ndarray | None = None) -> np.ndarray:
    """3 x height x width float32; crops wider than `width` at this height are squeezed.
    `out`, zeros of that shape (a batch's row), receives it in place."""
    resized_w = resized_width(crop, height, width)
    resized = cv2.resize(crop, (resized_w, height))
    tensor = np.zeros((3, height, width), dtype=np.float32) if out is None else out
    planes_affine(resized, _SCALE, _SHIFT, out=tensor[:, :, :resized_w])
    return tensor


def line_batch(crops: Sequence[np.ndarray], height: int, width: int) -> np.ndarray:
    """The crops' tensors stacked, N x 3 x height x width, each written in place."""
    batch = np.zeros((len(crops), 3, height, width), dtype=np.float32)
    for crop, row in zip(crops, batch):
        line_tensor(crop, height, width, out=row)
    return batch
