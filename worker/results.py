"""Engine output + source facts -> a docmill.result/v1 document."""

from __future__ import annotations

from collections.abc import Callable

from docmill.result import (ImageInfo, Line, ModelsInfo, OcrResult, PageOrientation, ResultError, SourceInfo,
                            Timings, Word)
from pages.decode import box_in_file
from worker.engine.pipeline import PageLines
from worker.items import DecodedItem


def build_result(
    decoded: DecodedItem, output: PageLines | ResultError | None, models: ModelsInfo, providers: list[str]
) -> OcrResult:
    """The result for one item; `output` is its lines, or the error that stopped it."""
    item = decoded.item
    source = SourceInfo(uri=item.src, bytes=decoded.size, sha256=decoded.sha256, etag=item.etag)
    image = ImageInfo(width=decoded.width, height=decoded.height) if decoded.width else None
    timings = Timings(decode=round(decoded.decode_ms, 3))
    if isinstance(output, PageLines):
        stages = {k: round(v, 3) for k, v in output.timings_ms.items()}
        timings = Timings(decode=timings.decode, **stages,
                          total=round(timings.decode + sum(stages.values()), 3))
        fit = _to_file_pixels(decoded)
        lines = [Line(text=l.text, score=l.score, box=fit(l.box), angle=l.angle, angle_score=l.angle_score,
                      block=l.block,
                      words=None if l.words is None else [Word(text=w.text, score=w.score, box=fit(w.box))
                                                          for w in l.words])
                 for l in output.lines]
        turn = output.orientation
        orientation = PageOrientation(angle=turn.angle, score=round(turn.score, 6)) if turn else None
        return OcrResult(source=source, image=image, models=models, providers=providers,
                         orientation=orientation, page=decoded.page, lines=lines, timings_ms=timings)
    error = output or decoded.error or ResultError(code="engine_error", message="no output for this image")
    timings = Timings(decode=timings.decode, total=timings.decode)
    return OcrResult(source=source, image=image, models=models, providers=providers,
                     page=decoded.page, timings_ms=timings, error=error)


def _to_file_pixels(decoded: DecodedItem) -> Callable[[list[list[int]]], list[list[int]]]:
    """Boxes from the pixels the engine read to the file's own: the same boxes, unless the page
    was read at another size (pages.decode's `engine_size`: half size, or square pixels)."""
    if decoded.scale == (1.0, 1.0) or not decoded.width or not decoded.height:
        return lambda box: box
    size = (decoded.width, decoded.height)
    return lambda box: box_in_file(box, decoded.scale, size)
