"""Engine output + source facts -> a docmill.result/v1 document."""

from __future__ import annotations

from docmill.result import (ImageInfo, Line, ModelsInfo, OcrResult, ResultError, SourceInfo, Timings,
                            storage_metadata)
from docmill.settings import Settings
from docmill.storage import open_storage
from worker.engine.pipeline import PageLines
from worker.items import DecodedItem


def build_result(
    item: DecodedItem, output: PageLines | ResultError | None, models: ModelsInfo, providers: list[str]
) -> OcrResult:
    """The result for one item; `output` is its lines, or the error that stopped it."""
    source = SourceInfo(uri=item.ref.uri, bytes=item.size, sha256=item.sha256, etag=item.ref.etag)
    image = None
    if item.image is not None:
        image = ImageInfo(width=int(item.image.shape[1]), height=int(item.image.shape[0]))
    timings = Timings(decode=round(item.decode_ms, 3))
    if isinstance(output, PageLines):
        stages = {k: round(v, 3) for k, v in output.timings_ms.items()}
        timings = Timings(decode=timings.decode, **stages,
                          total=round(timings.decode + sum(stages.values()), 3))
        lines = [Line(text=l.text, score=l.score, box=l.box, angle=l.angle, angle_score=l.angle_score)
                 for l in output.lines]
        return OcrResult(source=source, image=image, models=models, providers=providers,
                         lines=lines, timings_ms=timings)
    error = output or item.error or ResultError(code="engine_error", message="no output for this image")
    timings = Timings(decode=timings.decode, total=timings.decode)
    return OcrResult(source=source, image=image, models=models, providers=providers,
                     timings_ms=timings, error=error)


def write_result(result: OcrResult, item: DecodedItem, settings: Settings) -> dict[str, str]:
    """Write `result` to the item's `dst` with its storage metadata; returns that metadata
    (a `--visualize` PNG beside it carries the same)."""
    metadata = storage_metadata(result, item.ref.etag)
    open_storage(item.out_uri, settings).write_bytes(item.out_uri, result.to_json_bytes(),
                                                     "application/json", metadata)
    return metadata
