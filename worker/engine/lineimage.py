"""The input tensor cls and rec share: a text-line crop at a fixed height, aspect kept,
scaled to [-1, 1] ((x / 255 - 0.5) / 0.5, as PaddleOCR does) and zero-padded on the right."""

from __future__ import annotations

import math

import cv2
import numpy as np


def resized_width(crop: np.ndarray, height: int, width: int) -> int:
    """How many of the tensor's `width` columns the crop fills: its width at `height`, aspect
    kept, at most `width` (rec maps its character positions back through this)."""
    ratio = crop.shape[1] / float(crop.shape[0])
    return min(width, int(math.ceil(height * ratio)))


def line_tensor(crop: np.ndarray, height: int, width: int) -> np.ndarray:
    """3 x height x width float32; crops wider than `width` at this height are squeezed."""
    resized_w = resized_width(crop, height, width)
    resized = cv2.resize(crop, (resized_w, height)).astype(np.float32)
    tensor = np.zeros((3, height, width), dtype=np.float32)
    tensor[:, :, :resized_w] = resized.transpose(2, 0, 1) / 127.5 - 1.0
    return tensor
