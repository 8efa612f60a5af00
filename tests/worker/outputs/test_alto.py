"""ALTO 4.4: valid against the official XSD (../shared/data/schemas, offline), pixels as the
unit, the page's file name and size recorded, blocks, lines and words in the result's order
with SP between words."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from docmill.result import DocumentPage
from tests.worker.drawn import iou
from tests.worker.outputs import hand_line, hand_page, rect
from worker.outputs.alto import alto
from worker.outputs.page import OutputPage

NS = {"a": "http://www.loc.gov/standards/alto/ns-v4#"}

# No registry package ships the ALTO schema (checked: ocrd-page-to-alto, alto-tools, ocrd-validators,
# ocrd-fileformat), so the official files come from ../shared. The schema imports XLink from the
# Library of Congress's server: that import is mapped to the local copy, and nothing else may load.


@pytest.fixture(scope="session")
def alto_schema(shared_dir):  # type: ignore[no-untyped-def]
    import xmlschema

    folder = shared_dir / "data" / "schemas"
    return xmlschema.XMLSchema(str(folder / "alto-4-4.xsd"), allow="local",
                               uri_mapper={"http://www.loc.gov/standards/xlink/xlink.xsd": str(folder / "xlink.xsd")})


def strings(data: bytes) -> list[ET.Element]:
    return ET.fromstring(data).findall(".//a:String", NS)


def position(element: ET.Element) -> tuple[float, float, float, float]:
    left, top = float(element.get("HPOS", 0)), float(element.get("VPOS", 0))
    return left, top, left + float(element.get("WIDTH", 0)), top + float(element.get("HEIGHT", 0))


@pytest.mark.shared
def test_a_document_is_valid_alto(alto_schema):
    pages = [hand_page([hand_line("Title", rect(10, 10, 200, 40)),
                        hand_line("first line", rect(10, 60, 300, 80), block=1,
                                  words=[("first", rect(10, 60, 120, 80)), ("line", rect(140, 60, 300, 80))])],
                       page=DocumentPage(index=3, count=4)),
             hand_page([], page=DocumentPage(index=4, count=4))]
    data = alto(pages)
    alto_schema.validate(data.decode())
    root = ET.fromstring(data)
    assert root.findtext("a:Description/a:MeasurementUnit", namespaces=NS) == "pixel"
    assert root.findtext("a:Description/a:sourceImageInformation/a:fileName", namespaces=NS) == "page.png"
    assert [(p.get("PHYSICAL_IMG_NR"), p.get("WIDTH"), p.get("HEIGHT")) for p in root.findall(".//a:Page", NS)] == [
        ("3", "800", "600"), ("4", "800", "600")]
    assert [(s.get("CONTENT"), position(s)) for s in strings(data)][1:] == [
        ("first", (10, 60, 120, 80)), ("line", (140, 60, 300, 80))]
    assert [(sp.get("HPOS"), sp.get("WIDTH")) for sp in root.findall(".//a:SP", NS)] == [("120", "20")]
    assert all(0 <= float(s.get("WC", -1)) <= 1 for s in strings(data))


@pytest.mark.shared
def test_the_schema_check_can_fail(alto_schema):
    data = alto([hand_page([hand_line("word", rect(0, 0, 10, 10))])]).replace(b' CONTENT="word"', b"")
    assert not alto_schema.is_valid(data.decode())


@pytest.mark.shared
def test_a_block_of_turned_text_says_its_rotation(alto_schema):
    """ROTATION, counter-clockwise as ALTO counts it, on a block whose lines all run down the
    page (90 clockwise) or up it on a page turned 180; none on a block that reads across."""
    down = hand_line("down the page", [[300, 10], [330, 10], [330, 300], [300, 300]], block=0, angle=90)
    across = hand_line("across", rect(10, 400, 200, 430), block=1)
    data = alto([hand_page([down, across], page=DocumentPage(index=1, count=2)),
                 hand_page([down], orientation=180, page=DocumentPage(index=2, count=2))])
    alto_schema.validate(data.decode())
    blocks = ET.fromstring(data).findall(".//a:TextBlock", NS)
    assert [block.get("ROTATION") for block in blocks] == ["270", None, "90"]
    words = [position(s) for s in blocks[0].findall(".//a:String", NS)]
    assert [w[1] for w in words] == sorted(w[1] for w in words)  # down the page, word after word


def test_blocks_lines_and_words_keep_the_results_order():
    page = hand_page([hand_line("lower right", rect(400, 300, 600, 320), block=0),
                      hand_line("upper left", rect(0, 0, 200, 20), block=1),
                      hand_line("same block", rect(0, 30, 200, 50), block=1)])
    root = ET.fromstring(alto([page]))
    lines = [[s.get("CONTENT") for s in line.findall("a:String", NS)] for line in root.findall(".//a:TextLine", NS)]
    assert lines == [["lower", "right"], ["upper", "left"], ["same", "block"]]
    assert [len(block.findall("a:TextLine", NS)) for block in root.findall(".//a:TextBlock", NS)] == [1, 2]
    ids = [e.get("ID") for e in root.iter() if e.get("ID")]
    assert len(ids) == len(set(ids))


@pytest.mark.models
@pytest.mark.slow
@pytest.mark.shared
def test_the_engines_words_land_on_the_drawn_words(read, drawn, alto_schema):
    result = read(drawn.image)
    data = alto([OutputPage(result, drawn.image.shape[1], drawn.image.shape[0], None, "drawn.png")])
    alto_schema.validate(data.decode())
    found = {s.get("CONTENT"): position(s) for s in strings(data)}
    assert sorted(found) == sorted(text for text, _ in drawn.words)
    assert min(iou(found[text], where) for text, where in drawn.words) >= 0.5


def _lines(*texts: str, blocks: tuple[int, ...] | None = None) -> OutputPage:
    return hand_page([hand_line(text, rect(10, 10 + 40 * k, 300, 40 + 40 * k), block=(blocks or (0,) * len(texts))[k])
                      for k, text in enumerate(texts)])


@pytest.mark.shared
def test_a_word_broken_at_a_lines_end_is_marked_as_alto_marks_hyphenation(alto_schema):
    """HypPart1 without its hyphen, a HYP, then HypPart2 on the next line, both naming the
    whole word (the punctuation around it left off) so that a search of the ALTO finds it."""
    data = alto([_lines("the docu-", "ment, which is", "an (archi\u00ad", "val) record")])
    alto_schema.validate(data.decode())
    marked = [(s.get("CONTENT"), s.get("SUBS_TYPE"), s.get("SUBS_CONTENT")) for s in strings(data) if s.get("SUBS_TYPE")]
    assert marked == [("docu", "HypPart1", "document"), ("ment,", "HypPart2", "document"),
                      ("(archi", "HypPart1", "archival"), ("val)", "HypPart2", "archival")]
    lines = ET.fromstring(data).findall(".//a:TextLine", NS)
    assert [[child.tag.split("}")[1] for child in line][-1] for line in lines] == ["HYP", "String", "HYP", "String"]
    assert [hyp.get("CONTENT") for hyp in ET.fromstring(data).findall(".//a:HYP", NS)] == ["-", "\u00ad"]


@pytest.mark.parametrize("texts", [
    ("pages 10-", "12 and on"),  # a range, not a word
    ("Smith-", "Jones wrote"),  # a double name: the second part is capitalised
    ("a list", "- item"),  # a dash that starts a line
    ("ends with -", "and goes on"),  # a dash alone
])
def test_a_dash_that_breaks_no_word_is_left_as_it_is(texts: tuple[str, str]) -> None:
    data = alto([_lines(*texts)])
    assert not ET.fromstring(data).findall(".//a:HYP", NS)
    assert [s.get("CONTENT") for s in strings(data)] == " ".join(texts).split()


@pytest.mark.shared
def test_a_word_broken_at_a_column_break_is_marked_across_the_blocks(alto_schema) -> None:
    """A newspaper column ends mid-word as often as its lines do: the word's first part
    closes the block, its second opens the next one in reading order."""
    data = alto([_lines("the first docu-", "ment here", "and a last", blocks=(0, 1, 1))])
    alto_schema.validate(data.decode())
    blocks = ET.fromstring(data).findall(".//a:TextBlock", NS)
    marked = [[(s.get("CONTENT"), s.get("SUBS_TYPE"), s.get("SUBS_CONTENT")) for s in block.findall(".//a:String", NS)
               if s.get("SUBS_TYPE")] for block in blocks]
    assert marked == [[("docu", "HypPart1", "document")], [("ment", "HypPart2", "document")]]
    assert [len(block.findall(".//a:HYP", NS)) for block in blocks] == [1, 0]


def test_a_hyphen_joins_nothing_across_pages_or_into_a_line_running_another_way() -> None:
    """A page's last word and the next page's first are no one word (a running head or a
    folio comes between them), nor is a line's last word and a turned line's first."""
    data = alto([_lines("the docu-"), hand_page([hand_line("ment here", rect(10, 10, 300, 40))],
                                                page=DocumentPage(index=2, count=2))])
    assert not ET.fromstring(data).findall(".//a:HYP", NS)
    turned = hand_page([hand_line("the docu-", rect(10, 10, 300, 40)),
                        hand_line("ment here", rect(10, 50, 300, 80), block=1, angle=180)])
    assert not ET.fromstring(alto([turned])).findall(".//a:HYP", NS)
