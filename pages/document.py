"""The page source's interface: a Document, the pages and embedded text it hands out, the limits
they are made under, and the coded error for a page (or a whole document) that could not be made.

Kept apart from the PDF and TIFF readers so that both, and the render child, share these
without importing each other.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self

if TYPE_CHECKING:  # the render child imports this module and stays without numpy
    import numpy as np


def descriptor_path(fd: int) -> str:
    """The path open_document reads a file by when this process holds it only by descriptor
    (an unlinked copy, so a killed process leaves nothing behind)."""
    return f"{_own_descriptors()}{fd}"


def held_descriptor(path: str) -> int | None:
    """The descriptor a descriptor_path names (the render child is handed it), else None."""
    prefix = _own_descriptors()
    rest = path[len(prefix):] if path.startswith(prefix) else ""
    return int(rest) if rest.isdigit() else None


def _own_descriptors() -> str:
    return f"/proc/{os.getpid()}/fd/"  # asked each time: a forked worker has a pid of its own


DocumentErrorCode = Literal["decode_error", "too_large", "encrypted", "render_timeout", "render_memory"]


class DocumentError(Exception):
    """Why a document or one of its pages could not be read; `code` is the docmill.result
    error code, `page` the 0-based page index when the error is one page's (None: the document's).

    Codes: `decode_error` (corrupt, truncated, not a PDF/TIFF, or no pages at all), `too_large`
    (a page that does not fit `max_pixels` even at `min_dpi`), `encrypted` (needs a password or an
    unsupported security handler), `render_timeout` and `render_memory` (a page cut off by the
    render child's wall-clock or memory limit).
    """

    def __init__(self, code: DocumentErrorCode, message: str, page: int | None = None) -> None:
        super().__init__(message)
        self.code: DocumentErrorCode = code
        self.page = page

    def __reduce__(self) -> tuple[type[DocumentError], tuple[str, str, int | None]]:
        """Keeps code and page when the error crosses the pipe from the render child."""
        return DocumentError, (self.code, str(self), self.page)


@dataclass(frozen=True)
class PageLimits:
    """How pages are made. The integrator fills it from Settings.

    - dpi: PDF render resolution. 150 by bench/pdf_dpi.py: the lowest DPI at which pp-ocrv6 read
      every character of 6-12 pt text, born-digital, scanned and poorly scanned; det sees any
      page at its 1280 px long side from ~116 DPI up, and 200 or 300 read no better at 1.8 or 4
      times the pixels.
    - max_pixels: cap on one page's pixels (like Settings.max_image_pixels). A PDF page over it
      is rendered at the DPI that fits, down to `min_dpi`; a TIFF frame over it is refused.
    - min_dpi: below this, body text is unreadable (a 10 pt x-height is 3.6 px at 50 DPI), so a
      page that fits only lower is refused with `too_large` rather than rendered as noise.
    - render_timeout_s: wall-clock limit on opening a PDF and on each page's render or text.
    - render_memory_mb: address space the render child may add to what it holds idle with the
      document loaded. A page at `max_pixels` needs 3 bytes a pixel for its bitmap alone, plus
      pdfium's decoded page images: keep it well above 3 * max_pixels bytes.
    """

    dpi: float = 150.0
    max_pixels: int = 100_000_000
    min_dpi: float = 50.0
    render_timeout_s: float = 60.0
    render_memory_mb: int = 2048

    @classmethod
    def from_settings(cls, settings: Any) -> PageLimits:
        """The limits docmill's Settings set (read by name: this package imports no docmill
        module, so that the producer and the render child can use it alone)."""
        return cls(dpi=settings.pdf_dpi, max_pixels=settings.max_image_pixels, min_dpi=settings.pdf_min_dpi,
                   render_timeout_s=settings.render_timeout_s, render_memory_mb=settings.render_memory_mb)

    def __post_init__(self) -> None:
        if not 0 < self.min_dpi <= self.dpi:
            raise ValueError(f"need 0 < min_dpi <= dpi, got min_dpi={self.min_dpi}, dpi={self.dpi}")
        if self.max_pixels < 1 or self.render_timeout_s <= 0 or self.render_memory_mb < 1:
            raise ValueError("max_pixels, render_timeout_s and render_memory_mb must be positive")


@dataclass(frozen=True)
class PageInfo:
    """A page's size in the pixels it renders to, known without rendering it.

    `dpi` is the resolution those pixels stand for: the render DPI for a PDF page (lower than
    PageLimits.dpi when the pixel cap lowered it), the TIFF's resolution tag, or None when the
    TIFF has none. `has_text` says whether a PDF page already has a text layer (None for TIFF).
    `dpi_y` is the vertical resolution where the TIFF states one other than `dpi` (a fax at 204
    x 98), None otherwise.
    """

    index: int
    width: int
    height: int
    dpi: float | None
    has_text: bool | None
    dpi_y: float | None = None


@dataclass(frozen=True)
class Page:
    """One rendered page: `image` is HxWx3 uint8 BGR, as pages.decode gives for images.
    `scale`: the page's own pixels per pixel of `image` (x, y), where it was read at another
    size (a TIFF frame stated at two resolutions, a fax, is read stretched to square pixels);
    its results are given in its own pixels."""

    index: int
    image: np.ndarray
    dpi: float | None
    has_text: bool | None
    scale: tuple[float, float] = (1.0, 1.0)

    @property
    def own_size(self) -> tuple[int, int]:
        """The page's (width, height) in its own pixels, which its results are given in."""
        height, width = self.image.shape[:2]
        return round(width * self.scale[0]), round(height * self.scale[1])


Point = tuple[float, float]


@dataclass(frozen=True)
class EmbeddedLine:
    """A line of a PDF page's own text. `box` is 4 points, clockwise from the start of the text's
    top edge, in the pixels of the page as rendered (same DPI and /Rotate as render_page)."""

    text: str
    box: tuple[Point, Point, Point, Point]


class Document(ABC):
    """An open PDF or multi-page TIFF, read one page at a time: only the current page is ever
    held in memory, whatever the document's length. Pages are 0-based. A page's failure raises
    DocumentError for that page and leaves the document usable for the others.

    One thread at a time: the worker renders a task's pages in turn. Close it (or use `with`)
    to end its render child at once rather than when it is collected.
    """

    kind: Literal["pdf", "tiff"]
    page_count: int
    is_image: bool = False  # an image in a document's format (a one-page TIFF): read with an image's result layout

    @abstractmethod
    def page_info(self, index: int) -> PageInfo:
        """The page's pixel size, DPI and text layer, without rendering it."""

    @abstractmethod
    def render_page(self, index: int) -> Page:
        """The page as an image, within the pixel, time and memory limits."""

    @abstractmethod
    def embedded_lines(self, index: int) -> list[EmbeddedLine]:
        """The page's own text layer as lines (none for a TIFF or a scanned page)."""

    @abstractmethod
    def close(self) -> None:
        """Frees what the document holds (the PDF's render child); idempotent."""

    def _check_index(self, index: int) -> None:
        if not 0 <= index < self.page_count:
            raise IndexError(f"page index {index} outside 0..{self.page_count - 1}")

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
