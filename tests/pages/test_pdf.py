"""PDF pages: counted, rendered at the DPI with /Rotate applied, page images in CCITT and JPEG 2000
read, text layers found and their lines boxed where the text is drawn."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from tests.pages import (TEXT_SIZE_PT, TEXT_X_PT, encoded, image_pdf, page_image, pieces_pdf,
                                    rotated, scanned_pdf, text_baseline_pt, text_pdf)
from pages.document import Document, EmbeddedLine, PageLimits
from pages.source import open_document

DPI = 100
LIMITS = PageLimits(dpi=DPI, render_timeout_s=20)


def px(points: float, dpi: float = DPI) -> float:
    return points * dpi / 72


def ink_bbox(image: np.ndarray) -> tuple[int, int, int, int]:
    """x0, y0, x1, y1 (inclusive) of the dark pixels."""
    ys, xs = np.nonzero(image.min(axis=2) < 128)
    return int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())


def box_bounds(line: EmbeddedLine) -> tuple[float, float, float, float]:
    xs, ys = [p[0] for p in line.box], [p[1] for p in line.box]
    return min(xs), min(ys), max(xs), max(ys)


def as_bgr(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"))[..., ::-1]


def test_every_page_renders_at_the_dpi_with_its_own_content() -> None:
    texts = ["First", "Second one", "Third and last"]  # no descenders: ink ends on the baseline
    with open_document(text_pdf([[t] for t in texts]), LIMITS) as doc:
        assert (doc.kind, doc.page_count) == ("pdf", 3)
        for index in range(3):
            page = doc.render_page(index)
            info = doc.page_info(index)
            assert page.image.shape == (1100, 850, 3) == (info.height, info.width, 3)
            assert page.image.dtype == np.uint8 and page.image.flags.writeable and page.image.flags.c_contiguous
            assert (page.index, page.dpi, page.has_text, info.dpi) == (index, DPI, True, DPI)
            x0, _, x1, y1 = ink_bbox(page.image)
            assert abs(x0 - px(TEXT_X_PT)) <= 3 and abs(y1 - px(text_baseline_pt(0))) <= 3
            assert [line.text for line in doc.embedded_lines(index)] == [texts[index]]
        assert ink_bbox(doc.render_page(0).image)[2] < x1  # "First" is shorter than "Third and last"


def test_a_page_turned_by_rotate_renders_turned_clockwise() -> None:
    limits = PageLimits(dpi=72)
    with open_document(text_pdf([["Upright"]]), limits) as doc:
        upright = doc.render_page(0).image
    with open_document(rotated(text_pdf([["Upright"]]), 90), limits) as doc:
        turned = doc.render_page(0).image
        assert (doc.page_info(0).width, doc.page_info(0).height) == (792, 612)
    assert turned.shape == (612, 792, 3)
    assert np.abs(turned.astype(int) - np.rot90(upright, k=-1)).mean() < 1.0


def test_a_sideways_scan_with_rotate_renders_upright() -> None:
    """How scanners store a landscape page: pixels turned, /Rotate turning them back."""
    scan = page_image("Landscape page", size=(600, 400))
    stored_sideways = scanned_pdf([scan.rotate(90, expand=True)], dpi=DPI)  # rotate(90) is counterclockwise
    with open_document(rotated(stored_sideways, 90), LIMITS) as doc:
        image = doc.render_page(0).image
    assert image.shape == (400, 600, 3)
    assert np.abs(image.astype(int) - as_bgr(scan)).mean() < 2.0


def test_embedded_lines_are_boxed_on_the_rendered_text() -> None:
    with open_document(text_pdf([["Hello World", "Second line here"]]), LIMITS) as doc:
        image = doc.render_page(0).image
        lines = doc.embedded_lines(0)
    assert [line.text for line in lines] == ["Hello World", "Second line here"]
    for i, line in enumerate(lines):
        left, top, right, bottom = box_bounds(line)
        assert abs(left - px(TEXT_X_PT)) <= 3 and abs(bottom - px(text_baseline_pt(i))) <= 3
        assert px(TEXT_SIZE_PT) * 0.6 < bottom - top < px(TEXT_SIZE_PT) * 1.1
        band = np.full_like(image, 255)
        band[int(top) - 3:int(bottom) + 4] = image[int(top) - 3:int(bottom) + 4]  # this line's rows only
        x0, y0, x1, y1 = ink_bbox(band)
        assert abs(x0 - left) <= 2 and abs(x1 - right) <= 2 and abs(y0 - top) <= 2 and abs(y1 - bottom) <= 2
    assert lines[0].box[0][0] < lines[0].box[1][0]  # clockwise from the top-left
    assert lines[0].box[1][1] < lines[0].box[2][1]


def test_embedded_lines_follow_rotate() -> None:
    with open_document(rotated(text_pdf([["Hello World"]]), 90), LIMITS) as doc:
        image = doc.render_page(0).image
        (line,) = doc.embedded_lines(0)
    left, top, right, bottom = box_bounds(line)
    assert bottom - top > right - left  # the line now runs down the page
    assert (left, top, right, bottom) == pytest.approx(ink_bbox(image), abs=2)
    # Turned clockwise, the text reads downwards with its top edge on the right: the box still
    # starts at the text's own top-left and goes round clockwise.
    assert line.box == ((right, top), (right, bottom), (left, bottom), (left, top))


def test_pieces_of_one_line_are_one_line_but_columns_stay_apart() -> None:
    with open_document(pieces_pdf([(72, "Hello"), (140, "World"), (400, "Total")]), LIMITS) as doc:
        lines = doc.embedded_lines(0)
    assert [line.text for line in lines] == ["Hello World", "Total"]
    assert box_bounds(lines[0])[2] < box_bounds(lines[1])[0]


def test_a_scanned_page_has_no_text_layer_and_renders_its_pixels() -> None:
    scans = [page_image("Scan one", seed=1), page_image("Scan two", seed=2)]
    with open_document(scanned_pdf(scans, dpi=DPI), LIMITS) as doc:
        for index, scan in enumerate(scans):
            page = doc.render_page(index)
            assert page.has_text is False and doc.embedded_lines(index) == []
            assert np.abs(page.image.astype(int) - as_bgr(scan)).mean() < 2.0


def test_a_ccitt_g4_page_image_is_read() -> None:
    bilevel = page_image("CCITT fax").point(lambda v: 255 if v > 128 else 0).convert("1")
    data = image_pdf(encoded(bilevel, "TIFF", compression="group4"), DPI)
    assert b"/CCITTFaxDecode" in data
    with open_document(data, LIMITS) as doc:
        image = doc.render_page(0).image
    assert (np.asarray(bilevel) == (image[..., 0] > 128)).mean() > 0.99


def test_a_jpeg2000_page_image_is_read() -> None:
    colour = page_image("JPEG 2000").convert("RGB")
    colour.paste((200, 30, 30), (500, 20, 580, 80))
    data = image_pdf(encoded(colour, "JPEG2000"), DPI)
    assert b"/JPXDecode" in data
    with open_document(data, LIMITS) as doc:
        image = doc.render_page(0).image
    assert np.abs(image.astype(int) - as_bgr(colour)).mean() < 3.0
    assert tuple(image[50, 540]) == pytest.approx((30, 30, 200), abs=8)  # red stays red: BGR out


def test_page_index_is_checked() -> None:
    with open_document(text_pdf([["one"]]), LIMITS) as doc:
        with pytest.raises(IndexError):
            doc.render_page(1)
        with pytest.raises(IndexError):
            doc.page_info(-1)


def test_close_ends_the_render_child_and_pages_outlive_it() -> None:
    doc = open_document(text_pdf([["one"]]), LIMITS)
    pid = doc._child._proc.pid  # noqa: SLF001 - the process is what this test is about
    image = doc.render_page(0).image
    before = image.copy()
    doc.close()
    doc.close()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert np.array_equal(image, before)  # the page's memory is the caller's now
    image[:10] = 0


def _settled_rss_mb(doc: Document, pid: int) -> float:
    """The child's resident memory once it has finished the last render (a round trip later)."""
    doc.page_info(0)
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        return next(int(line.split()[1]) / 1024 for line in status if line.startswith("VmRSS:"))


def test_memory_stays_flat_with_the_documents_length() -> None:
    """Each page is loaded, rendered and closed in turn: the child's memory after 24 distinct
    scanned pages is what it was after 4."""
    data = scanned_pdf([page_image(f"page {i}", size=(600, 800), seed=i) for i in range(24)], dpi=DPI)
    with open_document(data, PageLimits(dpi=200)) as doc:
        pid = doc._child._proc.pid  # noqa: SLF001 - the child's memory is what this test is about
        for index in range(4):
            doc.render_page(index)
        early = _settled_rss_mb(doc, pid)
        for index in range(4, 24):
            doc.render_page(index)
        assert _settled_rss_mb(doc, pid) - early < 4.0
