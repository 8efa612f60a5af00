"""PDF pages through pypdfium2: open, size, render, embedded text. Everything here runs inside
the render child (sandbox.py), where a hostile page can only cost that process; bench/pdf_dpi.py
also calls it in-process to measure what the child adds.

Geometry: pdfium applies the page's /Rotate and crop box when it renders, and its page size
(FPDF_GetPageWidthF/HeightF) already has /Rotate applied. Embedded text boxes go through
FPDF_PageToDevice with the very size and flags of the render, so they land on the rendered pixels.
"""

from __future__ import annotations

import ctypes
import functools
import math
import mmap
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from pages.document import DocumentError, EmbeddedLine, PageInfo, PageLimits, Point

Writable = TypeVar("Writable", bytearray, mmap.mmap)

_POINTS_PER_INCH = 72.0
_ENCRYPTED = frozenset({pdfium_c.FPDF_ERR_PASSWORD, pdfium_c.FPDF_ERR_SECURITY})
# Text rectangles of one line: they overlap vertically by at least this share of the smaller
# one, and the next starts no further right of the line's end than this many line heights
# (wider gaps are table cells or columns, kept apart as OCR would).
_SAME_LINE_OVERLAP = 0.5
_MAX_WORD_GAP = 1.5
_SPACE_GAP = 0.15  # a gap wider than this many line heights is a word break


def open_pdf(data: bytes | str) -> pdfium.PdfDocument:
    """The document (bytes, or a file path pdfium reads as it needs) with forms ready to draw;
    `encrypted` or `decode_error` (also for no pages)."""
    source = open(data, "rb") if isinstance(data, str) else data  # noqa: SIM115 - pdfium reads it lazily
    try:
        # A file object rather than the path: pypdfium2 resolves a path, which breaks on the
        # /proc/<pid>/fd/N of a spooled copy that has no name left; autoclose ends it with the PDF.
        pdf = pdfium.PdfDocument(source, autoclose=isinstance(data, str))
    except pdfium.PdfiumError as exc:
        if source is not data:
            source.close()
        raise _open_error(exc) from exc
    pdf.init_forms()  # filled-in form fields are page content too
    return pdf


def _open_error(exc: pdfium.PdfiumError) -> DocumentError:
    if exc.err_code in _ENCRYPTED:
        return DocumentError("encrypted", "the PDF is encrypted: it needs a password "
                             "or an unsupported security handler")
    if exc.err_code == pdfium_c.FPDF_ERR_SUCCESS:  # loaded, but the page tree holds no page
        return DocumentError("decode_error", "the PDF has no pages")
    return DocumentError("decode_error", f"not a readable PDF (pdfium: {exc})")


@contextmanager
def _page(pdf: pdfium.PdfDocument, index: int) -> Iterator[pdfium.PdfPage]:
    """One page, closed after use so that only the current page's objects stay in memory."""
    try:
        page = pdf[index]
    except pdfium.PdfiumError as exc:
        raise DocumentError("decode_error", f"page {index + 1}: cannot be loaded ({exc})", page=index) from exc
    try:
        yield page
    finally:
        page.close()


def fit_dpi(width_pt: float, height_pt: float, limits: PageLimits, index: int) -> float:
    """limits.dpi, or lower so that the page fits max_pixels; `too_large` below min_dpi."""
    if not (width_pt > 0 and height_pt > 0 and math.isfinite(width_pt * height_pt)):
        raise DocumentError("decode_error", f"page {index + 1}: size {width_pt}x{height_pt} pt has no area", page=index)
    dpi = float(min(limits.dpi, _POINTS_PER_INCH * math.sqrt(limits.max_pixels / (width_pt * height_pt))))
    while _pixels(width_pt, height_pt, dpi) > limits.max_pixels:  # ceil() rounding: a step or two
        dpi *= 0.999
    if dpi < limits.min_dpi:
        raise DocumentError(
            "too_large", f"page {index + 1}: {width_pt / 72:.0f}x{height_pt / 72:.0f} in exceeds "
            f"{limits.max_pixels} pixels even at {limits.min_dpi:g} dpi", page=index)
    return dpi


def _render_scale(dpi: float) -> float:
    """Pixels per point at this DPI, a hair under: pdfium gives page sizes as 32-bit floats,
    so a scan of 1080 pixels placed at 150 dpi measures 518.40002 pt, and pypdfium2's
    ceil(size * scale) would make it 1081 pixels, resampling every pixel of the scan (and
    changing what OCR reads). The hair (a millionth) cannot lose a real pixel's worth."""
    return dpi / _POINTS_PER_INCH * (1 - 1e-6)


def _size_px(width_pt: float, height_pt: float, dpi: float) -> tuple[int, int]:
    """The bitmap size pypdfium2's render gives at this DPI."""
    scale = _render_scale(dpi)
    return math.ceil(width_pt * scale), math.ceil(height_pt * scale)


def _pixels(width_pt: float, height_pt: float, dpi: float) -> int:
    width, height = _size_px(width_pt, height_pt, dpi)
    return width * height


def _info(page: pdfium.PdfPage, index: int, limits: PageLimits) -> PageInfo:
    width_pt, height_pt = page.get_size()
    dpi = fit_dpi(width_pt, height_pt, limits, index)
    width, height = _size_px(width_pt, height_pt, dpi)
    return PageInfo(index, width, height, dpi, _has_text(page))


def _has_text(page: pdfium.PdfPage) -> bool:
    textpage = page.get_textpage()
    try:
        return textpage.count_chars() > 0
    finally:
        textpage.close()


def page_info(pdf: pdfium.PdfDocument, index: int, limits: PageLimits) -> PageInfo:
    """Size at the render DPI and whether there is a text layer, without rendering."""
    with _page(pdf, index) as page:
        return _info(page, index, limits)


def render(pdf: pdfium.PdfDocument, index: int, limits: PageLimits,
           allocate: Callable[[int], Writable] = bytearray) -> tuple[PageInfo, Writable]:
    """The page as packed BGR rows (height * width * 3 bytes), /Rotate applied, on white,
    drawn straight into the writable buffer that `allocate(size)` gives (no copy after)."""
    with _page(pdf, index) as page:
        info = _info(page, index, limits)
        out = allocate(info.width * info.height * 3)
        target = (ctypes.c_ubyte * (info.width * info.height * 3)).from_buffer(out)
        # pypdfium2 sizes the bitmap as _size_px does, and BGR is its format for an opaque fill.
        bitmap = page.render(scale=_render_scale(info.dpi), may_draw_forms=True,
                             bitmap_maker=functools.partial(pdfium.PdfBitmap.new_native, buffer=target))
        bitmap.close()
        del bitmap, target  # releases `out` (an mmap cannot close while exported)
        return info, out


def embedded_lines(pdf: pdfium.PdfDocument, index: int, limits: PageLimits) -> list[EmbeddedLine]:
    """The page's own text as lines, boxed in the pixels render() gives.

    pdfium's text rectangles are runs of characters on one line within one text object; runs
    that continue the same line are merged, so a line written piece by piece is one line.
    """
    with _page(pdf, index) as page:
        info = _info(page, index, limits)
        textpage = page.get_textpage()
        try:
            runs = [_run(textpage, i) for i in range(textpage.count_rects())]
        finally:
            textpage.close()
        to_pixels = _PageToPixels(page, info)
        return [EmbeddedLine(text, to_pixels.box(rect)) for text, rect in _merge_runs(runs) if text]


Rect = tuple[float, float, float, float]  # left, bottom, right, top in PDF points


def _run(textpage: pdfium.PdfTextPage, index: int) -> tuple[str, Rect]:
    rect = textpage.get_rect(index)
    return " ".join(textpage.get_text_bounded(*rect).split()), rect


def _merge_runs(runs: list[tuple[str, Rect]]) -> list[tuple[str, Rect]]:
    """Consecutive runs on the same line (in pdfium's content order) joined into one."""
    lines: list[tuple[str, Rect]] = []
    for text, rect in runs:
        if lines and _continues(lines[-1][1], rect):
            last_text, last = lines[-1]
            gap = rect[0] - last[2]
            joiner = " " if gap > _SPACE_GAP * (last[3] - last[1]) else ""
            merged = (min(last[0], rect[0]), min(last[1], rect[1]), max(last[2], rect[2]), max(last[3], rect[3]))
            lines[-1] = (f"{last_text}{joiner}{text}".strip(), merged)
        else:
            lines.append((text, rect))
    return lines


def _continues(line: Rect, run: Rect) -> bool:
    """The run sits on the line's band and starts just after its end (left-to-right text)."""
    overlap = min(line[3], run[3]) - max(line[1], run[1])
    height = min(line[3] - line[1], run[3] - run[1])
    gap = run[0] - line[2]
    return height > 0 and overlap >= _SAME_LINE_OVERLAP * height and -height < gap <= _MAX_WORD_GAP * height


class _PageToPixels:
    """PDF points to the rendered bitmap's pixels, by pdfium's own transform (FPDF_PageToDevice)."""

    def __init__(self, page: pdfium.PdfPage, info: PageInfo) -> None:
        self._page, self._size = page, (info.width, info.height)
        self._x, self._y = ctypes.c_int(), ctypes.c_int()

    def point(self, x: float, y: float) -> Point:
        pdfium_c.FPDF_PageToDevice(self._page, 0, 0, *self._size, 0, x, y, self._x, self._y)
        return float(self._x.value), float(self._y.value)

    def box(self, rect: Rect) -> tuple[Point, Point, Point, Point]:
        """Corners in reading order: top-left, top-right, bottom-right, bottom-left of the text."""
        left, bottom, right, top = rect
        return (self.point(left, top), self.point(right, top), self.point(right, bottom), self.point(left, bottom))
