"""hOCR 1.2: valid by PyPI hocr-spec, every element boxed and scored, pages, blocks, lines and
words in the result's order, the engine's word boxes where it gave them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from lxml import etree

from docmill.result import DocumentPage, ResultError
from tests.worker.drawn import iou
from tests.worker.outputs import hand_line, hand_page, hand_result, rect
from worker.outputs.hocr import hocr
from worker.outputs.page import OutputPage

CLASSES = ("ocr_page", "ocr_carea", "ocr_par", "ocr_line", "ocrx_word")


def check_spec(data: bytes, tmp_path: Path) -> None:
    """Fail with hocr-spec's report unless the file is valid under its standard profile."""
    from hocr_spec import HocrValidator

    path = tmp_path / "out.hocr"
    path.write_bytes(data)
    report = HocrValidator("standard").validate(str(path))
    assert report.is_valid(), report.format("text")


def elements(data: bytes, kind: str) -> list[etree._Element]:
    return etree.fromstring(data).findall(f".//*[@class='{kind}']")


def title(element: etree._Element, prop: str) -> list[str]:
    found = re.search(rf"(?:^|;)\s*{prop} ([^;]*)", element.get("title", ""))
    assert found, (prop, element.get("title"))
    return found.group(1).split()


def box(element: etree._Element) -> tuple[float, ...]:
    return tuple(float(v) for v in title(element, "bbox"))


def test_a_document_is_valid_with_every_element_boxed_and_scored(tmp_path):
    pages = [hand_page([hand_line("Title", rect(10, 10, 200, 40)),
                        hand_line("first line", rect(10, 60, 300, 80), block=1,
                                  words=[("first", rect(10, 60, 120, 80)), ("line", rect(140, 60, 300, 80))])],
                       page=DocumentPage(index=1, count=2)),
             OutputPage(hand_result([], 800, 600, page=DocumentPage(index=2, count=2)).model_copy(
                 update={"error": ResultError(code="engine_error", message="boom")}), 800, 600, 300.0, "scan.pdf")]
    data = hocr(pages)
    check_spec(data, tmp_path)
    assert [p.get("id") for p in elements(data, "ocr_page")] == ["page_1", "page_2"]
    assert title(elements(data, "ocr_page")[1], "ppageno") == ["1"] and title(elements(data, "ocr_page")[1], "scan_res") == ["300", "300"]
    for kind in CLASSES[1:]:
        for element in elements(data, kind):
            assert len(title(element, "bbox")) == 4 and 0 <= float(title(element, "x_wconf")[0]) <= 100
    assert [w.text for w in elements(data, "ocrx_word")] == ["Title", "first", "line"]
    assert box(elements(data, "ocrx_word")[2]) == (140, 60, 300, 80)
    meta = {m.get("name"): m.get("content") for m in etree.fromstring(data).iter("{*}meta")}
    assert meta["ocr-system"].startswith("docmill ") and set(CLASSES) <= set(meta["ocr-capabilities"].split())


def test_a_fax_page_states_both_its_resolutions():
    page = OutputPage(hand_result([], 1632, 392), 1632, 392, 204.0, "fax.tif", dpi_y=98.0)
    assert title(elements(hocr([page]), "ocr_page")[0], "scan_res") == ["204", "98"]


def test_blocks_lines_and_words_keep_the_results_order(tmp_path):
    page = hand_page([hand_line("lower right", rect(400, 300, 600, 320), block=0),
                      hand_line("upper left", rect(0, 0, 200, 20), block=1),
                      hand_line("same block", rect(0, 30, 200, 50), block=1)])
    data = hocr([page])
    check_spec(data, tmp_path)
    assert ["".join(l.itertext()).split() for l in elements(data, "ocr_line")] == [
        ["lower", "right"], ["upper", "left"], ["same", "block"]]
    assert [len(area.findall(".//*[@class='ocr_line']")) for area in elements(data, "ocr_carea")] == [1, 2]


def test_a_line_without_words_is_split_at_spaces_across_its_box(tmp_path):
    data = hocr([hand_page([hand_line("ab cd", rect(100, 10, 150, 30))])])
    assert [(w.text, box(w)) for w in elements(data, "ocrx_word")] == [("ab", (100, 10, 120, 30)),
                                                                      ("cd", (130, 10, 150, 30))]


def test_a_turned_line_says_its_angle(tmp_path):
    page = OutputPage(hand_result([hand_line("ab cd", rect(10, 100, 30, 150))], 400, 400, orientation=90), 400, 400)
    data = hocr([page])
    check_spec(data, tmp_path)
    assert title(elements(data, "ocr_line")[0], "textangle") == ["270"]


@pytest.mark.models
@pytest.mark.slow
def test_the_engines_words_land_on_the_drawn_words(read, drawn, tmp_path):
    result = read(drawn.image)
    data = hocr([OutputPage(result, drawn.image.shape[1], drawn.image.shape[0], None, "drawn.png")])
    check_spec(data, tmp_path)
    words = {w.text: box(w) for w in elements(data, "ocrx_word")}
    assert sorted(words) == sorted(text for text, _ in drawn.words)
    assert min(iou(words[text], where) for text, where in drawn.words) >= 0.5
    assert ["".join(l.itertext()).split() for l in elements(data, "ocr_line")] == [l.split() for l in drawn.lines]
