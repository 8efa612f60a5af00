"""The Python API: `Ocr(models=..., device=..., **options).read(image)`.

The same engine and model-set resolution as `docmill run`, for one image or many, without
files or a broker. Like the CLI it is a top floor: it loads the worker and converter
packages when an `Ocr` is made, never when the contracts are imported.

    from docmill import Ocr
    ocr = Ocr()                          # the default set, imported on first use
    for line in ocr.read("page.jpg").lines:
        print(line.text, line.score, line.box, line.angle)
    for page in ocr.read_document("scan.pdf"):   # PDFs and multi-page TIFFs, page by page
        print(page.page, page.text)
"""

from __future__ import annotations

import io
import json
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union, get_args

import numpy as np

from docmill.documents import PdfText
from docmill.modelset import ModelSet
from docmill.options import EngineOptions, check_option_names
from docmill.result import ErrorCode
from docmill.settings import Settings

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

ImageInput = Union[str, "PathLike[str]", bytes, np.ndarray, "PILImage"]


@dataclass(frozen=True)
class OcrLine:
    """One recognised line: its text, confidence, 4-point box (clockwise from top-left, in the
    input's pixels), which way its text runs (0, 90, 180 or 270 degrees clockwise, against the
    page's `angle` when page orientation ran), and its text block (a column part or paragraph,
    numbered in reading order)."""

    text: str
    score: float
    box: list[list[int]]
    angle: int
    angle_score: float | None = None
    block: int = 0


@dataclass(frozen=True)
class OcrPage:
    """One image's lines in reading order, its size, and, when page orientation ran
    (`use_doc_orientation=True`), the angle it was found turned by, clockwise. A page of a
    document also has its 1-based number, the DPI it was rendered at (None: unknown; `dpi_y`
    the vertical one where a TIFF states another, a fax's), where
    its lines came from (`ocr`, or a PDF's own text layer with `pdf_text`). `error` ("code:
    message") is set, with no lines, for a page or a read_many image that could not be read."""

    width: int
    height: int
    lines: list[OcrLine] = field(default_factory=list)
    angle: int | None = None
    page: int | None = None
    dpi: float | None = None
    dpi_y: float | None = None
    text_from: str = "ocr"
    error: str | None = None

    @property
    def text(self) -> str:
        return "\n".join(line.text for line in self.lines)


@dataclass(frozen=True)
class _Planned:
    """One entry for a batch: its size when it needs the engine (None: `make` gives a finished
    page), how to make its pixels once the batch has room, and fields its page gets."""

    size: tuple[int, int] | None
    make: Callable[[], Pixels | OcrPage]
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _Scaled:
    """Pixels the engine reads at another size than the file's (a 600 dpi scan at half size,
    a fax stretched to square pixels), and the file's size as shown and scale back to it:
    the page comes back in the file's own pixels, as `docmill run` gives it."""

    image: np.ndarray
    size: tuple[int, int]
    scale: tuple[float, float]

    def back(self, page: OcrPage) -> OcrPage:
        from pages.decode import box_in_file

        lines = [replace(line, box=box_in_file(line.box, self.scale, self.size)) for line in page.lines]
        return replace(page, width=self.size[0], height=self.size[1], lines=lines)


Pixels = np.ndarray | _Scaled  # what the engine reads for one page


class Ocr:
    """An engine held for the lifetime of the object: create once, read many images.

    `models`: a preset name, set folder, version folder or `s3://` set (default: the
    DOCMILL_MODELS setting, else the device's default set, Settings.models_for). `device`:
    auto, cpu or cuda. `options`: any engine option
    (`det_box_thresh=0.4`, `use_angle_cls=False`, ...), validated now, not at first read."""

    def __init__(self, models: str | None = None, device: str | None = None,
                 settings: Settings | None = None, batch_size: int | None = None, **options: Any):
        from converter.presets import ensure_model_set
        from worker.engine.pipeline import OcrEngine
        from worker.engine.providers import CUDA, resolve_providers

        check_option_names(options, "Ocr()")
        EngineOptions().merged(options)  # a bad value fails here, before any model loads
        self.settings = settings or Settings()
        on_gpu = CUDA in resolve_providers(device or self.settings.device)
        self.model_set = ModelSet.load(ensure_model_set(models or self.settings.models_for(on_gpu), self.settings))
        self._engine = OcrEngine.load(self.model_set, self.settings, device)
        self.options: EngineOptions = self._engine.options.merged(options)
        self._engine.check(self.options)
        self.batch_size = batch_size or self.settings.batch_images

    @property
    def providers(self) -> list[str]:
        return self._engine.providers

    def read(self, image: ImageInput) -> OcrPage:
        """The lines of one image (or of a one-page document). Raises ValueError for an image
        that cannot be read, and for a document of several pages (use read_document)."""
        raw = _read_path(image)
        if isinstance(raw, (bytes, bytearray, memoryview)) and _is_document(bytes(raw)):
            with self._opened(bytes(raw)) as document:
                if document.page_count > 1:  # refused before any page is rendered or read
                    raise ValueError(f"this is a document of {document.page_count} pages: use read_document() "
                                     "or read_many()")
                first = next(self._document_pages(document, "ocr"))
            if first.error:
                raise ValueError(first.error)
            return first
        return self._run([(_engine_pixels(raw, self.settings), {})])[0]

    def read_document(self, document: str | PathLike[str] | bytes, pdf_text: PdfText = "ocr") -> Iterator[OcrPage]:
        """Each page of a PDF or multi-page TIFF (a path or its bytes), in order, rendered at
        DOCMILL_PDF_DPI under the same limits as `docmill run`, batched like read_many. A page
        that cannot be read comes back with its `error`; a document that cannot be opened at
        all raises ValueError ("encrypted: ...", "decode_error: ..."). `pdf_text` treats pages
        that already have a text layer as `docmill run --pdf-text` does."""
        with self._opened(str(document) if isinstance(document, (str, PathLike)) else bytes(document)) as opened:
            yield from self._document_pages(opened, pdf_text)

    def _opened(self, source: str | bytes) -> Any:
        """The document (a path or its bytes) open under the run's page limits; ValueError
        with its code first when it cannot be opened."""
        from pages.document import DocumentError, PageLimits
        from pages.source import open_document

        try:
            return open_document(source, PageLimits.from_settings(self.settings))
        except DocumentError as exc:
            raise ValueError(f"{exc.code}: {exc}") from exc

    def export(self, source: str | PathLike[str] | bytes, formats: str | Sequence[str] = ("pdf",),
               pdf_text: PdfText = "ocr") -> dict[str, bytes]:
        """The files `docmill run --format` writes for one image or document, by format:
        {"pdf": searchable PDF bytes, "hocr": ..., "alto": ..., "txt": ..., "json": the result}.
        `formats` is a list or, as `docmill run --format` takes it, a string ("pdf,alto").
        Raises ValueError for a bad format and for a source that could not be read (its
        error code first), like read()."""
        from docmill.documents import output_uri, parse_formats
        from docmill.messages import TaskItem
        from docmill.result import ModelsInfo
        from pages.source import SNIFF_BYTES, sniff_kind
        from worker.flow import RunContext, options_for
        from worker.local import Inputs, run_on_engine

        chosen = parse_formats(formats if isinstance(formats, str) else ",".join(formats), "export() formats")
        with tempfile.TemporaryDirectory(prefix="docmill-export-") as tmp:
            if isinstance(source, (str, PathLike)):
                path = Path(source)
            else:  # named as what it is: documents are told apart by name first, then by bytes
                path = Path(tmp) / f"input.{sniff_kind(bytes(source)[:SNIFF_BYTES])}"
                path.write_bytes(bytes(source))
            dst = str(Path(tmp) / "out" / f"{path.name}.json")
            context = RunContext(options_for(self.options, chosen),
                                 ModelsInfo(set=self.model_set.name, version=self.model_set.version),
                                 self.providers, pdf_text=pdf_text, formats=chosen)
            run_on_engine(self._engine, Inputs(items=[TaskItem(src=str(path), dst=dst)]), context, self.settings,
                          self.batch_size, quiet=True)
            error = json.loads(Path(dst).read_text("utf-8"))["error"]
            if error:
                raise ValueError(f"{error['code']}: {error['message']}")
            if missing := [fmt for fmt in chosen if not Path(output_uri(dst, fmt)).is_file()]:
                raise ValueError(f"write_error: the {', '.join(missing)} output could not be made (see the log)")
            return {"json": Path(dst).read_bytes(), **{fmt: Path(output_uri(dst, fmt)).read_bytes() for fmt in chosen}}

    def read_many(self, images: Iterable[ImageInput]) -> Iterator[OcrPage]:
        """Pages for many images, in input order, run in batches of at most `batch_size`
        images whose pixels stay within the pixel budget (`DOCMILL_PIXEL_BUDGET_MP`): a file
        or bytes is sized from its header and decoded only once its batch has room (a page
        over the budget runs alone). Only one batch of decoded images is held at a time. A
        PDF or multi-page TIFF among them gives each of its pages, as read_document does.

        An image that cannot be read (what read() would raise ValueError or OSError for)
        comes back in its place with `error` set and no lines, so one bad file among
        thousands never ends the loop; an object that is no image at all raises TypeError."""

        def planned() -> Iterator[_Planned]:
            for image in images:
                try:
                    raw = _read_path(image)
                    if isinstance(raw, (bytes, bytearray, memoryview)) and _is_document(bytes(raw)):
                        yield from (_Planned(None, lambda page=page: page) for page in self.read_document(bytes(raw)))
                        continue
                    size = _size_of(raw, self.settings)
                except (ValueError, OSError) as exc:
                    yield _Planned(None, lambda exc=exc: _unreadable(exc))
                    continue
                yield _Planned(size, lambda raw=raw: _array_or_unreadable(raw, self.settings))

        yield from self._batched(planned())

    def _document_pages(self, document: Any, pdf_text: PdfText) -> Iterator[OcrPage]:
        """The pages of an open document, rendered only once their batch has room."""
        from pages.document import DocumentError

        def planned() -> Iterator[_Planned]:
            for index in range(document.page_count):
                try:
                    info = document.page_info(index)
                except DocumentError as exc:
                    page = OcrPage(0, 0, page=index + 1, error=f"{exc.code}: {exc}")
                    yield _Planned(None, lambda page=page: page)
                    continue
                if info.has_text and pdf_text != "ocr":
                    yield _Planned(None, lambda info=info: self._given_page(document, info, pdf_text))
                    continue
                yield _Planned((info.width, info.height), lambda info=info: _rendered(document, info),
                               {"page": index + 1, "dpi": info.dpi, "dpi_y": info.dpi_y})

        yield from self._batched(planned())

    def _given_page(self, document: Any, info: Any, pdf_text: PdfText) -> OcrPage:
        """A page with a text layer: its embedded lines, or none (`skip`)."""
        lines = [] if pdf_text == "skip" else [
            OcrLine(line.text, 1.0, [[max(round(x), 0), max(round(y), 0)] for x, y in line.box], 0)
            for line in document.embedded_lines(info.index)]
        return OcrPage(info.width, info.height, lines, page=info.index + 1, dpi=info.dpi,
                       text_from="embedded" if pdf_text == "embedded" else "skipped")

    def _batched(self, planned: Iterable[_Planned]) -> Iterator[OcrPage]:
        """Run what needs the engine in budget-bounded batches, in order; what is already a
        page (given text, an error) passes through in its place."""
        from worker.engine.pipeline import page_pixels

        batch: list[tuple[Pixels | OcrPage, dict[str, Any]]] = []
        held, budget = 0, self.settings.pixel_budget()
        for plan in planned:
            cost = page_pixels(*plan.size, self.options) if plan.size else 0
            arrays = sum(1 for made, _ in batch if not isinstance(made, OcrPage))
            if arrays and (arrays == self.batch_size or held + cost > budget):
                yield from self._run(batch)
                batch, held = [], 0
            batch.append((plan.make(), plan.fields))
            held += cost
        if batch:
            yield from self._run(batch)

    def _run(self, batch: list[tuple[Pixels | OcrPage, dict[str, Any]]]) -> list[OcrPage]:
        """The batch's pages in order: its pixels read by the engine (pages read at another size
        given back in their file's pixels), its finished pages as they are."""
        pixels = [made for made, _ in batch if not isinstance(made, OcrPage)]
        read = iter(self._pages([made.image if isinstance(made, _Scaled) else made for made in pixels]))
        pages = []
        for made, fields in batch:
            if isinstance(made, OcrPage):
                pages.append(made)
                continue
            page = next(read)
            pages.append(replace(made.back(page) if isinstance(made, _Scaled) else page, **fields))
        return pages

    def _pages(self, arrays: list[np.ndarray]) -> list[OcrPage]:
        pages = self._engine.run(arrays, self.options)
        return [OcrPage(width=a.shape[1], height=a.shape[0],
                        lines=[OcrLine(l.text, l.score, l.box, l.angle, l.angle_score, l.block) for l in page.lines],
                        angle=page.orientation.angle if page.orientation else None)
                for a, page in zip(arrays, pages)]


def _engine_pixels(image: ImageInput, settings: Settings) -> Pixels:
    """What the engine reads of a path, encoded bytes, an array (grey, BGR or BGRA) or a PIL
    image (its RGB order turned into the engine's BGR). Files and bytes go through the same
    decoder, limits and error codes as `docmill run`, read at the same size (a 600 dpi scan
    at half size, a fax with square pixels), their pages given back in the file's pixels."""
    from pages.decode import ImageDecodeError, decode_image, file_pixels, image_sizes

    if isinstance(image, np.ndarray):
        return image
    image = _read_path(image)
    if not isinstance(image, (bytes, bytearray, memoryview)):
        return _from_pil(image)
    data = bytes(image)
    try:
        full, read = image_sizes(data, settings.max_image_pixels)
        pixels = decode_image(data, settings.max_image_pixels, engine_size=True)
    except ImageDecodeError as exc:
        raise ValueError(f"{exc.code}: {exc}") from exc
    size, scale = file_pixels(data, full, read, pixels)
    return pixels if scale == (1.0, 1.0) else _Scaled(pixels, size, scale)


def _array_or_unreadable(image: ImageInput, settings: Settings) -> Pixels | OcrPage:
    """The engine's BGR pixels of an image, or the page read_many gives in place of one it
    cannot read. Arrays are checked here too: a bad one fails alone, not its whole batch."""
    from worker.engine.pixels import as_bgr

    try:
        pixels = _engine_pixels(image, settings)
        return pixels if isinstance(pixels, _Scaled) else as_bgr(pixels)
    except (ValueError, OSError) as exc:
        return _unreadable(exc)


def _unreadable(exc: ValueError | OSError) -> OcrPage:
    """What read() would have raised, as an error page: "code: message", with the result
    schema's codes (a message from the decoder already starts with its code)."""
    if isinstance(exc, FileNotFoundError):
        return OcrPage(0, 0, error=f"not_found: {exc}")
    if isinstance(exc, PermissionError):
        return OcrPage(0, 0, error=f"access_denied: {exc}")
    if isinstance(exc, OSError):
        return OcrPage(0, 0, error=f"read_error: {exc}")
    code = str(exc).split(":", 1)[0]
    return OcrPage(0, 0, error=str(exc) if code in get_args(ErrorCode) else f"decode_error: {exc}")


def _is_document(data: bytes) -> bool:
    """PDF bytes, or a TIFF that is not one page stored first (pages.tiff.reads_as_image). A
    TIFF whose header cannot be read is no document: the image decoder then says what is
    wrong with it."""
    from pages.source import sniff_kind

    kind = sniff_kind(data)
    if kind == "tiff":
        from PIL import Image

        from pages.tiff import page_frames, reads_as_image

        try:
            with Image.open(io.BytesIO(data)) as im:
                return not reads_as_image(page_frames(im))
        except Exception:  # noqa: BLE001 - any failure here is the decoder's to report
            return False
    return kind == "pdf"


def _rendered(document: Any, info: Any) -> Pixels | OcrPage:
    """The page's pixels (read at another size for a fax's frame: its page comes back in the
    frame's pixels), or an error page when it cannot be rendered."""
    from pages.document import DocumentError

    try:
        rendered = document.render_page(info.index)
        if rendered.scale == (1.0, 1.0):
            return rendered.image
        return _Scaled(rendered.image, rendered.own_size, rendered.scale)
    except DocumentError as exc:
        return OcrPage(0, 0, page=info.index + 1, dpi=info.dpi, error=f"{exc.code}: {exc}")


def _read_path(image: ImageInput) -> ImageInput:
    """A path's bytes; any other input as it is."""
    if isinstance(image, (str, PathLike)):
        with open(image, "rb") as fh:
            return fh.read()
    return image


def _size_of(image: ImageInput, settings: Settings) -> tuple[int, int]:
    """(width, height) without decoding: from the header of bytes, the shape of an array,
    the size of a PIL image. Raises ValueError like _engine_pixels for bytes it cannot read."""
    from pages.decode import ImageDecodeError, image_size

    if isinstance(image, np.ndarray):
        return image.shape[1], image.shape[0]
    if isinstance(image, (bytes, bytearray, memoryview)):
        try:
            return image_size(bytes(image), settings.max_image_pixels)
        except ImageDecodeError as exc:
            raise ValueError(f"{exc.code}: {exc}") from exc
    return _pil(image).size


def _from_pil(image: Any) -> np.ndarray:
    from pages.decode import from_pil

    return from_pil(_pil(image))


def _pil(image: Any) -> Any:
    """`image` when it is a PIL image; TypeError naming what is accepted otherwise."""
    from PIL import Image

    if not isinstance(image, Image.Image):
        raise TypeError(f"expected a path, bytes, a numpy array or a PIL image, got {type(image).__name__}")
    return image
