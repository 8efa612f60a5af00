"""Multi-page TIFF: every page, one at a time, decoded like a single TIFF image is today.

A page is a frame that the TIFF does not mark as a reduced-resolution copy of another (the
levels of a pyramidal TIFF, as IIIF image servers keep their masters, or a thumbnail) or as a
transparency mask: those are how the page is stored, not more pages (page_frames).

Pillow reads the frame headers lazily, so a frame's size is checked against max_pixels before
its pixels cost memory; each frame then goes through pages.decode's Pillow path (the
same bit depths, palettes, transparency and orientation handling as a one-page TIFF). Frames are
decoded in-process: libtiff's work is bounded by the pixel cap, unlike a PDF page's content.
"""

from __future__ import annotations

import io

from PIL import Image

from pages.document import Document, DocumentError, EmbeddedLine, Page, PageInfo, PageLimits
from pages.decode import ImageDecodeError, decode_frame, no_bomb_warning, stated_dpi, turned_sideways


NEW_SUBFILE_TYPE, SUBFILE_TYPE = 254, 255
_REDUCED, _MASK = 1, 4  # NewSubfileType bits: a reduced-resolution copy, a transparency mask
_OLD_REDUCED = 2  # the old SubfileType's value for a reduced-resolution copy


def page_frames(im: Image.Image) -> list[int]:
    """The frames of an open TIFF that are pages, from their headers alone (no pixels): not
    those its NewSubfileType (or old SubfileType) marks as a reduced-resolution copy or a
    transparency mask. A frame whose header cannot be read counts as a page, for reading it to
    report what is wrong; all frames count when none is left."""
    frames = []
    for index in range(im.n_frames):  # n_frames walks the chain of frame headers
        try:
            im.seek(index)
            kind, old = im.tag_v2.get(NEW_SUBFILE_TYPE, 0), im.tag_v2.get(SUBFILE_TYPE, 1)
        except Exception:  # noqa: BLE001 - Pillow raises many kinds for a broken header
            kind, old = 0, 1
        if not kind & (_REDUCED | _MASK) and old != _OLD_REDUCED:
            frames.append(index)
    return frames or list(range(im.n_frames))


def reads_as_image(frames: list[int]) -> bool:
    """Whether a TIFF of these page frames is an image rather than a document: one page, stored
    first, where any TIFF reader (the image decoder among them) finds it. A lone page behind a
    thumbnail frame is a one-page document, so that the page, not the thumbnail, is read."""
    return frames == [0]


class TiffDocument(Document):
    """A TIFF's pages (page_frames); `dpi` is the resolution tag, None when the file has none."""

    kind = "tiff"

    def __init__(self, data: bytes | str, limits: PageLimits) -> None:
        self._limits = limits
        try:
            with no_bomb_warning():  # from a path, Pillow reads frames as they are asked for
                self._image = Image.open(io.BytesIO(data) if isinstance(data, bytes) else data, formats=["TIFF"])
            self._frames = page_frames(self._image)
            self.page_count = len(self._frames)
            self.is_image = reads_as_image(self._frames)
        except Image.DecompressionBombError as exc:
            raise DocumentError("too_large", f"page 1: {exc}", page=0) from exc
        except Exception as exc:  # noqa: BLE001 - Pillow raises many kinds for a broken file
            raise DocumentError("decode_error", f"not a readable TIFF ({type(exc).__name__}: {exc})") from exc

    def page_info(self, index: int) -> PageInfo:
        self._seek(index)
        width, height = self._image.size
        dpi_x, dpi_y = stated_dpi(self._image)
        return PageInfo(index, width, height, dpi_x, None, dpi_y)

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
            self._image.seek(self._frames[index])
        except Exception as exc:  # noqa: BLE001
            raise DocumentError("decode_error", f"page {index + 1}: {type(exc).__name__}: {exc}", index) from exc
