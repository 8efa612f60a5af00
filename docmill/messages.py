"""docmill.task/v1: the one message producers enqueue and workers accept.

Celery carries it as the single JSON argument of the `docmill.ocr` task. Workers validate it
with this model before doing anything, so a message that did not come from the producer's
schema (missing or extra fields, a `dst` outside the job's output prefix) is refused whole.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from docmill.documents import OutputFormat, PdfText
from docmill.options import EngineOptions

TASK_SCHEMA = "docmill.task/v1"
TASK_NAME = "docmill.ocr"
QUEUE = "docmill"
MAX_ITEMS_PER_TASK = 1000
JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
QUEUE_NAME = re.compile(r"^[^\s,]{1,200}$")


def queue_names(text: str) -> list[str]:
    """The queues a comma-separated `--queue` value names. ValueError for an empty name or
    one with spaces in it: Celery would take it, and consume a queue no producer fills."""
    names = text.split(",")
    bad = next((name for name in names if not QUEUE_NAME.match(name)), None)
    if bad is not None:
        what = "a queue name is empty" if not bad else f"{bad!r} has a space in it"
        raise ValueError(f"--queue {text!r}: {what}; give queue names without spaces, separated by commas "
                         "(docmill,urgent)")
    return names


class TaskItem(BaseModel):
    """One source image or document and where its result goes. `pages` is a document's page
    range, 1-based and inclusive, when the producer split it over several tasks; None means
    every page (or a single image). A document's pages go to `page_result_uri(dst, n)`."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    src: str = Field(min_length=1)
    dst: str = Field(min_length=1)
    etag: str | None = None
    bytes: int | None = Field(None, ge=0)
    pages: tuple[int, int] | None = None
    page_count: int | None = Field(None, ge=1, description="the document's pages, as the producer counted them")
    formats_only: bool = Field(False, description="its result was current but for a --format file when enqueued: "
                                                  "a worker keeps it (if still current) and makes only the files")

    @property
    def key(self) -> str:
        """What names this item in the job state: its source, and its page range if any (the
        ranges of one document are separate items)."""
        return self.src if self.pages is None else f"{self.src}#pages={self.pages[0]}-{self.pages[1]}"

    @model_validator(mode="after")
    def _page_range(self) -> "TaskItem":
        if self.pages is not None:
            first, last = self.pages
            if not 1 <= first <= last or (self.page_count is not None and last > self.page_count):
                raise ValueError(f"pages {first}..{last} is not a range within 1..{self.page_count}")
        return self


class ModelsRef(BaseModel):
    """The model set a job runs on, pinned to one version for the whole job."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    uri: str = Field(min_length=1)
    version: str = Field(min_length=1)


class OcrTask(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    schema_: Literal["docmill.task/v1"] = Field(TASK_SCHEMA, alias="schema")
    job: str
    seq: int = Field(ge=0, description="task number within the job: the dedupe key of its outcomes")
    models: ModelsRef
    options: dict[str, Any] = Field(default_factory=dict)
    out_prefix: str = Field(min_length=1)
    pdf_text: PdfText = "ocr"
    formats: list[OutputFormat] = Field(default_factory=list, description="files beside each JSON result")
    skip_existing: bool = Field(False, description="the producer's --skip-existing: a document's page results "
                                                   "that are current are kept, not read again")
    items: list[TaskItem] = Field(min_length=1, max_length=MAX_ITEMS_PER_TASK)

    @field_validator("job")
    @classmethod
    def _job_id(cls, value: str) -> str:
        if not JOB_ID.match(value):
            raise ValueError("job id: letters, digits, '.', '_' and '-' only, at most 128")
        return value

    @field_validator("options")
    @classmethod
    def _engine_options(cls, value: dict[str, Any]) -> dict[str, Any]:
        EngineOptions().merged(value)
        return value

    @model_validator(mode="after")
    def _dst_inside_out_prefix(self) -> "OcrTask":
        root = self.out_prefix.rstrip("/") + "/"
        for item in self.items:
            rest = item.dst[len(root):] if item.dst.startswith(root) else ""
            if not rest or any(seg in ("", ".", "..") for seg in rest.split("/")) or "\\" in rest:
                raise ValueError(f"dst {item.dst!r} is outside the job's output prefix {self.out_prefix!r}")
        return self

    @property
    def task_key(self) -> str:
        return f"{self.job}:{self.seq}"

    def to_payload(self) -> dict[str, Any]:
        """The message as JSON. Fields added to docmill.task/v1 since its first release are left
        out while they hold their defaults, so workers from before them (which refuse unknown
        fields) still take every task that does not use them, through a rolling upgrade."""
        data = self.model_dump(mode="json", by_alias=True)
        for name, default in _ADDED_TASK_FIELDS.items():
            if data.get(name) == default:
                del data[name]
        for item in data["items"]:
            for name, default in _ADDED_ITEM_FIELDS.items():
                if item.get(name) == default:
                    del item[name]
        return data


_ADDED_TASK_FIELDS: dict[str, Any] = {"pdf_text": "ocr", "formats": [],  # documents in and out
                                      "skip_existing": False}  # a fleet that resumes a document part way
_ADDED_ITEM_FIELDS: dict[str, Any] = {"pages": None, "page_count": None,  # documents split into page ranges
                                      "formats_only": False}  # a result kept, given only its --format files
