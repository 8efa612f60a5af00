"""The Python API: `Ocr(models=..., device=..., **options).read(image)`.

The same engine and model-set resolution as `docmill run`, for one image or many, without
files or a broker. Like the CLI it is a top floor: it loads the worker and converter
packages when an `Ocr` is made, never when the contracts are imported.

    from docmill import Ocr
    ocr = Ocr()                          # the default set, imported on first use
    for line in ocr.read("page.jpg").lines:
        print(line.text, line.score, line.box, line.angle)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from os import PathLike
from typing import TYPE_CHECKING, Any, Union

import numpy as np

from docmill.modelset import ModelSet
from docmill.options import EngineOptions
from docmill.settings import Settings

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

ImageInput = Union[str, "PathLike[str]", bytes, np.ndarray, "PILImage"]


@dataclass(frozen=True)
class OcrLine:
    """One recognised line: its text, confidence, 4-point box (clockwise from top-left, in the
    input's pixels), the angle (0 or 180) the line was read at, and its text block (a column
    part or paragraph, numbered in reading order)."""

    text: str
    score: float
    box: list[list[int]]
    angle: int
    angle_score: float | None = None
    block: int = 0


@dataclass(frozen=True)
class OcrPage:
    """One image's lines in reading order, its size, and, when page orientation ran
    (`use_doc_orientation=True`), the angle it was found turned by, clockwise."""

    width: int
    height: int
    lines: list[OcrLine] = field(default_factory=list)
    angle: int | None = None

    @property
    def text(self) -> str:
        return "\n".join(line.text for line in self.lines)


class Ocr:
    """An engine held for the lifetime of the object: create once, read many images.

    `models`: a preset name, set folder, version folder or `s3://` set (default: the
    DOCMILL_MODELS setting). `device`: auto, cpu or cuda. `options`: any engine option
    (`det_box_thresh=0.4`, `use_angle_cls=False`, ...), validated now, not at first read."""

    def __init__(self, models: str | None = None, device: str | None = None,
                 settings: Settings | None = None, batch_size: int | None = None, **options: Any):
        from converter.presets import ensure_model_set
        from worker.engine.pipeline import OcrEngine

        self.settings = settings or Settings()
        self.model_set = ModelSet.load(ensure_model_set(models or self.settings.models, self.settings))
        self._engine = OcrEngine.load(self.model_set, self.settings, device)
        self.options: EngineOptions = self._engine.options.merged(options)
        self._engine.check(self.options)
        self.batch_size = batch_size or self.settings.batch_images

    @property
    def providers(self) -> list[str]:
        return self._engine.providers

    def read(self, image: ImageInput) -> OcrPage:
        """The lines of one image. Raises ValueError for an image that cannot be read."""
        return self._pages([to_array(image, self.settings)])[0]

    def read_many(self, images: Iterable[ImageInput]) -> Iterator[OcrPage]:
        """Pages for many images, in input order, run in batches of at most `batch_size`
        images whose pixels stay within the pixel budget (`DOCMILL_PIXEL_BUDGET_MP`): a file
        or bytes is sized from its header and decoded only once its batch has room (a page
        over the budget runs alone). Only one batch of decoded images is held at a time."""
        from worker.engine.pipeline import page_pixels

        batch: list[np.ndarray] = []
        held = 0
        for image in images:
            raw = _read_path(image)
            cost = page_pixels(*_size_of(raw, self.settings), self.options)
            if batch and (len(batch) == self.batch_size or held + cost > self.settings.pixel_budget):
                yield from self._pages(batch)
                batch, held = [], 0
            batch.append(to_array(raw, self.settings))
            held += cost
        if batch:
            yield from self._pages(batch)

    def _pages(self, arrays: list[np.ndarray]) -> list[OcrPage]:
        pages = self._engine.run(arrays, self.options)
        return [OcrPage(width=a.shape[1], height=a.shape[0],
                        lines=[OcrLine(l.text, l.score, l.box, l.angle, l.angle_score, l.block) for l in page.lines],
                        angle=page.orientation.angle if page.orientation else None)
                for a, page in zip(arrays, pages)]


def to_array(image: ImageInput, settings: Settings) -> np.ndarray:
    """A numpy image from a path, encoded bytes, an array (grey, BGR or BGRA) or a PIL image
    (its RGB order turned into the engine's BGR). Files and bytes go through the same
    decoder, limits and error codes as `docmill run`."""
    from pages.decode import ImageDecodeError, decode_image

    if isinstance(image, np.ndarray):
        return image
    image = _read_path(image)
    if isinstance(image, (bytes, bytearray, memoryview)):
        try:
            return decode_image(bytes(image), settings.max_image_pixels)
        except ImageDecodeError as exc:
            raise ValueError(f"{exc.code}: {exc}") from exc
    return _from_pil(image)


def _read_path(image: ImageInput) -> ImageInput:
    """A path's bytes; any other input as it is."""
    if isinstance(image, (str, PathLike)):
        with open(image, "rb") as fh:
            return fh.read()
    return image


def _size_of(image: ImageInput, settings: Settings) -> tuple[int, int]:
    """(width, height) without decoding: from the header of bytes, the shape of an array,
    the size of a PIL image. Raises ValueError like to_array for bytes it cannot read."""
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
