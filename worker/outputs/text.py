"""Plain text: each page's lines in the result's reading order, one per line, a blank line
between blocks; pages separated by a form feed (as Tesseract's text output does, so a page's
text can be found again by counting form feeds)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import BinaryIO

from docmill.result import OcrResult
from worker.outputs.page import OutputPage, written
from worker.outputs.reading import blocks

PAGE_BREAK = "\f"


def page_text(result: OcrResult) -> str:
    """One page's text, each line ending in a newline (empty for a page without lines)."""
    return "\n".join("".join(f"{line.text}\n" for line in block) for block in blocks(result))


class TextWriter:
    """The pages' text, UTF-8, a page at a time (a PageWriter)."""

    def __init__(self, target: BinaryIO, page_count: int) -> None:
        self.target = target
        self.first = True

    def add(self, page: OutputPage) -> None:
        self.target.write(("" if self.first else PAGE_BREAK).encode() + page_text(page.result).encode("utf-8"))
        self.first = False

    def finish(self) -> None:
        """Nothing follows the last page."""


def text(pages: Sequence[OutputPage]) -> bytes:
    """The pages' text, UTF-8."""
    return written(TextWriter, pages)
