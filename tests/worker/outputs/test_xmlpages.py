"""worker.outputs.xmlpages: a file written a page at a time is, byte for byte, the whole tree
serialised at once, for any number of pages and any depth inside a page."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from tests.worker.outputs import hand_page
from worker.outputs.page import OutputPage, written
from worker.outputs.xmlpages import XmlPagesWriter


def _tree(first: OutputPage | None) -> tuple[ET.Element, ET.Element]:
    root = ET.Element("doc", {"name": first.image_name if first else ""})
    ET.SubElement(ET.SubElement(root, "head"), "title").text = "pages & more"
    return root, ET.SubElement(root, "pages")


def _page(page: OutputPage, number: int) -> ET.Element:
    element = ET.Element("page", {"n": str(number)})
    ET.SubElement(ET.SubElement(element, "block"), "line").text = "deep <text>"
    return element


class Writer(XmlPagesWriter):
    def __init__(self, target, page_count):  # type: ignore[no-untyped-def]
        super().__init__(target, page_count)
        self.count = 0

    def skeleton(self, first):  # type: ignore[no-untyped-def]
        return b"<?xml?>\n", *_tree(first)

    def page_element(self, page):  # type: ignore[no-untyped-def]
        self.count += 1
        return _page(page, self.count)


@pytest.mark.parametrize("count", [1, 3])
def test_page_by_page_is_the_whole_tree_at_once(count: int) -> None:
    pages = [hand_page([]) for _ in range(count)]
    root, parent = _tree(pages[0])
    parent.extend(_page(page, n) for n, page in enumerate(pages, 1))
    ET.indent(root, space=" ")
    assert written(Writer, pages) == b"<?xml?>\n" + ET.tostring(root, encoding="unicode").encode() + b"\n"


def test_no_pages_is_the_skeleton_alone() -> None:
    made = written(Writer, [])
    assert made.startswith(b"<?xml?>\n") and len(ET.fromstring(made[8:]).find("pages")) == 0
