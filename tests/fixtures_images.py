"""Test images built in memory: every odd or broken input a decoder meets, as bytes.

Content is known so tests can check more than shapes: `marker_rgb` has a dark square in its
top-left corner, so an orientation mistake moves the square somewhere else.
"""

from __future__ import annotations

import io
import struct
import zlib

import cv2
import numpy as np
from PIL import Image

MARKER = 20  # side of the dark top-left square in marker_rgb


def marker_rgb(height: int = 60, width: int = 100) -> np.ndarray:
    """White RGB page with a black MARKER x MARKER square at the top-left corner."""
    image = np.full((height, width, 3), 255, np.uint8)
    image[:MARKER, :MARKER] = 0
    return image


def encode(image: np.ndarray | Image.Image, fmt: str, **params: object) -> bytes:
    """Pillow-encode an array (RGB/L order) or an Image to `fmt` bytes."""
    pil = image if isinstance(image, Image.Image) else Image.fromarray(image)
    buf = io.BytesIO()
    pil.save(buf, fmt, **params)
    return buf.getvalue()


def zero_bytes() -> bytes:
    return b""


def random_bytes(size: int = 4096, seed: int = 0) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, size, np.uint8).tobytes()


def noise_rgb(height: int = 48, width: int = 64, seed: int = 0) -> np.ndarray:
    """Random RGB pixels: any decoder difference shows up in them."""
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), np.uint8)


def jpeg(image: np.ndarray | None = None, **params: object) -> bytes:
    return encode(marker_rgb() if image is None else image, "JPEG", quality=95, **params)


def truncated_jpeg() -> bytes:
    """A JPEG cut off half-way through its scan data."""
    data = jpeg(noise_rgb(200, 300))
    return data[: len(data) // 2]


def truncated_png() -> bytes:
    data = encode(noise_rgb(200, 300), "PNG")
    return data[: len(data) // 2]


def png_1x1() -> bytes:
    return encode(np.array([[[10, 20, 30]]], np.uint8), "PNG")


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_huge_header(width: int = 100_000, height: int = 100_000) -> bytes:
    """A valid-looking PNG whose IHDR declares width x height RGB pixels but whose IDAT holds
    one row: a decompression bomb in spirit, a few dozen bytes in fact."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" + b"\x00" * 3)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat)
            + _png_chunk(b"IEND", b""))


def rgba_png(text_rgb: tuple[int, int, int] = (0, 0, 0), hidden_rgb: tuple[int, int, int] = (200, 200, 200)) -> bytes:
    """Transparent 60x100 canvas (hiding `hidden_rgb` under alpha 0) with an opaque
    `text_rgb` marker square: the shape of a logo or white-on-transparent text."""
    rgba = np.zeros((60, 100, 4), np.uint8)
    rgba[..., :3] = hidden_rgb
    rgba[:MARKER, :MARKER] = (*text_rgb, 255)
    return encode(Image.fromarray(rgba, "RGBA"), "PNG")


def rgb_trns_png() -> bytes:
    """8-bit RGB PNG with a tRNS colour key: the grey (200, 200, 200) canvas is transparent,
    leaving a white marker square (white-on-transparent text, without an alpha channel)."""
    rgb = np.full((60, 100, 3), 200, np.uint8)
    rgb[:MARKER, :MARKER] = 255
    return encode(rgb, "PNG", transparency=(200, 200, 200))


def la_png() -> bytes:
    """Grey + alpha: half-transparent black square on a transparent canvas."""
    la = np.zeros((60, 100, 2), np.uint8)
    la[:MARKER, :MARKER] = (0, 128)
    return encode(Image.fromarray(la, "LA"), "PNG")


def grey16_png(values: tuple[int, ...] = (0, 257 * 128, 65535)) -> bytes:
    """16-bit greyscale PNG, one column per value (three values -> 3 columns x 4 rows)."""
    row = np.array(values, np.uint16)
    return encode(Image.fromarray(np.tile(row, (4, 1))), "PNG")


def rgb16_png() -> bytes:
    """16-bit RGB PNG (Pillow cannot write one, cv2 can): BGR (1000, 30000, 65535)."""
    bgr = np.empty((4, 6, 3), np.uint16)
    bgr[:] = (1000, 30000, 65535)
    ok, buf = cv2.imencode(".png", bgr)
    assert ok
    return buf.tobytes()


def palette_png(transparent: bool = False) -> bytes:
    """Palette PNG: index 0 white, 1 black marker; index 0 transparent when asked."""
    indices = np.zeros((60, 100), np.uint8)
    indices[:MARKER, :MARKER] = 1
    image = Image.fromarray(indices, "P")
    image.putpalette([255, 255, 255, 0, 0, 0])
    return encode(image, "PNG", **({"transparency": 0} if transparent else {}))


def one_bit_png() -> bytes:
    return encode(Image.fromarray(marker_rgb()[..., 0] > 0), "PNG")


def grey_jpeg() -> bytes:
    return jpeg(marker_rgb()[..., 0])


def grey_png() -> bytes:
    return encode(marker_rgb()[..., 0], "PNG")


def cmyk_jpeg() -> bytes:
    """CMYK JPEG (Adobe marker, as Photoshop writes): cyan, black, white, 50% cyan + 50% K
    columns, 8 pixels each, so colour conversion can be checked per column."""
    cmyk = np.zeros((8, 32, 4), np.uint8)
    cmyk[:, 0:8] = (255, 0, 0, 0)
    cmyk[:, 8:16] = (0, 0, 0, 255)
    cmyk[:, 16:24] = (0, 0, 0, 0)
    cmyk[:, 24:32] = (128, 0, 0, 128)
    return encode(Image.fromarray(cmyk, "CMYK"), "JPEG", quality=100)


def truncated_cmyk_jpeg() -> bytes:
    """A CMYK JPEG (decoded by Pillow, not cv2) cut off half-way through its scan data."""
    cmyk = np.random.default_rng(0).integers(0, 256, (200, 300, 4), np.uint8)
    data = encode(Image.fromarray(cmyk, "CMYK"), "JPEG", quality=90)
    return data[: len(data) // 2]


def exif_jpeg(orientation: int) -> bytes:
    """A JPEG that displays as marker_rgb() (60x100, marker top-left) only when its EXIF
    orientation (3: rotate 180, 6: rotate 90 clockwise) is applied."""
    return exif_image(orientation, "JPEG", quality=95)


def exif_image(orientation: int, fmt: str, **params: object) -> bytes:
    """Like exif_jpeg, in any format Pillow writes EXIF for (JPEG, PNG, WEBP)."""
    stored = {3: np.rot90(marker_rgb(), 2), 6: np.rot90(marker_rgb(), 1)}[orientation]
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(np.ascontiguousarray(stored), fmt, exif=exif.tobytes(), **params)


def multipage_tiff() -> bytes:
    """Two pages: marker_rgb() first, then a black 30x40 page."""
    first = Image.fromarray(marker_rgb())
    second = Image.new("RGB", (40, 30))
    return encode(first, "TIFF", save_all=True, append_images=[second])


def tiff(image: np.ndarray) -> bytes:
    """A TIFF of `image` in the Pillow mode its dtype maps to (uint16: I;16, int32: I, float32: F)."""
    return encode(image, "TIFF")


def animated_gif() -> bytes:
    """Two frames: marker_rgb() first, then solid black."""
    first = Image.fromarray(marker_rgb()).convert("P")
    second = Image.new("RGB", (100, 60)).convert("P")
    return encode(first, "GIF", save_all=True, append_images=[second], duration=100, loop=0)


def transparent_gif() -> bytes:
    """A single-frame GIF whose white index is transparent."""
    return encode(Image.open(io.BytesIO(palette_png())), "GIF", transparency=0)


def pdf_named_jpg() -> bytes:
    return b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


def svg_named_jpg() -> bytes:
    return (b'<?xml version="1.0" encoding="UTF-8"?>\n<svg xmlns="http://www.w3.org/2000/svg" '
            b'width="100" height="60"><text x="5" y="30">hello</text></svg>\n')


def webp(lossless: bool = True) -> bytes:
    return encode(marker_rgb(), "WEBP", lossless=lossless)


def bmp() -> bytes:
    return encode(marker_rgb(), "BMP")
