"""The pixel layouts the engine accepts, turned into the one it runs on (HxWx3 uint8 BGR),
and the batches of bytes its models take (PixelBatch).

Decoded files are BGR already; callers of the Python API pass whatever they hold: grey
scans (HxW or HxWx1), BGRA screenshots, 16-bit or float arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from pages.decode import flatten_bgra, scale_to_uint8


def as_bgr(image: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 BGR from grey, BGR or BGRA: 8-bit, 16-bit (or 10, 12, 14 bits stored in
    16), float in 0..1, or any other numbers stretched from their own range; BGRA laid on a
    background its visible pixels contrast with, as transparent files are. Raises ValueError
    with what was wrong for anything else."""
    if not isinstance(image, np.ndarray) or image.ndim not in (2, 3) or min(image.shape[:2]) < 1:
        shape = getattr(image, "shape", None)
        raise ValueError(f"expected an HxW or HxWxC image array, got {type(image).__name__} {shape}")
    pixels = _as_uint8(image)
    if pixels.ndim == 2 or pixels.shape[2] == 1:
        return cv2.cvtColor(pixels.reshape(pixels.shape[:2]), cv2.COLOR_GRAY2BGR)
    if pixels.shape[2] == 4:
        return np.ascontiguousarray(flatten_bgra(pixels))  # an opaque one is a view of its colour channels
    if pixels.shape[2] == 3:
        return np.ascontiguousarray(pixels)
    raise ValueError(f"expected 1, 3 or 4 channels, got {pixels.shape[2]}")


def _as_uint8(image: np.ndarray) -> np.ndarray:
    """8-bit samples as they are; booleans as black and white; other integers and floats by
    the decoder's own rule for 16-bit and float files (pages.decode.scale_to_uint8), so an
    array and the file it came from read the same."""
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.bool_:
        return image.astype(np.uint8) * 255
    if image.dtype.kind in "iuf":
        return scale_to_uint8(image)
    raise ValueError(f"unsupported pixel type {image.dtype}; use unsigned, signed or float numbers")


# The inputs a prepared model takes instead of its float tensor (worker.engine.prepare).
PIXEL_INPUTS = ("docmill_pixels", "docmill_rows", "docmill_cols", "docmill_padded", "docmill_scale", "docmill_shift")


@dataclass(frozen=True)
class PixelBatch:
    """A batch as the engine's prepared models take it (worker.engine.prepare): the items'
    bytes, N x H x W x 3 uint8, each item's valid extent (N x 2: height and width from the
    top-left corner; the rest is padding), and the per-channel affine that normalises them.
    The model computes `pixels * scale + shift` per channel, NCHW, with the padding zero.

    Normalising in the graph instead of on the host: on a GPU a quarter of the bytes cross
    to the device and the arithmetic is free; on CPU the same arithmetic runs in ORT instead
    of numpy and OpenCV. `docmill run` on the 20 receipts, alternated with the host-side
    version over 3 rounds: 1.472 against 1.460 images/s, 26.4 against 27.0 s of CPU, every
    line, box and score the same."""

    pixels: np.ndarray
    valid: np.ndarray
    scale: np.ndarray
    shift: np.ndarray

    def __len__(self) -> int:
        return len(self.pixels)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.pixels.shape)

    def padded(self, count: int) -> "PixelBatch":
        """The batch with zero items appended up to `count` (their valid extent empty)."""
        pixels = np.zeros((count, *self.pixels.shape[1:]), np.uint8)
        pixels[: len(self)] = self.pixels
        valid = np.zeros((count, 2), np.int64)
        valid[: len(self)] = self.valid
        return PixelBatch(pixels, valid, self.scale, self.shift)

    def feed(self) -> dict[str, np.ndarray]:
        """The prepared model's inputs, by name: the valid extents as masks of rows and
        columns (N x H and N x W), which the graph combines, and whether any is short of
        the batch's shape (else the graph skips the mask)."""
        _, height, width, _ = self.pixels.shape
        rows = np.arange(height)[None, :] < self.valid[:, :1]
        cols = np.arange(width)[None, :] < self.valid[:, 1:]
        padded = np.array([not (rows.all() and cols.all())])
        return dict(zip(PIXEL_INPUTS, (self.pixels, rows, cols, padded, self.scale.reshape(1, 3, 1, 1),
                                       self.shift.reshape(1, 3, 1, 1))))

    def normalized(self) -> np.ndarray:
        """N x 3 x H x W float32: what the prepared model computes before the original
        graph, computed here (calibration data for the quantiser, and the tests' reference)."""
        out = self.pixels.transpose(0, 3, 1, 2).astype(np.float32) * self.scale.reshape(1, 3, 1, 1)
        out += self.shift.reshape(1, 3, 1, 1)
        for item, (height, width) in zip(out, self.valid):
            item[:, height:] = 0.0
            item[:, :, width:] = 0.0
        return out


def pixel_batch(items: Sequence[np.ndarray], canvas: tuple[int, int], scale: Sequence[float],
                shift: Sequence[float]) -> PixelBatch:
    """HxWx3 uint8 items laid top-left on one zeroed canvas of `canvas` (height, width);
    an item that fills a lone canvas is used as it is, without a copy."""
    if len(items) == 1 and items[0].shape[:2] == tuple(canvas):
        pixels = np.ascontiguousarray(items[0])[None]
    else:
        pixels = np.zeros((len(items), *canvas, 3), np.uint8)
        for slot, item in zip(pixels, items):
            slot[: item.shape[0], : item.shape[1]] = item
    valid = np.array([item.shape[:2] for item in items], np.int64).reshape(-1, 2)
    return PixelBatch(pixels, valid, np.asarray(scale, np.float32), np.asarray(shift, np.float32))


def mean_std_affine(mean: Sequence[float], std: Sequence[float]) -> tuple[list[float], list[float]]:
    """The scale and shift of `(pixel / 255 - mean) / std`, per channel."""
    scale = [1.0 / (s * 255.0) for s in std]
    return scale, [-m / s for m, s in zip(mean, std)]
