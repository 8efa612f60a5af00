"""docmill.result/v1: one JSON object per image, written next to nothing else.

The pydantic models build and serialise results; `schemas/result.v1.json` is the published
contract that tests validate every written result against (and that
`../shared/bench/score.py` reads).
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer

SCHEMA_ID = "docmill.result/v1"

ErrorCode = Literal[
    "decode_error", "too_large", "not_found", "read_error", "access_denied", "write_error",
    "engine_error", "worker_lost", "encrypted", "render_timeout", "render_memory"
]


class SourceInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")
    uri: str
    bytes: int | None = None
    sha256: str | None = None
    etag: str | None = None


class ImageInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")
    width: int
    height: int


class ModelsInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")
    set: str
    version: str


class Word(BaseModel):
    """One word of a line, from the recogniser's character positions; `box` as a line's."""

    model_config = ConfigDict(extra="forbid")
    text: str
    score: float
    box: list[list[int]]


class Line(BaseModel):
    """One recognised text line; `box` is 4 integer points clockwise from top-left."""

    model_config = ConfigDict(extra="forbid")
    text: str
    score: float
    box: list[list[int]]
    angle: Literal[0, 90, 180, 270] = 0  # which way its text runs, clockwise, against the page's turn
    angle_score: float | None = None
    block: int = 0  # text block (a column part or paragraph), in reading order
    words: list[Word] | None = None  # present when word boxes were asked for


class Timings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    decode: float = 0.0
    ori: float = 0.0
    det: float = 0.0
    cls: float = 0.0
    rec: float = 0.0
    total: float = 0.0


class PageOrientation(BaseModel):
    """The angle a page was found turned by, clockwise (by the page orientation model and the
    line classifier together); it was read turned back upright, and its boxes are given in
    the input's own pixels. `score` is the page model's probability for this angle."""

    model_config = ConfigDict(extra="forbid")
    angle: Literal[0, 90, 180, 270]
    score: float


TextSource = Literal["ocr", "embedded", "skipped"]


class DocumentPage(BaseModel):
    """Which page of a document (PDF or multi-page TIFF) a result is: `index` is 1-based, as in
    its file name page-NNNN.json; `dpi` the resolution its pixels stand for (None: unknown),
    and `dpi_y` the vertical one where the page states another (a fax at 204 x 98 dpi);
    `text` says where its lines came from: OCR, the PDF's own text layer, or nowhere because
    the page has a text layer and `--pdf-text skip` left it out."""

    model_config = ConfigDict(extra="forbid")
    index: int = Field(ge=1)
    count: int = Field(ge=1)
    dpi: float | None = None
    dpi_y: float | None = None
    text: TextSource = "ocr"

    @model_serializer(mode="wrap")
    def _stated(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """`dpi_y` only where a page has one, so that every other page's result is what it
        was before the field existed."""
        data = handler(self)
        if self.dpi_y is None:
            data.pop("dpi_y", None)
        return data


class ResultError(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: ErrorCode
    message: str


class OcrResult(BaseModel):
    """The whole per-image document."""

    model_config = ConfigDict(extra="forbid")
    schema_: Literal["docmill.result/v1"] = Field(SCHEMA_ID, alias="schema")
    source: SourceInfo
    image: ImageInfo | None = None
    models: ModelsInfo
    providers: list[str]
    orientation: PageOrientation | None = None
    page: DocumentPage | None = None  # set when the image is a page of a document
    lines: list[Line] = Field(default_factory=list)
    timings_ms: Timings = Field(default_factory=Timings)
    error: ResultError | None = None

    def to_json_bytes(self) -> bytes:
        """Canonical bytes: same result, same bytes (idempotent rewrites of the same object)."""
        data = self.model_dump(mode="json", by_alias=True)
        return (json.dumps(data, ensure_ascii=False, sort_keys=True, indent=1) + "\n").encode()


META_MODELS = "docmill-models"
META_SOURCE_ETAG = "source-etag"


def models_tag(set_name: str, version: str) -> str:
    """How a result names its model set in storage metadata: `<set>@<version>`."""
    return f"{set_name}@{version}"


def storage_metadata(result: "OcrResult | Any", etag: str | None) -> dict[str, str]:
    """The object metadata every result is written with: what `--skip-existing` compares
    (the model set that made it, the source ETag it was made from)."""
    metadata = {META_MODELS: models_tag(result.models.set, result.models.version)}
    if etag:
        metadata[META_SOURCE_ETAG] = etag
    return metadata


@lru_cache(maxsize=None)
def shipped_schema(name: str) -> dict[str, Any]:
    """A JSON Schema shipped in docmill/schemas (`result.v1.json`, `document.v1.json`)."""
    return json.loads(resources.files("docmill").joinpath(f"schemas/{name}").read_text("utf-8"))


def result_json_schema() -> dict[str, Any]:
    """The shipped JSON Schema for docmill.result/v1."""
    return shipped_schema("result.v1.json")


def validate_result(doc: dict[str, Any]) -> None:
    """Raise jsonschema.ValidationError when `doc` is not a valid docmill.result/v1."""
    import jsonschema

    jsonschema.validate(doc, result_json_schema())
