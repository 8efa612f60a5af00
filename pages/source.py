"""The page source's entry points: tell a document from an image, and open one.

    kind = sniff_kind(data)                      # "pdf" | "tiff" | "image"
    with open_document(data, PageLimits(...)) as doc:
        for index in range(doc.page_count):
            page = doc.render_page(index)        # DocumentError for this page only

PDFs are parsed and rendered in a render child (sandbox.py) under PageLimits' time and memory
limits; TIFF frames are decoded in-process (tiff.py).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from pages.document import Document, DocumentError, EmbeddedLine, Page, PageInfo, PageLimits

Kind = Literal["pdf", "tiff", "image"]

SNIFF_BYTES = 1024  # pdfium, like Acrobat, finds %PDF anywhere in the first 1024 bytes
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # classic and BigTIFF


def sniff_kind(head: bytes) -> Kind:
    """What the bytes are, from their start (the first SNIFF_BYTES are enough): a document is
    told by its magic bytes, never by its name; anything else is left to the image decoder."""
    if b"%PDF" in head[:SNIFF_BYTES]:
        return "pdf"
    if head[:4] in _TIFF_MAGIC:
        return "tiff"
    return "image"



def open_document(data: bytes | str, limits: PageLimits = PageLimits()) -> Document:
    """The document in `data` (its bytes, or the path of a file holding them, which is then read
    as pages need it, never whole), its page count known. Raises DocumentError: `encrypted`;
    `decode_error` for bytes that are no readable PDF or TIFF, or a PDF with no pages;
    `render_timeout`/`render_memory` when opening the PDF breaks the limits. RuntimeError only
    when the render child cannot start at all: this machine's fault, not the document's."""
    head = data[:SNIFF_BYTES] if isinstance(data, bytes) else _head(data)
    kind = sniff_kind(head)
    if kind == "pdf":
        return PdfDocument(data, limits)
    if kind == "tiff":
        from pages.tiff import TiffDocument  # Pillow, loaded only for TIFFs

        return TiffDocument(data, limits)
    raise DocumentError("decode_error", "not a PDF or TIFF document" if head else "empty input (0 bytes)")


def _head(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read(SNIFF_BYTES)


class PdfDocument(Document):
    """A PDF held open by its own render child, for the life of this object."""

    kind = "pdf"

    def __init__(self, data: bytes | str, limits: PageLimits) -> None:
        from pages.sandbox import RenderChild  # loaded only for PDFs

        self._child = RenderChild(data, limits)
        self.page_count = self._child.page_count

    def page_info(self, index: int) -> PageInfo:
        self._check_index(index)
        return self._child.query("info", index)

    def render_page(self, index: int) -> Page:
        self._check_index(index)
        info, pixels = self._child.render(index)
        image = np.frombuffer(pixels, np.uint8).reshape(info.height, info.width, 3)  # writable: a shared mapping
        return Page(index, image, info.dpi, info.has_text)

    def embedded_lines(self, index: int) -> list[EmbeddedLine]:
        self._check_index(index)
        return self._child.query("lines", index)

    def close(self) -> None:
        self._child.close()
