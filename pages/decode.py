"""Image bytes -> HxWx3 uint8 BGR array (what PaddleOCR's cv2.imread gives), or a coded error.

Pillow parses the header first (lazily: no pixel data yet), so an oversized image is refused
before it costs memory. Plain 8-bit RGB/grey JPEG and PNG then go to cv2.imdecode, bit-exact
with the cv2 reader the models were tuned on; everything else (alpha, palettes, 16-bit,
CMYK, TIFF, GIF, WebP, BMP) is decoded and normalised by Pillow.

Pillow's own decompression-bomb guard (the process-wide `Image.MAX_IMAGE_PIXELS`, an error
above twice its value) is left alone, as changing it would change it for every library in
the process: our `max_pixels` check runs first on the header, and Pillow's error is reported
as too_large too. A `max_pixels` above 2 * Image.MAX_IMAGE_PIXELS therefore needs that global
raised by the process that wants it. Pillow's warning (above Image.MAX_IMAGE_PIXELS, so for
every page over ~89 MP, which docmill's default limit accepts) is silenced where we call
Pillow: our own check has already decided on the size, and the warning would only reach
stderr once per process, naming no image.
"""

from __future__ import annotations

import io
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Literal

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# Registers exactly the plugins for FORMATS: Image.open(formats=...) only sees loaded plugins.
from PIL import (  # noqa: F401  isort: skip
    BmpImagePlugin, GifImagePlugin, Jpeg2KImagePlugin, JpegImagePlugin, PngImagePlugin,
    TiffImagePlugin, WebPImagePlugin)

DecodeErrorCode = Literal["decode_error", "too_large"]

FORMATS = ("JPEG", "PNG", "TIFF", "BMP", "WEBP", "GIF", "JPEG2000")
# Pillow's JPEG opener names camera JPEGs that carry extra preview images "MPO".
_JPEG_FORMATS = frozenset({"JPEG", "MPO"})
_CV2_FORMATS = _JPEG_FORMATS | {"PNG"}
_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
_INT_MODES = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N"})
_NOT_IMAGES = ((b"%PDF", "a PDF document"), (b"<?xml", "XML/SVG text"), (b"<svg", "SVG text"),
               (b"<!DOCTYPE", "HTML text"), (b"<html", "HTML text"), (b"PK\x03\x04", "a ZIP archive"))
_SAMPLE_PIXELS = 1 << 16
_LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], np.float32)  # R, G, B (ITU-R BT.601)
REDUCE_ABOVE_LONG_SIDE = 6000  # pixels: an A4 page at 600 dpi is 7016 long, at 400 dpi 4677
SQUARE_WITHIN = 0.02  # two stated resolutions closer than this share are one resolution
MAX_PIXEL_ASPECT = 4.0  # a fax's fine and standard modes are 204 x 196 and 204 x 98 dpi
EXIF_ORIENTATION = 0x0112
MIN_STATED_DPI = 20.0  # below this a stated resolution is a stand-in (Pillow's 1 for a missing TIFF tag)
_REDUCED_FLAGS = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2}
# warnings.catch_warnings swaps the process-wide filter list on entry and puts back what it
# found on exit: decode threads that overlapped would restore each other's lists.
_WARNINGS_LOCK = threading.Lock()


class ImageDecodeError(Exception):
    """Why an image could not be decoded; `code` is the docmill.result error code."""

    def __init__(self, code: DecodeErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code


def decode_image(data: bytes, max_pixels: int, engine_size: bool = False) -> np.ndarray:
    """HxWx3 uint8 BGR, EXIF orientation applied. Raises ImageDecodeError and nothing else.

    With `engine_size`, the size the engine reads, which the caller maps coordinates back from
    by the shapes:
    - a plain JPEG (or a JPEG 2000) whose long side is over REDUCE_ABOVE_LONG_SIDE is decoded
      at half its size by libjpeg's own DCT scaling (by JPEG 2000's wavelet levels), several
      times faster than decoding it whole and a quarter of the memory: such a page is a 600
      dpi scan, and at 300 dpi its text is still taller than the recogniser's 48-pixel lines
      (on the shared samples' two 600 dpi receipts, 105 of 106 lines read the same, and the
      other closer to its label);
    - an image stated at two resolutions (a fax at 204 x 98 dpi) is stretched to square
      pixels (pixel_stretch), so that its text has its printed shape."""
    _require_bytes(data)
    with _coded_errors():
        return _decode(data, max_pixels, engine_size)


def image_size(data: bytes, max_pixels: int) -> tuple[int, int]:
    """(width, height) from the header alone, before any pixel is decoded: what a page will
    cost is known before it costs it. Raises ImageDecodeError like decode_image."""
    return image_sizes(data, max_pixels)[0]


def image_sizes(data: bytes, max_pixels: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """The file's (width, height) and the size decode_image(engine_size=True) gives (both
    before EXIF orientation), from one read of the header."""
    _require_bytes(data)
    with _coded_errors(), _open(data) as im:
        width, height = _checked_size(im, max_pixels)
        factor = _reduction(im)
        return (width, height), _stretched((-(-width // factor), -(-height // factor)), pixel_stretch(im))


def file_pixels(data: bytes, full: tuple[int, int], read: tuple[int, int],
                image: np.ndarray) -> tuple[tuple[int, int], tuple[float, float]]:
    """For `image`, decoded at engine_size from `data`, whose image_sizes were `full` and
    `read`: the file's (width, height) as shown (EXIF orientation applied) and its pixels per
    pixel of `image` (x, y), by which results are given in the file's own pixels."""
    height, width = image.shape[:2]
    if read == full:
        return (width, height), (1.0, 1.0)
    if read[0] != read[1]:
        turned = (width, height) != read
    else:  # a square read (a stretched fax can be) looks the same turned or not: EXIF says
        with _coded_errors(), _open(data) as im:
            turned = turned_sideways(im)
    shown = full[::-1] if turned else full
    return shown, (shown[0] / width, shown[1] / height)


def box_in_file(box: list[list[int]], scale: tuple[float, float], size: tuple[int, int]) -> list[list[int]]:
    """A box from the pixels the engine read to the file's own (file_pixels' `scale`, the
    file's `size` as shown), kept inside the file."""
    (sx, sy), right, bottom = scale, size[0] - 1, size[1] - 1
    return [[min(round(x * sx), right), min(round(y * sy), bottom)] for x, y in box]


def decode_frame(im: Image.Image, max_pixels: int, engine_size: bool = False) -> np.ndarray:
    """The current frame of an image Pillow already holds open (a multi-page TIFF's page) as
    HxWx3 uint8 BGR, with the same size limit, modes and error codes as decode_image; with
    `engine_size`, stretched to square pixels as decode_image stretches an image."""
    with _coded_errors():
        _checked_size(im, max_pixels)
        stretch, turned = _stretch_of(im, engine_size)
        return _squared(_decode_pillow(im), stretch, turned)


def pixel_stretch(im: Image.Image) -> tuple[float, float]:
    """How far to stretch the stored image along x and y for square pixels: (1, 2.08) for a fax
    at 204 x 98 dpi. (1, 1) when the file states one resolution, none, or a pair further apart
    than MAX_PIXEL_ASPECT (no scanner's: a broken tag)."""
    try:
        x, y = (float(v) for v in im.info["dpi"][:2])
    except (KeyError, TypeError, ValueError):
        return 1.0, 1.0
    high, low = max(x, y), min(x, y)
    if low <= 0 or high / low > MAX_PIXEL_ASPECT or high - low <= SQUARE_WITHIN * high:
        return 1.0, 1.0
    return high / x, high / y


def stated_dpi(im: Image.Image) -> tuple[float | None, float | None]:
    """The horizontal resolution the file states (JFIF, EXIF, PNG pHYs or TIFF tags), None
    when it states none or one below MIN_STATED_DPI, and the vertical one where the file
    states another (a fax at 204 x 98), None otherwise. Pillow reports 1 for a missing TIFF
    resolution tag, and a page at 1 dpi would be hundreds of inches wide: no scan says so."""
    dpi = im.info.get("dpi")
    if not dpi or not dpi[0] or float(dpi[0]) < MIN_STATED_DPI:
        return None, None
    x = float(dpi[0])
    y = float(dpi[1]) if len(dpi) > 1 and dpi[1] else x
    return x, (y if MIN_STATED_DPI <= y != x else None)


def turned_sideways(im: Image.Image) -> bool:
    """Whether the image's EXIF orientation (or TIFF's) swaps its width and height."""
    return im.getexif().get(EXIF_ORIENTATION, 1) in (5, 6, 7, 8)


def _stretch_of(im: Image.Image, engine_size: bool) -> tuple[tuple[float, float], bool]:
    """The stretch to square pixels (with `engine_size`), and whether EXIF turns it sideways:
    read only for an image that needs stretching (most need none)."""
    stretch = pixel_stretch(im) if engine_size else (1.0, 1.0)
    return stretch, stretch != (1.0, 1.0) and turned_sideways(im)


def _stretched(size: tuple[int, int], stretch: tuple[float, float]) -> tuple[int, int]:
    return round(size[0] * stretch[0]), round(size[1] * stretch[1])


def _squared(image: np.ndarray, stretch: tuple[float, float], turned: bool) -> np.ndarray:
    """The decoded (EXIF-turned) image stretched by the stored image's `stretch`, to the size
    image_sizes gives for it."""
    if stretch == (1.0, 1.0):
        return image
    sx, sy = stretch[::-1] if turned else stretch
    height, width = image.shape[:2]
    return cv2.resize(image, _stretched((width, height), (sx, sy)), interpolation=cv2.INTER_LINEAR)


def _require_bytes(data: bytes) -> None:
    if not data:
        raise ImageDecodeError("decode_error", "empty input (0 bytes)")


@contextmanager
def _coded_errors() -> Iterator[None]:
    """Every failure inside as an ImageDecodeError: a bad image must become a result, never
    a crash of the batch."""
    try:
        yield
    except ImageDecodeError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageDecodeError("too_large", f"decompression bomb guard: {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - see the docstring
        raise ImageDecodeError("decode_error", _one_line(f"{type(exc).__name__}: {exc}")) from exc


def _checked_size(im: Image.Image, max_pixels: int) -> tuple[int, int]:
    width, height = im.size
    if width * height > max_pixels:
        raise ImageDecodeError(
            "too_large", f"{width}x{height} = {width * height} pixels exceeds the limit of {max_pixels}")
    return width, height


def _decode(data: bytes, max_pixels: int, engine_size: bool = False) -> np.ndarray:
    with _open(data) as im:
        _checked_size(im, max_pixels)
        if im.format in _JPEG_FORMATS and not _jpeg_complete(data):
            raise ImageDecodeError("decode_error", "truncated JPEG (no end-of-image marker after the last scan)")
        stretch, turned = _stretch_of(im, engine_size)
        if _cv2_can_decode(im):
            flags = _REDUCED_FLAGS[_reduction(im)] if engine_size else cv2.IMREAD_COLOR
            return _squared(_decode_cv2(data, flags), stretch, turned)
        if engine_size and _reduction(im) == 2:
            im.reduce = 1  # JPEG 2000: its wavelet levels hold the half-size image; the finest is not decoded
        return _squared(_decode_pillow(im), stretch, turned)


def _reduction(im: Image.Image) -> int:
    """2 for a JPEG that cv2 decodes, or a JPEG 2000, long enough to read at half size; else 1.
    Both formats give their half-size image for a fraction of the whole one's decoding: JPEG
    by DCT scaling, JPEG 2000 by leaving out its finest wavelet level (0.73 s against 1.91 s
    for a 6720 x 4192 page here; docs/using.md says how it was measured)."""
    reducible = (im.format in _JPEG_FORMATS and _cv2_can_decode(im)) or im.format == "JPEG2000"
    return 2 if reducible and max(im.size) > REDUCE_ABOVE_LONG_SIDE else 1


def _open(data: bytes) -> Image.Image:
    """Pillow's lazy open: reads the header only, restricted to the formats we accept."""
    try:
        with no_bomb_warning():
            return Image.open(io.BytesIO(data), formats=FORMATS)
    except UnidentifiedImageError as exc:
        raise ImageDecodeError("decode_error", f"image format not recognised ({_sniff(data)})") from exc


@contextmanager
def no_bomb_warning() -> Iterator[None]:
    """Pillow's DecompressionBombWarning ignored inside, every other warning as before."""
    with _WARNINGS_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        yield


def _pillow_would_warn(im: Image.Image) -> bool:
    """True when Pillow checks this size again while loading (TIFF does) and warns: only then
    does the load need no_bomb_warning, whose lock would otherwise serialise every decode."""
    return Image.MAX_IMAGE_PIXELS is not None and im.width * im.height > Image.MAX_IMAGE_PIXELS


def _sniff(data: bytes) -> str:
    """What the bytes look like, for an error message an operator can act on."""
    head = data[:64].lstrip()
    for magic, name in _NOT_IMAGES:
        if head[: len(magic)].lower() == magic.lower():
            return f"looks like {name}"
    return f"first bytes {data[:8].hex(' ')}"


def _one_line(text: str) -> str:
    return " ".join(text.split())[:500]


def _jpeg_complete(data: bytes) -> bool:
    """True when an end-of-image marker follows the last start-of-scan.

    cv2 (before 5.x) fills a truncated JPEG with grey and returns it as a success, and
    Pillow does the same when some library sets ImageFile.LOAD_TRUNCATED_IMAGES. Marker
    bytes FFD9/FFDA cannot occur inside entropy-coded data (FF is stuffed as FF00), and an
    EXIF thumbnail's markers all come before the main image's scans. The last end-of-image
    is found from the end and only the bytes after it are searched for a scan: searching
    back for the last scan read the whole file (0.37 ms a receipt).
    """
    end = data.rfind(b"\xff\xd9")
    return end >= 0 and data.find(b"\xff\xda", end) < 0


def _cv2_can_decode(im: Image.Image) -> bool:
    """Plain 8-bit colour or grey JPEG/PNG without transparency: cv2 gives what PaddleOCR's
    own reader gives (including EXIF orientation); transparency needs our compositing."""
    return im.format in _CV2_FORMATS and im.mode in ("RGB", "L") and "transparency" not in im.info


def _decode_cv2(data: bytes, flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if image is None:
        raise ImageDecodeError("decode_error", "corrupt or truncated image data")
    return image


def _decode_pillow(im: Image.Image) -> np.ndarray:
    with no_bomb_warning() if _pillow_would_warn(im) else nullcontext():
        im.load()  # the current frame (frame 0 of a fresh file), fully; raises when truncated
    ImageOps.exif_transpose(im, in_place=True)  # in place: no copy when there is no rotation
    return np.ascontiguousarray(_to_rgb(im)[..., ::-1])


def _to_rgb(im: Image.Image) -> np.ndarray:
    """HxWx3 uint8 RGB from any Pillow mode, keeping text visible."""
    if im.mode in _INT_MODES or im.mode == "F":
        return _grey_to_rgb(scale_to_uint8(np.asarray(im)))
    if im.mode in _ALPHA_MODES or "transparency" in im.info:
        return _composite(np.asarray(im if im.mode == "RGBA" else im.convert("RGBA")))
    if im.mode == "L":
        return _grey_to_rgb(np.asarray(im))
    return np.asarray(im if im.mode == "RGB" else im.convert("RGB"))


def _grey_to_rgb(grey: np.ndarray) -> np.ndarray:
    return np.repeat(grey[:, :, None], 3, axis=2)


_SAMPLE_FULL_SCALES = tuple((1 << bits) - 1 for bits in (8, 10, 12, 14, 16))


def scale_to_uint8(values: np.ndarray) -> np.ndarray:
    """Integer or float samples (grey or colour, any shape) to 0..255 by their value range,
    never by clipping: the one rule for decoded files and for arrays passed to the Python API.

    Integers within 0..65535 are samples of the smallest common depth that holds the largest
    (8, 10, 12, 14 or 16 bits): scanners and cameras store 12-bit samples in 16-bit files, and
    on a 16-bit scale their text would sit between 0 and 16 out of 255. Floats within 0..1 are
    normalised samples. Anything else (signed, 32-bit, arbitrary floats) is stretched from
    its own min..max, since there is no full scale to honour.
    """
    v = np.nan_to_num(values.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = (float(v.min()), float(v.max())) if v.size else (0.0, 0.0)
    if values.dtype.kind in "iu" and lo >= 0 and hi <= 65535:
        lo, hi = 0.0, float(next(full for full in _SAMPLE_FULL_SCALES if hi <= full))
    elif values.dtype.kind == "f" and lo >= 0 and hi <= 1:
        lo, hi = 0.0, 1.0
    if hi <= lo:
        return np.zeros(values.shape, np.uint8)
    return np.rint((v - lo) * (255.0 / (hi - lo))).astype(np.uint8)


def flatten_bgra(bgra: np.ndarray) -> np.ndarray:
    """HxWx4 uint8 BGRA (an array passed to the Python API) to BGR by the same rule as a
    transparent file: onto a background its visible content contrasts with."""
    return _composite(bgra, _LUMA_WEIGHTS[::-1])


def _composite(rgba: np.ndarray, luma_weights: np.ndarray = _LUMA_WEIGHTS) -> np.ndarray:
    """RGBA onto a background the visible content contrasts with (BGRA with the weights
    reversed: the mixing itself is the same for every channel).

    Transparent pixels often hide arbitrary colours, and text drawn in white on a
    transparent background vanishes on white paper: so the background is white unless the
    visible pixels are mostly light, then black.
    """
    rgb, alpha = rgba[..., :3], rgba[..., 3:]
    if alpha.min() == 255:
        return rgb
    mixed = rgb.astype(np.uint16) * alpha  # at most 255 * 255: uint16 is enough, and fast
    if not _mostly_light(rgb, alpha[..., 0], luma_weights):
        mixed += 255 * (255 - alpha.astype(np.uint16))
    mixed += 128
    return ((mixed + (mixed >> 8)) >> 8).astype(np.uint8)  # round(mixed / 255), exactly


def _mostly_light(rgb: np.ndarray, alpha: np.ndarray, luma_weights: np.ndarray) -> bool:
    """Alpha-weighted mean luma of the visible pixels above mid-grey, judged on a grid of
    about _SAMPLE_PIXELS pixels (a page's worth of text is plenty for a majority)."""
    step = max(1, round((alpha.size / _SAMPLE_PIXELS) ** 0.5))
    weights = alpha[::step, ::step].astype(np.float32)
    total = float(weights.sum())
    if total == 0:
        return False
    luma = rgb[::step, ::step].astype(np.float32) @ luma_weights
    return float((luma * weights).sum()) / total > 127.5


def from_pil(im: Image.Image) -> np.ndarray:
    """HxWx3 uint8 BGR from a PIL image already in memory (the Python API's input), with
    the same handling of 16-bit, float, palette and transparent modes as decoded files."""
    return np.ascontiguousarray(_to_rgb(im)[..., ::-1])
