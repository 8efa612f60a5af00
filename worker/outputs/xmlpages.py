"""The page-at-a-time writing that hOCR and ALTO share: an XML file whose pages are the
children of one element, two levels down (hOCR's body, ALTO's Layout).

Its skeleton (everything but the pages, which may name the first page's image) is serialised
with a mark where the pages go and split there; the part before is written once the first
page comes, each page's element as it comes, indented as ElementTree.indent would indent it
in the whole tree, and the part after at the end. The file is the same, byte for byte, as
the whole tree serialised at once.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import BinaryIO

from worker.outputs.page import OutputPage

_PAGES = "\x00pages\x00"  # no XML text holds a NUL


class XmlPagesWriter:
    """A PageWriter for such a file; a format gives its `skeleton` and `page_element`."""

    def __init__(self, target: BinaryIO, page_count: int) -> None:
        self.target = target
        self.page_count = page_count
        self.close: str | None = None  # what follows the pages, once the opening is written

    def skeleton(self, first: OutputPage | None) -> tuple[bytes, ET.Element, ET.Element]:
        """The bytes before the root, the root, and the element the pages go in."""
        raise NotImplementedError

    def page_element(self, page: OutputPage) -> ET.Element:
        raise NotImplementedError

    def add(self, page: OutputPage) -> None:
        if self.close is None:
            self._open(page)
        element = self.page_element(page)
        ET.indent(element, space=" ", level=2)
        self.target.write(f"\n  {ET.tostring(element, encoding='unicode')}".encode())

    def finish(self) -> None:
        if self.close is None:  # no page at all
            self._open(None)
            self.target.write(f"{self.close}\n".encode())
            return
        self.target.write(f"\n {self.close}\n".encode())

    def _open(self, first: OutputPage | None) -> None:
        prolog, root, pages = self.skeleton(first)
        pages.text = _PAGES
        ET.indent(root, space=" ")
        opening, self.close = ET.tostring(root, encoding="unicode").split(_PAGES)
        self.target.write(prolog + opening.encode())
