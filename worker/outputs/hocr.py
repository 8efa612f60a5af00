"""hOCR 1.2 (XHTML): one ocr_page per page, then per block an ocr_carea holding one ocr_par,
its ocr_line elements and their ocrx_word elements, all in the result's reading order.

Every element has a `bbox` (left top right bottom, in the page's pixels) and an `x_wconf`
(confidence 0 to 100: a word's own score, a line's, or the mean of a block's lines). A line
whose text does not run left to right on the image (a turned page or line) says so with
`textangle`, counter-clockwise as hOCR counts it.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence

from docmill import __version__
from docmill.result import Line, OcrResult
from worker.outputs.page import OutputPage, written
from worker.outputs.reading import bbox, blocks, line_words, text_angle, union
from worker.outputs.xmlpages import XmlPagesWriter

CAPABILITIES = "ocr_page ocr_carea ocr_par ocr_line ocrx_word ocrp_wconf"
_HEAD = (b'<?xml version="1.0" encoding="UTF-8"?>\n'
         b'<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN"'
         b' "http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">\n')


def hocr(pages: Sequence[OutputPage]) -> bytes:
    """One hOCR file holding every page."""
    return written(HocrWriter, pages)


class HocrWriter(XmlPagesWriter):
    """One hOCR file, a page at a time (a PageWriter): the head, titled by the first page's
    image, then each page's div as it comes."""

    def skeleton(self, first: OutputPage | None) -> tuple[bytes, ET.Element, ET.Element]:
        html = ET.Element("html", {"xmlns": "http://www.w3.org/1999/xhtml", "xml:lang": "en", "lang": "en"})
        head = ET.SubElement(html, "head")
        ET.SubElement(head, "title").text = first.image_name if first else ""
        for name, content in (("ocr-system", f"docmill {__version__}"), ("ocr-capabilities", CAPABILITIES),
                              ("ocr-number-of-pages", str(self.page_count))):
            ET.SubElement(head, "meta", {"name": name, "content": content})
        ET.SubElement(head, "meta", {"http-equiv": "Content-Type", "content": "text/html; charset=utf-8"})
        return _HEAD, html, ET.SubElement(html, "body")

    def page_element(self, page: OutputPage) -> ET.Element:
        return _page(page)


def _page(page: OutputPage) -> ET.Element:
    n = page.number
    title = f'image "{_quoted(page.image_name)}"; bbox 0 0 {page.width} {page.height}; ppageno {n - 1}'
    if page.dpi:
        title += f"; scan_res {round(page.dpi)} {round(page.dpi_y or page.dpi)}"
    element = ET.Element("div", {"class": "ocr_page", "id": f"page_{n}", "title": title})
    counter = _Ids(n)
    for block in blocks(page.result):
        _block(element, page.result, block, counter)
    return element


class _Ids:
    """Element ids unique in the file: kind_page_count, as Tesseract numbers them."""

    def __init__(self, page: int) -> None:
        self.page = page
        self.counts: dict[str, int] = {}

    def next(self, kind: str) -> str:
        self.counts[kind] = self.counts.get(kind, 0) + 1
        return f"{kind}_{self.page}_{self.counts[kind]}"


def _block(parent: ET.Element, result: OcrResult, block: list[Line], ids: _Ids) -> None:
    box = union([bbox(line.box) for line in block])
    title = _title(box, sum(line.score for line in block) / len(block))
    area = ET.SubElement(parent, "div", {"class": "ocr_carea", "id": ids.next("block"), "title": title})
    par = ET.SubElement(area, "p", {"class": "ocr_par", "id": ids.next("par"), "title": title})
    for line in block:
        _line(par, result, line, ids)


def _line(parent: ET.Element, result: OcrResult, line: Line, ids: _Ids) -> None:
    title = _title(bbox(line.box), line.score)
    angle = text_angle(result, line)
    if angle:
        title += f"; textangle {(360 - angle) % 360}"
    element = ET.SubElement(parent, "span", {"class": "ocr_line", "id": ids.next("line"), "title": title})
    for word in line_words(result, line):
        span = ET.SubElement(element, "span", {"class": "ocrx_word", "id": ids.next("word"),
                                               "title": _title(bbox(word.box), word.score)})
        span.text = word.text


def _title(box: tuple[int, int, int, int], score: float) -> str:
    return f"bbox {box[0]} {box[1]} {box[2]} {box[3]}; x_wconf {round(score * 100)}"


def _quoted(name: str) -> str:
    """A file name inside hOCR's double-quoted property value."""
    return name.replace("\\", "\\\\").replace('"', '\\"')
