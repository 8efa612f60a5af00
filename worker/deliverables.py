"""The files `--format` asks for, beside each JSON result: OUT/<rel>.txt, .hocr, .alto.xml and
.pdf, for each image and for each whole document.

An image's are made from its result and its own bytes as soon as its result is written. A
document's are assembled once its last page is done, by whoever writes its document result,
from the page results as stored (so the runner that assembles them need not have read the
pages itself) and from the original document, read from its spooled file: a PDF keeps its
pages and gains a text layer; a TIFF's frames become image pages. Each file is made in a
temporary file that stays in memory while small and goes to disk past
IN_MEMORY_OUTPUT_BYTES, and is written to storage from there in chunks (bench.pdf_memory): a
searchable PDF is as large as its scan, yet a PDF's is made with a few MB whatever its length,
and a TIFF's holds only searchable_pdf.PAGES_PER_PART page images at a time.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from functools import partial
from pathlib import PurePosixPath
from typing import BinaryIO

from PIL import Image

from docmill.documents import DocumentResult, OutputFormat, output_uri, page_result_uri
from docmill.messages import TaskItem
from docmill.result import OcrResult
from docmill.storage import StorageError, open_storage
from pages.document import PageLimits
from pages.source import open_document
from pages.tiff import page_frames
from worker.documents import DocumentSpool
from worker.outputs import alto, hocr, searchable_pdf, text
from worker.outputs.page import OutputPage
from worker.writer import ResultWriter

log = logging.getLogger(__name__)

CONTENT_TYPES = {"txt": "text/plain; charset=utf-8", "hocr": "text/html; charset=utf-8",
                 "alto": "application/xml", "pdf": "application/pdf"}
_PAGE_WRITERS: dict[str, Callable[[Sequence[OutputPage]], bytes]] = {"txt": text.text, "hocr": hocr.hocr,
                                                                     "alto": alto.alto}
IN_MEMORY_OUTPUT_BYTES = 8 << 20


class DeliverableWriter:
    """Writes the asked-for formats through the result writer (same retries, same metadata)."""

    def __init__(self, writer: ResultWriter, spool: DocumentSpool):
        self.writer = writer
        self.spool = spool

    def image(self, result: OcrResult, dst: str, etag: str | None, data: bytes, formats: Sequence[OutputFormat]) -> None:
        """An image's formats, from its result and its file. Raises StorageError."""
        pages = [OutputPage.of_image(result, data, PurePosixPath(result.source.uri).name)]
        for fmt in formats:
            with output_file(fmt, pages, partial(searchable_pdf.pdf_from_images, pages)) as made:
                self.writer.write_output(made, output_uri(dst, fmt), CONTENT_TYPES[fmt], result, etag)

    def document(self, result: DocumentResult, item: TaskItem, formats: Sequence[OutputFormat]) -> None:
        """A whole document's formats, from its stored page results and the original; nothing
        for a document that could not be read. Raises StorageError."""
        if not formats or result.error is not None or not result.page_count:
            return
        pages = [self._page(item, number, result) for number in range(1, result.page_count + 1)]
        for fmt in formats:
            with output_file(fmt, pages, partial(self._pdf, result, item, pages)) as made:
                self.writer.write_output(made, output_uri(item.dst, fmt), CONTENT_TYPES[fmt], result, item.etag)

    def finish_document(self, result: DocumentResult, item: TaskItem, formats: Sequence[OutputFormat]) -> str | None:
        """The document result, then its formats; the code the document counts as failed
        with (`write_error`, its own error, or its first failed page's), None when done."""
        try:
            self.writer.write_document(result, item.dst, item.etag)
            self.document(result, item, formats)
        except StorageError:  # logged where it happened
            return "write_error"
        if result.error is not None:
            return result.error.code
        return next((page.error.code for page in result.pages if page.error is not None), None)

    def _page(self, item: TaskItem, number: int, document: DocumentResult) -> OutputPage:
        uri = page_result_uri(item.dst, number)
        result = OcrResult.model_validate_json(open_storage(uri, self.writer.settings).read_bytes(uri))
        width, height = (result.image.width, result.image.height) if result.image else (1, 1)
        return OutputPage(result, width, height, result.page.dpi if result.page else None,
                          PurePosixPath(document.source.uri).name)

    def _pdf(self, result: DocumentResult, item: TaskItem, pages: list[OutputPage], target: BinaryIO) -> None:
        """The original under a text layer, read from its spooled file as the PDF is made: a
        PDF's pages as they are, a TIFF's frames as image pages."""
        spooled = self.spool.acquire(item)
        try:
            if result.kind == "pdf":
                texts = _pages_with_text(spooled.path, PageLimits.from_settings(self.writer.settings))
                searchable_pdf.pdf_with_text(spooled.path, [replace(p, text_layer=p.number in texts) for p in pages],
                                             target)
                return
            with Image.open(spooled.path) as im:
                frames = page_frames(im)
            searchable_pdf.pdf_from_images([replace(page, image=spooled.path, frame=frame)
                                            for frame, page in zip(frames, pages)], target)
        finally:
            self.spool.release(item)


def _pages_with_text(path: str, limits: PageLimits) -> set[int]:
    """The numbers of the PDF's pages that have text of their own (born digital)."""
    with open_document(path, limits) as document:
        return {index + 1 for index in range(document.page_count) if document.page_info(index).has_text}


@contextmanager
def output_file(fmt: str, pages: Sequence[OutputPage], make_pdf: Callable[[BinaryIO], None]) -> Iterator[BinaryIO]:
    """A format's file, made from `pages` (a PDF by `make_pdf`), removed when done with; a
    failure to make it is this item's write_error, never the run's."""
    with tempfile.SpooledTemporaryFile(max_size=IN_MEMORY_OUTPUT_BYTES, prefix="docmill-out-") as target:
        try:
            if fmt == "pdf":
                make_pdf(target)
            else:
                target.write(_PAGE_WRITERS[fmt](pages))
        except Exception as exc:  # noqa: BLE001 - a writer's failure costs this file, reported as such
            log.error("cannot make the %s file: %s: %s", fmt, type(exc).__name__, exc)
            raise StorageError(f"cannot make the {fmt} file: {type(exc).__name__}: {exc}"[:500],
                               code="write_error", permanent=True) from exc
        yield target  # type: ignore[misc]  # a SpooledTemporaryFile is a binary file

