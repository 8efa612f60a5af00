"""The pixel layouts the engine accepts, turned into the one it runs on (HxWx3 uint8 BGR).

Decoded files are BGR already; callers of the Python API pass whatever they hold: grey
scans (HxW or HxWx1), BGRA screenshots, 16-bit or float arrays.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np


def as_bgr(image: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 BGR from grey, BGR or BGRA, 8-bit, 16-bit or float in 0..1.
    Raises ValueError with what was wrong for anything else."""
    if not isinstance(image, np.ndarray) or image.ndim not in (2, 3) or min(image.shape[:2]) < 1:
        shape = getattr(image, "shape", None)
        raise ValueError(f"expected an HxW or HxWxC image array, got {type(image).__name__} {shape}")
    pixels = _as_uint8(image)
    if pixels.ndim == 2 or pixels.shape[2] == 1:
        return cv2.cvtColor(pixels.reshape(pixels.shape[:2]), cv2.COLOR_GRAY2BGR)
    if pixels.shape[2] == 4:
        return cv2.cvtColor(pixels, cv2.COLOR_BGRA2BGR)
    if pixels.shape[2] == 3:
        return np.ascontiguousarray(pixels)
    raise ValueError(f"expected 1, 3 or 4 channels, got {pixels.shape[2]}")


def _as_uint8(image: np.ndarray) -> np.ndarray:
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        return (image >> 8).astype(np.uint8)
    if image.dtype.kind == "f":
        return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)
    if image.dtype == np.bool_:
        return image.astype(np.uint8) * 255
    raise ValueError(f"unsupported pixel type {image.dtype}; use uint8, uint16 or float in 0..1")


def planes_affine(pixels: np.ndarray, scale: Sequence[float], shift: Sequence[float]) -> np.ndarray:
    """3 x H x W float32 planes of an HxWx3 uint8 image, `pixels[..., c] * scale[c] + shift[c]`:
    how det and page orientation normalise a page (line crops go through
    lineimage.line_batch, a batch at a time). OpenCV splits the interleaved bytes into
    contiguous planes, then scales each in one pass into its float plane: numpy's astype,
    subtract, multiply and transpose took 7x as long on a receipt's det input (30 against
    4.3 ms), and handing OpenCV a strided channel view made it copy each one first (3.8
    against 1.75 ms on a 960 x 704 page)."""
    out = np.empty((3, *pixels.shape[:2]), np.float32)
    for c, channel in enumerate(cv2.split(pixels)):
        cv2.addWeighted(channel, float(scale[c]), channel, 0.0, float(shift[c]), dst=out[c], dtype=cv2.CV_32F)
    return out
