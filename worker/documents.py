"""Documents (PDF, multi-page TIFF) on the one item path: a document item becomes its pages,
each read, OCRed and written like an image, and then one document result.

- `DocumentSpool` copies a document from storage to a local temporary file once, shared by
  every task of this process that uses the same (source, ETag) while any of them does: the
  render child reads that file as pages need it, so the worker never holds a document whole.
- `DocumentReader` is one item's pages: the document opened once, its pages rendered one at a
  time (a Document serves one thread), each admitted by the pixel budget before it is drawn.
  With `--pdf-text skip|embedded`, a page that already has a text layer is left out of OCR or
  read from that layer instead.
- `DocumentPart` is what the flow hands the caller once an item's last page is done: the
  pages' summaries, for the document result (whole documents) or the job state (page ranges).
  A run that is stopping reads no more of a document's pages (`stop_reading`), and a resumed
  one (`docmill run --skip-existing`) keeps the pages whose results are current
  (`reuse_current`), so a long document stops promptly and goes on where it stopped.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from docmill.inputs import may_be_document
from docmill.documents import DocumentResult, PageSummary, PdfText, blocked_page_folder, page_result_uri
from docmill.messages import TaskItem
from docmill.result import DocumentPage, ModelsInfo, ResultError, SourceInfo, TextSource
from docmill.settings import Settings
from docmill.storage import StorageError, is_s3_uri, open_storage
from pages.document import Document, DocumentError, EmbeddedLine, PageInfo, PageLimits, descriptor_path
from pages.source import SNIFF_BYTES, open_document, sniff_kind
from worker.engine.pipeline import PageLines, TextLine
from worker.items import Admit, DecodedItem, Unread

log = logging.getLogger(__name__)


def is_document_item(item: TaskItem) -> bool:
    """Items opened as documents: page ranges the producer split, and every name but an image's
    (docmill.inputs.may_be_document). The bytes decide in the end: a one-page TIFF stays an
    image, and anything that is no PDF or TIFF goes down the image path, which reports what it is."""
    return item.pages is not None or may_be_document(PurePosixPath(item.src).name)


@dataclass
class SpooledFile:
    path: str
    size: int
    sha256: str
    users: int = 0
    fd: int | None = None  # our copy's descriptor (it has no name: closing it frees it); None: the input itself

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class DocumentSpool:
    """Local copies of documents, one per (source, ETag), freed when the last user lets go.
    A copy is unlinked as soon as it is made and reached through /proc/<pid>/fd (the render
    child opens it there), so a worker killed mid-document leaves no file behind. A local
    input needs no copy: its own file is read in place (only hashed here). Linux only, like
    the render child."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._files: dict[tuple[str, str | None], SpooledFile] = {}
        self._lock = threading.Lock()
        self._copying: dict[tuple[str, str | None], threading.Lock] = {}

    def acquire(self, item: TaskItem) -> SpooledFile:
        """The document's local copy, copied now unless a task here already holds it. Raises
        StorageError."""
        key = (item.src, item.etag)
        with self._lock:
            copying = self._copying.setdefault(key, threading.Lock())
        with copying:  # one copy per document, however many tasks want it at once
            with self._lock:
                spooled = self._files.get(key)
                if spooled is not None:
                    spooled.users += 1
                    return spooled
            spooled = self._copy(item)
            with self._lock:
                kept = self._files.setdefault(key, spooled)  # another copier may have won a race
                kept.users += 1
            if kept is not spooled:
                spooled.close()
            return kept

    def release(self, item: TaskItem) -> None:
        key = (item.src, item.etag)
        with self._lock:
            spooled = self._files[key]
            spooled.users -= 1
            if spooled.users:
                return
            del self._files[key]
            self._copying.pop(key, None)
        spooled.close()

    def _copy(self, item: TaskItem) -> SpooledFile:
        if not is_s3_uri(item.src):
            hashing = _HashingWriter(None)
            size = open_storage(item.src, self.settings).read_into(
                item.src, hashing, max_bytes=self.settings.max_document_bytes)
            return SpooledFile(os.path.abspath(item.src), size, hashing.sha256.hexdigest())
        fd, path = tempfile.mkstemp(prefix="docmill-doc-")
        os.unlink(path)
        try:
            with os.fdopen(os.dup(fd), "wb") as target:
                hashing = _HashingWriter(target)
                size = open_storage(item.src, self.settings).read_into(
                    item.src, hashing, max_bytes=self.settings.max_document_bytes)
        except BaseException:
            os.close(fd)
            raise
        return SpooledFile(descriptor_path(fd), size, hashing.sha256.hexdigest(), fd=fd)


class _HashingWriter:
    """Hashes what is written through it, to `target` (None: nowhere)."""

    def __init__(self, target: object | None):
        self.target = target
        self.sha256 = hashlib.sha256()

    def write(self, chunk: bytes) -> int:
        self.sha256.update(chunk)
        return self.target.write(chunk) if self.target is not None else len(chunk)  # type: ignore[attr-defined]


@dataclass
class DocumentPart:
    """An item's pages are all done: their summaries (in page order), or why the document could
    not be read at all (then no page was)."""

    item: TaskItem
    kind: str | None
    page_count: int | None
    size: int | None
    sha256: str | None
    pages: list[PageSummary] = field(default_factory=list)
    error: ResultError | None = None
    permanent: bool = True  # False: a storage error that a retry of the task may cure
    unread: int = 0  # pages left unread because the run stopped: then `pages` has only those done
    reused: int = 0  # pages whose earlier results were current and kept (a resumed run)

    @property
    def retryable(self) -> bool:
        return self.error is not None and not self.permanent

    @property
    def key(self) -> str:
        return self.item.src


def document_result(part: DocumentPart, models: ModelsInfo, pdf_text: PdfText,
                    pages: list[PageSummary] | None = None) -> DocumentResult:
    """The document result for a whole document; `pages` replaces the part's own when the
    pages were gathered from several tasks (a split document)."""
    item = part.item
    return DocumentResult(source=SourceInfo(uri=item.src, bytes=part.size, sha256=part.sha256, etag=item.etag),
                          kind=part.kind, page_count=part.page_count if part.error is None else None,
                          pdf_text=pdf_text, models=models, pages=part.pages if pages is None else pages,
                          error=part.error)


class DocumentReader:
    """One document item: the pages it covers, rendered one at a time."""

    def __init__(self, item: TaskItem, spool: DocumentSpool, settings: Settings, pdf_text: PdfText,
                 stopping: Callable[[], bool] | None = None):
        self.item, self.settings, self.pdf_text = item, settings, pdf_text
        self._stopping = stopping
        self._spool = spool
        self._spooled: SpooledFile | None = None
        self.document: Document | None = None
        self.error: ResultError | None = None
        self.permanent = True
        self.numbers: list[int] = []
        self._summaries: dict[int, PageSummary] = {}
        self._lock = threading.Lock()
        self._last_load: Future | None = None
        self._released = False
        self._image_bytes = False
        self._stopped = False
        self._reused = 0

    def open(self) -> None:
        """Copy and open the document, and work out its pages. A failure is kept in `error`;
        a page range then still has its pages, each to get that error as its result, so that
        the split document's last page is still recorded and its result written."""
        self._open()
        if self.numbers or (self.error is None and self.document is None):
            return
        if self.item.pages is not None:
            self.numbers = list(range(self.item.pages[0], self.item.pages[1] + 1))

    def _open(self) -> None:
        try:
            self._spooled = self._spool.acquire(self.item)
            with open(self._spooled.path, "rb") as f:
                self._image_bytes = sniff_kind(f.read(SNIFF_BYTES)) == "image" and self.item.pages is None
            if self._image_bytes:  # no PDF or TIFF in these bytes: the image path tells what they are
                return
            self.document = open_document(self._spooled.path, PageLimits.from_settings(self.settings))
        except StorageError as exc:
            self.error, self.permanent = ResultError(code=exc.code, message=str(exc)[:500]), exc.permanent
            return
        except DocumentError as exc:
            self.error = ResultError(code=exc.code, message=str(exc)[:500])
            return
        blocked = None if self.is_single_image else blocked_page_folder(self.item.dst)
        if blocked is not None:
            self.error = ResultError(code="write_error", message=blocked)
            return
        first, last = self.item.pages or (1, self.document.page_count)
        if last > self.document.page_count:
            self.error = ResultError(code="decode_error", message=f"pages {first}..{last} asked for, but the "
                                     f"document has {self.document.page_count} now: it changed after it was listed")
            return
        self.numbers = list(range(first, last + 1))

    @property
    def is_single_image(self) -> bool:
        """A whole one-page TIFF (pages.tiff.reads_as_image), or bytes that are no document at
        all: an image, with an image's result layout."""
        return self._image_bytes or (self.item.pages is None and self.document is not None
                                     and self.document.is_image)

    def read_whole(self) -> bytes | None:
        """The bytes, for the image path; None when they are over the image size limit (the
        image path reads them from storage then, and refuses them as too_large)."""
        assert self._spooled is not None
        if self._spooled.size > self.settings.max_image_bytes:
            return None
        with open(self._spooled.path, "rb") as f:
            return f.read()

    @property
    def page_count(self) -> int:
        """The document's pages: as the producer counted them for a page range, else as
        opened, else (a document that could not be read) the last of its range."""
        return self.item.page_count or (self.document.page_count if self.document else self.numbers[-1])

    def page_item(self, number: int) -> TaskItem:
        return TaskItem(src=self.item.src, dst=page_result_uri(self.item.dst, number, self.page_count),
                        etag=self.item.etag)

    def submit_page(self, io: Executor, number: int, admit: Admit) -> Future:
        """Load page `number` on the pool once the page before it is loaded: a Document serves
        one thread, and pages waiting their turn must not hold pool threads. A page whose turn
        comes once the run is stopping is Unread."""
        loaded: Future = Future()

        def load(_: object = None) -> None:
            try:
                if self._stopping is not None and self._stopping():
                    loaded.set_result(Unread(self.page_item(number), page=True))
                else:
                    loaded.set_result(self.load_page(number, admit))
            except BaseException as exc:  # noqa: BLE001 - delivered to whoever waits on the page
                loaded.set_exception(exc)

        with self._lock:
            previous, self._last_load = self._last_load, loaded
        if previous is None:
            io.submit(load)
        else:
            previous.add_done_callback(lambda _: io.submit(load))
        return loaded

    def load_page(self, number: int, admit: Admit) -> DecodedItem:
        """Page `number` (1-based) ready for the engine, or its coded error, or its given
        lines (`--pdf-text`); never raises for the page's own faults."""
        spooled = self._spooled
        decoded = DecodedItem(item=self.page_item(number), size=spooled.size if spooled else None,
                              sha256=spooled.sha256 if spooled else None)
        decoded.page = DocumentPage(index=number, count=self.page_count)
        if self.error is not None or self.document is None:  # the document itself could not be read
            decoded.error = self.error
            decoded.permanent = self.permanent
            return decoded
        start = time.perf_counter()
        try:
            info = self.document.page_info(number - 1)
            decoded.width, decoded.height = info.width, info.height
            decoded.page = decoded.page.model_copy(update={"dpi": info.dpi, "dpi_y": info.dpi_y})
            if info.has_text and self.pdf_text != "ocr":
                decoded.given = self._given(info)
                text = "embedded" if self.pdf_text == "embedded" else "skipped"
                decoded.page = decoded.page.model_copy(update={"text": text})
            else:
                waited = time.perf_counter()
                decoded.ticket = admit(info.width, info.height)
                start += time.perf_counter() - waited
                rendered = self.document.render_page(number - 1)
                decoded.image, decoded.scale = rendered.image, rendered.scale
                if rendered.scale != (1.0, 1.0):  # results in the page's own pixels, as it is shown
                    decoded.width, decoded.height = rendered.own_size
        except DocumentError as exc:
            decoded.error = ResultError(code=exc.code, message=str(exc)[:500])
            decoded.release()
        decoded.decode_ms = (time.perf_counter() - start) * 1000
        return decoded

    def _given(self, info: PageInfo) -> PageLines:
        """The page's own text as lines (embedded), or none (skip)."""
        if self.pdf_text == "skip":
            return PageLines()
        assert self.document is not None
        return PageLines(lines=[_text_line(line) for line in self.document.embedded_lines(info.index)])

    def record(self, summary: PageSummary) -> None:
        self._summaries[summary.index] = summary

    def reuse_current(self, stored: Callable[[TaskItem, TextSource], PageSummary | None], io: Executor,
                      present: set[str] | None) -> None:
        """Record, before any page is read, the pages whose stored results `stored` finds
        current for the text each would get now; each check is a read from storage, so they
        run on `io`, and only for the pages whose results are `present` (None: unknown, try
        each). Only the others are then `to_read`."""
        numbers = [n for n in self.numbers if present is None or self.page_item(n).dst in present]
        expected = {number: self._text_for(number) for number in numbers}
        checked = list(io.map(lambda n: stored(self.page_item(n), expected[n]) if expected[n] else None, numbers))
        for summary in checked:
            if summary is not None:
                self.record(summary)
                self._reused += 1

    def _text_for(self, number: int) -> TextSource | None:
        """What the page's result says its text is when read now: OCR, or from its PDF text
        layer as --pdf-text says. None when its page cannot be looked at (it is read again,
        and fails with its own error)."""
        if self.pdf_text == "ocr":
            return "ocr"
        assert self.document is not None
        try:
            has_text = self.document.page_info(number - 1).has_text
        except DocumentError:
            return None
        return ("embedded" if self.pdf_text == "embedded" else "skipped") if has_text else "ocr"

    @property
    def to_read(self) -> list[int]:
        """The pages still to read, in order: those not kept from an earlier run."""
        return [n for n in self.numbers if n not in self._summaries]

    def stop_reading(self) -> None:
        """No more of its pages will be read (the run is stopping): its part then lists only
        the pages done, and counts the rest as unread."""
        self._stopped = True

    def part(self) -> DocumentPart:
        """The item's pages, once all are recorded (or why there are none); closes it."""
        self.close()
        spooled = self._spooled
        pages = [self._summaries[n] for n in self.numbers if not self._stopped or n in self._summaries]
        return DocumentPart(item=self.item, kind=self.document.kind if self.document else None,
                            page_count=self.document.page_count if self.document else None,
                            size=spooled.size if spooled else None, sha256=spooled.sha256 if spooled else None,
                            pages=pages, error=self.error, permanent=self.permanent,
                            unread=len(self.numbers) - len(pages), reused=self._reused)

    def close(self) -> None:
        """End the render child and let go of the local copy (idempotent)."""
        if self.document is not None:
            self.document.close()
        if self._spooled is not None and not self._released:
            self._released = True
            self._spool.release(self.item)


def _text_line(line: EmbeddedLine) -> TextLine:
    box = [[max(int(round(x)), 0), max(int(round(y)), 0)] for x, y in line.box]
    return TextLine(text=line.text, score=1.0, box=box, angle=0, angle_score=None)
