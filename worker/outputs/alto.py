"""ALTO 4.4: a Description (pixels as the measurement unit, the source image's file name, the
OCR software and model set) and a Layout with one Page per page, each holding a PrintSpace
of TextBlock / TextLine / String elements in the result's reading order, with SP between the
words of a line. A word broken by a hyphen at a line's end into the next line in reading
order is marked as ALTO marks it: HypPart1, a HYP, then HypPart2, both parts carrying the
whole word in SUBS_CONTENT. The next line may open the next block: a newspaper's column
breaks mid-word as often as its lines do, and its ALTO is where such words are searched for.

Positions are HPOS/VPOS/WIDTH/HEIGHT of each element's axis-aligned box in the page's
pixels; WC is the word's confidence (0 to 1); a block whose text runs turned says so in
ROTATION. Element IDs are unique in the file.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence

from docmill import __version__
from docmill.result import Line, OcrResult, Word, models_tag
from worker.outputs.page import OutputPage, written
from worker.outputs.reading import BBox, bbox, blocks, line_words, text_angle, union
from worker.outputs.xmlpages import XmlPagesWriter

NAMESPACE = "http://www.loc.gov/standards/alto/ns-v4#"
SCHEMA_LOCATION = f"{NAMESPACE} http://www.loc.gov/standards/alto/v4/alto-4-4.xsd"
HYPHENS = "-\u00ad\u2010\u00ac"  # hyphen-minus, soft hyphen, hyphen, and the not sign Fraktur's double hyphen reads as
_TRAILING_PUNCTUATION = ".,;:!?)]}\"'\u201d\u2019"
_LEADING_PUNCTUATION = "([{\"'\u201c\u2018\u201e\u00bf\u00a1"
_DECLARATION = b"<?xml version='1.0' encoding='utf-8'?>\n"


def alto(pages: Sequence[OutputPage]) -> bytes:
    """One ALTO file holding every page; its sourceImageInformation names the first page's
    image (for a document, each page's `image_name` is the document's)."""
    return written(AltoWriter, pages)


class AltoWriter(XmlPagesWriter):
    """One ALTO file, a page at a time (a PageWriter): the Description from the first page,
    then each Page as it comes."""

    def skeleton(self, first: OutputPage | None) -> tuple[bytes, ET.Element, ET.Element]:
        root = ET.Element("alto", {"xmlns": NAMESPACE, "xmlns:xsi": "http://www.w3.org/2001/XMLSchema-instance",
                                   "xsi:schemaLocation": SCHEMA_LOCATION})
        _description(root, first)
        return _DECLARATION, root, ET.SubElement(root, "Layout")

    def page_element(self, page: OutputPage) -> ET.Element:
        return _page(page)


def _description(root: ET.Element, first: OutputPage | None) -> None:
    description = ET.SubElement(root, "Description")
    ET.SubElement(description, "MeasurementUnit").text = "pixel"
    source = ET.SubElement(description, "sourceImageInformation")
    ET.SubElement(source, "fileName").text = first.image_name if first else ""
    step = ET.SubElement(ET.SubElement(description, "OCRProcessing", {"ID": "ocr"}), "ocrProcessingStep")
    if first:
        models = first.result.models
        ET.SubElement(step, "processingStepSettings").text = f"models {models_tag(models.set, models.version)}"
    software = ET.SubElement(step, "processingSoftware")
    ET.SubElement(software, "softwareName").text = "docmill"
    ET.SubElement(software, "softwareVersion").text = __version__


def _page(page: OutputPage) -> ET.Element:
    n = page.number
    element = ET.Element("Page", {"ID": f"p{n}", "PHYSICAL_IMG_NR": str(n),
                                  "WIDTH": str(page.width), "HEIGHT": str(page.height)})
    space = ET.SubElement(element, "PrintSpace", _position((0, 0, page.width, page.height)))
    page_blocks = list(blocks(page.result))
    lines = [line for block in page_blocks for line in block]
    words = [line_words(page.result, line) for line in lines]
    # breaks[k]: the word broken between the page's lines k - 1 and k (none before the first, after the last)
    breaks = [None, *(_hyphenated(page.result, lines[k], lines[k + 1], words[k], words[k + 1])
                      for k in range(len(lines) - 1)), None]
    first = 0  # the block's first line, among the page's
    for b, block in enumerate(page_blocks, start=1):
        last = first + len(block)
        _block(space, page.result, block, words[first:last], breaks[first:last + 1], f"p{n}_b{b}")
        first = last
    return element


def _block(space: ET.Element, result: OcrResult, block: list[Line], words: list[list[Word]],
           joined: list[str | None], block_id: str) -> None:
    """The block's lines; `joined[k]` is the word broken between its line k - 1 and line k
    (its first into the previous block's last line, its last into the next block's first)."""
    box = union([bbox(line.box) for line in block])
    element = ET.SubElement(space, "TextBlock", {"ID": block_id, **_position(box), **_rotation(result, block)})
    for l, line in enumerate(block):
        _line(element, line, words[l], f"{block_id}_l{l + 1}", joined[l + 1], joined[l])


def _hyphenated(result: OcrResult, line: Line, next_line: Line, words: list[Word],
                following: list[Word]) -> str | None:
    """The whole word, when `line`'s last word breaks with a hyphen into the first word of
    `next_line` (the next in reading order), both running the same way: a letter before the
    hyphen, a lower-case letter after it (not a dash before a number or a name). Punctuation
    before the first part, "(docu-", and after the second, "ment),", is no part of it."""
    if not words or not following or text_angle(result, line) != text_angle(result, next_line):
        return None
    first, second = words[-1].text, following[0].text
    if len(first) < 2 or first[-1] not in HYPHENS or not first[-2].isalpha() or not second[:1].islower():
        return None
    return first[:-1].lstrip(_LEADING_PUNCTUATION) + second.rstrip(_TRAILING_PUNCTUATION)


def _line(block: ET.Element, line: Line, words: list[Word], line_id: str, breaks_into: str | None,
          continues: str | None) -> None:
    """The line's words, with SP between them. `breaks_into`: the whole word its last word is
    the first part of (HypPart1 and a closing HYP); `continues`: the one its first word ends
    (HypPart2). ALTO readers index SUBS_CONTENT, so a search finds the whole word."""
    element = ET.SubElement(block, "TextLine", {"ID": line_id, **_position(bbox(line.box))})
    previous: BBox | None = None
    for w, word in enumerate(words, start=1):
        box = bbox(word.box)
        if previous is not None:
            ET.SubElement(element, "SP", {k: v for k, v in _position(_between(previous, box)).items()
                                          if k != "HEIGHT"})
        attributes = {"ID": f"{line_id}_w{w}", **_position(box), "WC": f"{word.score:.4f}", "CONTENT": word.text}
        if w == len(words) and breaks_into is not None:
            attributes.update(CONTENT=word.text[:-1], SUBS_TYPE="HypPart1", SUBS_CONTENT=breaks_into)
        elif w == 1 and continues is not None:
            attributes.update(SUBS_TYPE="HypPart2", SUBS_CONTENT=continues)
        ET.SubElement(element, "String", attributes)
        previous = box
    if breaks_into is not None:
        ET.SubElement(element, "HYP", {"CONTENT": words[-1].text[-1]})


def _rotation(result: OcrResult, block: list[Line]) -> dict[str, str]:
    """ROTATION (degrees counter-clockwise, as ALTO counts) when the block's lines all run at
    one angle other than across the page, e.g. on a page read turned or in vertical columns;
    ALTO holds it on the block, and its lines inherit it."""
    angles = {text_angle(result, line) for line in block}
    return {"ROTATION": str((360 - angles.pop()) % 360)} if len(angles) == 1 and 0 not in angles else {}


def _between(a: BBox, b: BBox) -> BBox:
    """The gap between two words side by side, whichever comes first on the image (none
    when they overlap)."""
    left, right = min(a[2], b[2]), max(a[0], b[0])
    return left, min(a[1], b[1]), max(left, right), max(a[3], b[3])


def _position(box: BBox) -> dict[str, str]:
    left, top, right, bottom = box
    return {"HPOS": str(left), "VPOS": str(top), "WIDTH": str(right - left), "HEIGHT": str(bottom - top)}
