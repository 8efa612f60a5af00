"""The result layout of documents (PDF and multi-page TIFF), a contract external checks rely on:

    OUT/<rel>.json                 the document result, docmill.document/v1 (below)
    OUT/<rel>/page-NNNN.json       each page's docmill.result/v1, with its `page` object (1-based);
                                   NNNN has as many digits as the page count needs, at least 4
    OUT/<rel>.txt .hocr .alto.xml .pdf   with --format, the whole document in each format

where `OUT/<rel>.json` is where a single image's result would go (`storage.result_uri`), so a
single-image input keeps that layout. The document result is written once, when the last page
of the document is done.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from docmill.result import ModelsInfo, OcrResult, ResultError, SourceInfo, TextSource, shipped_schema
from docmill.storage import is_s3_uri, join_uri, key_under

DOCUMENT_SCHEMA_ID = "docmill.document/v1"
PdfText = Literal["ocr", "skip", "embedded"]
PDF_TEXT_MODES = get_args(PdfText)
PDF_TEXT_HELP = ("PDF pages that already have a text layer: ocr them anyway (default), skip them "
                 "(recorded as skipped), or take their embedded text and boxes instead of OCR")
PageStatus = Literal["ok", "failed", "skipped"]
_RESULT_SUFFIX = ".json"
_PAGE_NAME = re.compile(r"page-\d{4,}\.json")  # page_result_uri's names
_PICTURE_SUFFIX = ".png"
_BLOB_NAMES = ("NAME", "3fa9c2e1b7d04a6f", "20240117")  # a word, a hash, a number


OutputFormat = Literal["txt", "hocr", "alto", "pdf"]
OUTPUT_SUFFIXES: dict[str, str] = {"txt": ".txt", "hocr": ".hocr", "alto": ".alto.xml", "pdf": ".pdf"}
FORMATS_HELP = ("files to write beside each JSON result, comma-separated: json (always) and any of txt, hocr, "
                "alto, pdf (a searchable PDF); a document gets one of each for all its pages")
WORD_FORMATS = frozenset({"hocr", "alto", "pdf"})  # these place each word, so they need word boxes


def parse_formats(text: str, given_as: str = "--format") -> tuple[OutputFormat, ...]:
    """'json,txt,pdf' -> ('txt', 'pdf'): the files beside the JSON, in a fixed order; ValueError
    naming the formats there are for anything else, and where they were given (`given_as`)."""
    asked = {name.strip().lower() for name in text.split(",") if name.strip()}
    unknown = sorted(asked - set(OUTPUT_SUFFIXES) - {"json"})
    if unknown:
        raise ValueError(f"{given_as}: unknown {', '.join(unknown)}; choose from json, {', '.join(OUTPUT_SUFFIXES)}")
    return tuple(name for name in OUTPUT_SUFFIXES if name in asked)  # type: ignore[misc]


def output_uri(result_dst: str, fmt: str) -> str:
    """Where format `fmt` of the image or document whose result is `result_dst` goes: beside
    it, OUT/<rel>.txt, .hocr, .alto.xml or .pdf."""
    return _rel(result_dst) + OUTPUT_SUFFIXES[fmt]


def picture_uri(result_dst: str) -> str:
    """Where --visualize's picture of the result `result_dst` goes: OUT/<rel>.png."""
    return _rel(result_dst) + _PICTURE_SUFFIX


def results_read_again(include: Callable[[str], bool], include_text: str, roots: Iterable[str],
                       out_root: str) -> str | None:
    """Why this --include and --out cannot go together, as the sentence to refuse them with;
    None when they can. They cannot when --out lies inside an input and the patterns take in
    both a name with no suffix (a blob named by a word, a hash or a number) and what docmill
    writes for it (its result, formats, picture or pages'): the next run would read those as
    new inputs, and nothing in their names tells them from inputs (for named inputs,
    docmill.storage.written_by_docmill does)."""
    inside = next((root for root in roots if key_under(root, join_uri(out_root, "NAME")) is not None), None)
    if inside is None:
        return None
    for stem in _BLOB_NAMES:
        result = stem + _RESULT_SUFFIX
        page = page_result_uri(result, 1, 1)
        written = [result, picture_uri(result), page, picture_uri(page),
                   *(output_uri(result, fmt) for fmt in OUTPUT_SUFFIXES)]
        taken = [name for name in written if include(name)] if include(stem) else []
        if taken:
            return (f"--out {out_root} lies inside the input {inside}, and --include {include_text!r} takes in what "
                    f"docmill writes there for an input named {stem} ({taken[0]}): a later run would read those "
                    "results as inputs; put --out outside the input, or narrow --include")
    return None


def page_result_uri(document_dst: str, number: int, page_count: int) -> str:
    """Where page `number` (1-based) of the document of `page_count` pages whose result is
    `document_dst` goes. Every page's name has as many digits as the last page's (at least
    4), so a listing of the folder in key order is in page order, past page 9,999 too."""
    if not 1 <= number <= page_count:
        raise ValueError(f"page {number} is not within 1..{page_count}")
    return f"{page_folder(document_dst)}/page-{number:0{max(4, len(str(page_count)))}d}.json"


def page_folder(document_dst: str) -> str:
    """The folder of the page results of the document whose result is `document_dst`: OUT/<rel>."""
    return _rel(document_dst)


def page_results_of(uris: Iterable[str]) -> set[str]:
    """The documents' results (OUT/<rel>.json) that page results among `uris` belong to."""
    return {uri.rsplit("/", 1)[0] + _RESULT_SUFFIX for uri in uris if _PAGE_NAME.fullmatch(uri.rsplit("/", 1)[-1])}


def blocked_page_folder(document_dst: str) -> str | None:
    """Why none of a document's pages could be written, or None: the folder they go in,
    OUT/<rel>, is a file already (`--out` the input folder itself, where that file is the
    document). Local folders only: on S3 a key and a prefix of one name live side by side."""
    folder = page_folder(document_dst)
    if is_s3_uri(folder) or not os.path.isfile(folder):
        return None
    return f"its page results go in {folder}/, but {folder} is a file (is --out the input folder?); give another --out"


def _rel(result_dst: str) -> str:
    """OUT/<rel>, from the result's OUT/<rel>.json."""
    if not result_dst.endswith(_RESULT_SUFFIX):
        raise ValueError(f"a result ends in {_RESULT_SUFFIX}: {result_dst!r}")
    return result_dst[:-len(_RESULT_SUFFIX)]


class PageSummary(BaseModel):
    """One page as its document result lists it."""

    model_config = ConfigDict(extra="forbid")
    index: int = Field(ge=1)
    status: PageStatus
    lines: int = Field(0, ge=0)
    text: TextSource | None = None  # None when the page failed
    error: ResultError | None = None

    @classmethod
    def of(cls, result: OcrResult, failed_code: str | None = None) -> PageSummary:
        """The summary of a page's result (it has its `page`); `failed_code` overrides when the
        result itself could not be stored (write_error)."""
        assert result.page is not None, "a page summary is of a document's page"
        index = result.page.index
        if failed_code is not None or result.error is not None:
            error = result.error if failed_code is None or result.error else ResultError(
                code=failed_code, message="the page result could not be written")  # type: ignore[arg-type]
            return cls(index=index, status="failed", error=error)
        text = result.page.text if result.page else "ocr"
        status: PageStatus = "skipped" if text == "skipped" else "ok"
        return cls(index=index, status=status, lines=len(result.lines), text=text)


class DocumentResult(BaseModel):
    """The whole document: what it is, and what became of each page. `error` is set when the
    document could not be read at all (then `pages` is empty) and None otherwise, even when
    some pages failed: each page's own status says so."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    schema_: Literal["docmill.document/v1"] = Field(DOCUMENT_SCHEMA_ID, alias="schema")
    source: SourceInfo
    kind: Literal["pdf", "tiff"] | None = None
    page_count: int | None = Field(None, ge=0)
    pdf_text: PdfText = "ocr"
    models: ModelsInfo
    pages: list[PageSummary] = Field(default_factory=list)
    error: ResultError | None = None

    def to_json_bytes(self) -> bytes:
        """Canonical bytes, like OcrResult's: the same document result gives the same bytes."""
        data = self.model_dump(mode="json", by_alias=True)
        return (json.dumps(data, ensure_ascii=False, sort_keys=True, indent=1) + "\n").encode()


def validate_document(doc: dict[str, Any]) -> None:
    """Raise jsonschema.ValidationError when `doc` is not a valid docmill.document/v1."""
    import jsonschema

    jsonschema.validate(doc, shipped_schema("document.v1.json"))
