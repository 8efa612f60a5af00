"""The files `--format` asks for, beside each JSON result: OUT/<rel>.txt, .hocr, .alto.xml and
.pdf, for each image and for each whole document.

An image's are made from its result and its own bytes as soon as its result is written. A
document's are assembled once its last page is done, by whoever writes its document result,
from the page results as stored (so the runner that assembles them need not have read the
pages itself) and from the original document, read from its spooled file: a PDF keeps its
pages and gains a text layer; a TIFF's frames become image pages.

Memory stays flat with the document's length (bench.output_memory). Page results are read as
each page is written (LazyPages), once for every format: the text formats take each page
(worker.outputs.page.PageWriter) as the PDF maker reads it (FedPages). Each file is made in a temporary
file that stays in memory while small and goes to disk past IN_MEMORY_OUTPUT_BYTES, and is
written to storage from there in chunks: a searchable PDF is as large as its scan, yet a
PDF's is made with a few MB, and a TIFF's holds searchable_pdf.PAGES_PER_PART page images at
a time.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from functools import partial
from pathlib import PurePosixPath
from typing import BinaryIO, overload

from PIL import Image
from pydantic import ValidationError

from docmill.documents import DocumentResult, OutputFormat, output_uri, page_result_uri
from docmill.messages import TaskItem
from docmill.result import OcrResult
from docmill.storage import StorageError, open_storage
from pages.document import PageLimits
from pages.source import open_document
from pages.tiff import page_frames
from worker.documents import DocumentSpool
from worker.outputs import searchable_pdf
from worker.outputs.alto import AltoWriter
from worker.outputs.hocr import HocrWriter
from worker.outputs.page import OutputPage, PageWriter
from worker.outputs.text import TextWriter
from worker.writer import ResultWriter

log = logging.getLogger(__name__)

CONTENT_TYPES = {"txt": "text/plain; charset=utf-8", "hocr": "text/html; charset=utf-8",
                 "alto": "application/xml", "pdf": "application/pdf"}
_PAGE_WRITERS: dict[str, Callable[[BinaryIO, int], PageWriter]] = {"txt": TextWriter, "hocr": HocrWriter,
                                                                   "alto": AltoWriter}
IN_MEMORY_OUTPUT_BYTES = 8 << 20
MakePdf = Callable[[Sequence[OutputPage], BinaryIO], None]  # the searchable PDF of these pages, written to the target


class DeliverableWriter:
    """Writes the asked-for formats through the result writer (same retries, same metadata)."""

    def __init__(self, writer: ResultWriter, spool: DocumentSpool):
        self.writer = writer
        self.spool = spool

    def image(self, result: OcrResult, dst: str, etag: str | None, data: bytes, formats: Sequence[OutputFormat]) -> None:
        """An image's formats, from its result and its file. Raises StorageError."""
        pages = [OutputPage.of_image(result, data, PurePosixPath(result.source.uri).name)]
        self._write(formats, pages, searchable_pdf.pdf_from_images, result, dst, etag)

    def document(self, result: DocumentResult, item: TaskItem, formats: Sequence[OutputFormat]) -> None:
        """A whole document's formats, from its stored page results and the original; nothing
        for a document that could not be read. Raises StorageError."""
        if not formats or result.error is not None or not result.page_count:
            return
        pages = LazyPages(result.page_count, partial(self._page, item, result))
        self._write(formats, pages, partial(self._pdf, result, item), result, item.dst, item.etag)

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

    def _write(self, formats: Sequence[OutputFormat], pages: Sequence[OutputPage], make_pdf: MakePdf,
               result: OcrResult | DocumentResult, dst: str, etag: str | None) -> None:
        """Each format's file made (output_files) and written beside the result at `dst`."""
        with output_files(formats, pages, make_pdf) as made:
            for fmt in formats:
                self.writer.write_output(made[fmt], output_uri(dst, fmt), CONTENT_TYPES[fmt], result, etag)

    def _page(self, item: TaskItem, document: DocumentResult, index: int) -> OutputPage:
        """Page `index` (0-based) as stored. Raises StorageError, also for a stored result
        that is no longer a valid one."""
        assert document.page_count, "only a document that was read has pages to load"
        uri = page_result_uri(item.dst, index + 1, document.page_count)
        try:
            result = OcrResult.model_validate_json(open_storage(uri, self.writer.settings).read_bytes(uri))
        except ValidationError as exc:
            raise StorageError(f"{uri}: not a valid page result ({exc.error_count()} errors)", code="write_error",
                               permanent=True) from exc
        width, height = (result.image.width, result.image.height) if result.image else (1, 1)
        return OutputPage(result, width, height, result.page.dpi if result.page else None,
                          PurePosixPath(document.source.uri).name, dpi_y=result.page.dpi_y if result.page else None)

    def _pdf(self, result: DocumentResult, item: TaskItem, pages: Sequence[OutputPage], target: BinaryIO) -> None:
        """The original under a text layer, read from its spooled file as the PDF is made: a
        PDF's pages as they are, a TIFF's frames as image pages."""
        spooled = self.spool.acquire(item)
        try:
            if result.kind == "pdf":
                texts = _pages_with_text(spooled.path, PageLimits.from_settings(self.writer.settings))
                searchable_pdf.pdf_with_text(
                    spooled.path, LazyPages(len(pages), lambda i: replace(pages[i], text_layer=i + 1 in texts)), target)
                return
            with Image.open(spooled.path) as im:
                frames = page_frames(im)
            if len(frames) != len(pages):
                raise ValueError(f"the TIFF has {len(frames)} pages but {len(pages)} page results were given")
            searchable_pdf.pdf_from_images(
                LazyPages(len(pages), lambda i: replace(pages[i], image=spooled.path, frame=frames[i])), target)
        finally:
            self.spool.release(item)


class LazyPages(Sequence[OutputPage]):
    """`count` pages, each made by `load(index)` when asked for and not kept: a long
    document's page results are never all in memory (a dense page's take about a MB)."""

    def __init__(self, count: int, load: Callable[[int], OutputPage]):
        self.count = count
        self.load = load

    def __len__(self) -> int:
        return self.count

    @overload
    def __getitem__(self, index: int) -> OutputPage: ...

    @overload
    def __getitem__(self, index: slice) -> list[OutputPage]: ...

    def __getitem__(self, index: int | slice) -> OutputPage | list[OutputPage]:
        if isinstance(index, slice):
            return [self.load(i) for i in range(*index.indices(self.count))]
        if not -self.count <= index < self.count:
            raise IndexError(index)
        return self.load(index % self.count)

    def __iter__(self) -> Iterator[OutputPage]:
        """Each page in turn (an IndexError inside `load` is an error, not the end)."""
        return (self.load(index) for index in range(self.count))


class FedPages(LazyPages):
    """`pages` as the PDF maker reads them, each given to `feed` (the text writers) the first
    time it is loaded, in order: a document's page results are then read once for all its
    formats, not once for the text and again for the PDF. `finish` feeds what the maker did
    not reach in order (it read a page twice, or stopped early), loading it again."""

    def __init__(self, pages: Sequence[OutputPage], feed: Callable[[OutputPage], None]):
        super().__init__(len(pages), self._load)
        self.pages = pages
        self.feed = feed
        self.fed = 0

    def finish(self) -> None:
        self._feed_until(self.count)

    def _load(self, index: int) -> OutputPage:
        self._feed_until(index)
        page = self.pages[index]
        if index == self.fed:
            self.feed(page)
            self.fed += 1
        return page

    def _feed_until(self, index: int) -> None:
        while self.fed < index:
            self.feed(self.pages[self.fed])
            self.fed += 1


def _pages_with_text(path: str, limits: PageLimits) -> set[int]:
    """The numbers of the PDF's pages that have text of their own (born digital)."""
    with open_document(path, limits) as document:
        return {index + 1 for index in range(document.page_count) if document.page_info(index).has_text}


@contextmanager
def output_files(formats: Sequence[str], pages: Sequence[OutputPage],
                 make_pdf: MakePdf | None = None) -> Iterator[dict[str, BinaryIO]]:
    """The formats' files by format, removed when done with. Every format is made in one
    pass over `pages`, each page read once: the text formats take each page as `make_pdf`
    (needed only when a PDF is asked for) reads it. A failure to make a file is this item's
    write_error, never the run's."""
    with ExitStack() as stack:
        files: dict[str, BinaryIO] = {fmt: stack.enter_context(tempfile.SpooledTemporaryFile(  # type: ignore[misc]
            max_size=IN_MEMORY_OUTPUT_BYTES, prefix="docmill-out-")) for fmt in formats}
        writers = {fmt: _PAGE_WRITERS[fmt](target, len(pages)) for fmt, target in files.items() if fmt != "pdf"}

        def feed(page: OutputPage) -> None:
            for fmt, writer in writers.items():
                with _making(fmt):
                    writer.add(page)

        fed = FedPages(pages, feed)
        if "pdf" in files:
            with _making("pdf"):
                make_pdf(fed if writers else pages, files["pdf"])  # type: ignore[misc]
        if writers:
            fed.finish()
            for fmt, writer in writers.items():
                with _making(fmt):
                    writer.finish()
        yield files


@contextmanager
def _making(fmt: str) -> Iterator[None]:
    """A writer's failure, as the write_error of the item whose `fmt` file it was making."""
    try:
        yield
    except StorageError:
        raise
    except Exception as exc:  # noqa: BLE001 - a writer's failure costs this file, reported as such
        log.error("cannot make the %s file: %s: %s", fmt, type(exc).__name__, exc)
        raise StorageError(f"cannot make the {fmt} file: {type(exc).__name__}: {exc}"[:500],
                           code="write_error", permanent=True) from exc
