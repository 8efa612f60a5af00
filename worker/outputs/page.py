"""The one input every writer takes: a page's result and what the result alone does not say
(its pixel size, the resolution those pixels stand for, its image's name and bytes).

A document is a sequence of OutputPage, one per page in page order; a single image is a
sequence of one. Coordinates everywhere are the result's: pixels of the image the engine
read, origin top-left, which for a PDF page is the page as rendered at `dpi` with its
/Rotate applied.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from PIL import Image

from docmill.result import OcrResult
from pages.decode import EXIF_ORIENTATION, stated_dpi, turned_sideways


@dataclass(frozen=True)
class OutputPage:
    """One page for the writers.

    - `result`: its docmill.result/v1 (a failed page has an error and no lines; writers still
      give it a page, empty, so page numbers and counts stay those of the document);
    - `width`, `height`: the size in pixels of the image the engine read (after EXIF
      orientation; for a PDF page, the render);
    - `dpi`: the resolution those pixels stand for, None when unknown (the searchable PDF then
      sizes an image page at searchable_pdf.DEFAULT_DPI); `dpi_y` the vertical one where the
      file states another (a fax at 204 x 98), None otherwise;
    - `image_name`: the file name hOCR and ALTO record for the page (for a page of a document,
      the document's name);
    - `image`: the encoded image file, its bytes or its path, for an image page of a
      searchable PDF built from images (None for a PDF page: the original PDF is given to
      searchable_pdf instead);
    - `frame`: for a page of a multi-page TIFF, its frame in `image` (the whole TIFF, by path
      for a document's pages, so that neither it nor any frame is held in memory before the
      PDF needs it); None for an image file read whole;
    - `text_layer`: the PDF page already has text of its own (born digital), so the searchable
      PDF adds none over it: its text would be found twice.
    """

    result: OcrResult
    width: int
    height: int
    dpi: float | None = None
    image_name: str = ""
    image: bytes | str | None = None
    text_layer: bool = False
    frame: int | None = None
    dpi_y: float | None = None

    @property
    def number(self) -> int:
        """The 1-based page number within its document (1 for a single image)."""
        return self.result.page.index if self.result.page else 1

    @classmethod
    def of_image(cls, result: OcrResult, data: bytes, image_name: str) -> OutputPage:
        """The page of an image file, its size and stated resolution read from the file's
        header (a 90-degree EXIF orientation swaps the sides, as the decoder turns it)."""
        with Image.open(io.BytesIO(data)) as im:
            width, height = im.size
            if turned_sideways(im):
                width, height = height, width
            dpi, dpi_y = stated_dpi(im)
            return cls(result, width, height, dpi, image_name, data, dpi_y=dpi_y)


class PageWriter(Protocol):
    """A format's file written a page at a time into the target it was made with, so that a
    long document's file is never built whole in memory: `add` each page in order, then
    `finish`."""

    def add(self, page: OutputPage) -> None: ...

    def finish(self) -> None: ...


def written(writer: Callable[[BinaryIO, int], PageWriter], pages: Sequence[OutputPage]) -> bytes:
    """The whole file for `pages`, made by a PageWriter in memory."""
    buffer = io.BytesIO()
    made = writer(buffer, len(pages))
    for page in pages:
        made.add(page)
    made.finish()
    return buffer.getvalue()


def exif_orientation(im: Image.Image) -> int:
    """The image's EXIF orientation (1 to 8; 1, upright, when it states none)."""
    value = im.getexif().get(EXIF_ORIENTATION, 1)
    return value if value in range(1, 9) else 1
