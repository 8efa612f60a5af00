"""Multi-page TIFF: every frame, one at a time, decoded like a single TIFF image is today.

Pillow reads the frame headers lazily, so a frame's size is checked against max_pixels before
its pixels cost memory; each frame then goes through pages.decode's Pillow path (the
same bit depths, palettes, transparency and orientation handling as a one-page TIFF). Frames are
decoded in-process: libtiff's work is bounded by the pixel cap, unlike a PDF page's content.
"""

from __future__ import annotations

import io

from PIL import Image, TiffImagePlugin

from pages.document import Document, DocumentError, EmbeddedLine, Page, PageInfo, PageLimits
from pages.decode import ImageDecodeError, decode_frame, no_bomb_warning, turned_sideways


class TiffDocument(Document):
    """A TIFF's frames as pages; `dpi` is the resolution tag, None when the file has none."""

    kind = "tiff"

    def __init__(self, data: bytes | str, limits: PageLimits) -> None:
        self._limits = limits
        try:
            with no_bomb_warning():  # from a path, Pillow reads frames as they are asked for
                self._image = Image.open(io.BytesIO(data) if isinstance(data, bytes) else data, formats=["TIFF"])
            self.page_count = self._image.n_frames  # walks the chain of frame headers, no pixels
        except Image.DecompressionBombError as exc:
            raise DocumentError("too_large", f"page 1: {exc}", page=0) from exc
        except Exception as exc:  # noqa: BLE001 - Pillow raises many kinds for a broken file
            raise DocumentError("decode_error", f"not a readable TIFF ({type(exc).__name__}: {exc})") from exc

    def page_info(self, index: int) -> PageInfo:
        self._seek(index)
        width, height = self._image.size
        return PageInfo(index, width, height, self._dpi(), None)

    def render_page(self, index: int) -> Page:
        """The frame as the engine reads it: stretched to square pixels when its resolutions
        differ (a fax), with the scale back to its own pixels."""
        info = self.page_info(index)
        width, height = (info.height, info.width) if turned_sideways(self._image) else (info.width, info.height)
        try:
            image = decode_frame(self._image, self._limits.max_pixels, engine_size=True)
        except ImageDecodeError as exc:  # a broken or oversized frame is that page's result
            raise DocumentError(exc.code, f"page {index + 1}: {exc}", index) from exc
        return Page(index, image, info.dpi, None, (width / image.shape[1], height / image.shape[0]))

    def embedded_lines(self, index: int) -> list[EmbeddedLine]:
        self._check_index(index)
        return []

    def close(self) -> None:
        self._image.close()

    def _seek(self, index: int) -> None:
        self._check_index(index)
        try:
            self._image.seek(index)
        except Exception as exc:  # noqa: BLE001
            raise DocumentError("decode_error", f"page {index + 1}: {type(exc).__name__}: {exc}", index) from exc

    def _dpi(self) -> float | None:
        """The horizontal resolution in dots per inch; None without a tag or an absolute unit."""
        dpi = self._image.info.get("dpi")  # Pillow's (1, 1) stands in for a missing tag
        return float(dpi[0]) if dpi and TiffImagePlugin.X_RESOLUTION in self._image.tag_v2 else None
