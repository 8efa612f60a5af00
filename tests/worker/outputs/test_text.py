"""Plain text: lines in the result's order, a blank line between blocks, a form feed between
pages."""

from __future__ import annotations

import pytest

from docmill.result import DocumentPage
from tests.worker.outputs import hand_line, hand_page, rect
from worker.outputs.page import OutputPage
from worker.outputs.text import text


def test_blocks_are_set_apart_by_a_blank_line_and_pages_by_a_form_feed():
    first = hand_page([hand_line("Title", rect(0, 0, 50, 10)), hand_line("one", rect(0, 20, 50, 30), block=1),
                       hand_line("two", rect(0, 40, 50, 50), block=1)])
    empty = hand_page([])
    last = hand_page([hand_line("end", rect(0, 0, 50, 10))])
    assert text([first, empty, last]) == b"Title\n\none\ntwo\n\f\fend\n"


def test_the_results_order_is_kept_even_against_the_geometry():
    """A right column read before a lower left line stays first: the engine decided."""
    page = hand_page([hand_line("right column", rect(400, 300, 600, 320)), hand_line("left top", rect(0, 0, 200, 20))])
    assert text([page]).decode() == "right column\nleft top\n"


def test_text_is_utf8():
    assert text([hand_page([hand_line("Grüße 你好", rect(0, 0, 80, 10))])]) == "Grüße 你好\n".encode()


@pytest.mark.models
@pytest.mark.slow
def test_a_drawn_page_reads_back_as_its_lines(read, drawn):
    result = read(drawn.image, page=DocumentPage(index=1, count=2))
    page = OutputPage(result, drawn.image.shape[1], drawn.image.shape[0])
    pages = text([page, page]).decode().split("\f")
    assert len(pages) == 2 and [line for line in pages[0].splitlines() if line] == list(drawn.lines)
