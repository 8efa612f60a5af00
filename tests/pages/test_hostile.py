"""Hostile PDFs give coded errors, a failing page costs only that page, and the limits on time
and memory are enforced by the render child on real pages that hang or explode pdfium."""

from __future__ import annotations

import io
import re
import subprocess
import sys
import time
from pathlib import Path

import pikepdf
import pytest

from tests.pages import (BLANK, BLOATED_PAGE, SLOW_PAGE, content_pdf, empty_pdf, encrypted,
                                    page_image, scanned_pdf, text_pdf)
from pages.document import DocumentError, PageLimits
from pages.source import open_document

LIMITS = PageLimits(dpi=100, render_timeout_s=20)


def open_error(data: bytes, limits: PageLimits = LIMITS) -> DocumentError:
    with pytest.raises(DocumentError) as err:
        open_document(data, limits)
    return err.value


def test_a_password_protected_pdf_is_encrypted() -> None:
    err = open_error(encrypted(text_pdf([["secret"]])))
    assert (err.code, err.page) == ("encrypted", None)


def test_owner_only_encryption_opens_without_a_password() -> None:
    with open_document(encrypted(text_pdf([["restricted"]]), user_password=""), LIMITS) as doc:
        assert [line.text for line in doc.embedded_lines(0)] == ["restricted"]


@pytest.mark.parametrize("fraction", [0.3, 0.9])
def test_a_truncated_pdf_is_a_decode_error(fraction: float) -> None:
    data = scanned_pdf([page_image("a"), page_image("b")])
    err = open_error(data[: int(len(data) * fraction)])
    assert err.code == "decode_error" and "not a readable PDF" in str(err)


def test_a_pdf_header_on_garbage_is_a_decode_error() -> None:
    assert open_error(b"%PDF-1.7\n" + b"\x00garbage" * 100).code == "decode_error"


def test_a_pdf_without_pages_is_a_decode_error() -> None:
    err = open_error(empty_pdf())
    assert (err.code, str(err)) == ("decode_error", "the PDF has no pages")


def test_a_broken_page_names_the_page_and_the_others_render() -> None:
    data = scanned_pdf([page_image("a", seed=1), page_image("b", seed=2), page_image("c", seed=3)])
    with pikepdf.open(io.BytesIO(data)) as pdf:
        second = pdf.pages[1].obj.objgen[0]
    header = re.search(rb"\n%d 0 obj" % second, data)  # its object header, overwritten below
    assert header is not None
    broken = data[: header.start() + 1] + b"X" * (header.end() - header.start() - 1) + data[header.end():]
    with open_document(broken, LIMITS) as doc:
        assert doc.page_count == 3
        with pytest.raises(DocumentError) as err:
            doc.render_page(1)
        assert (err.value.code, err.value.page) == ("decode_error", 1) and str(err.value).startswith("page 2:")
        assert doc.render_page(0).image.shape == doc.render_page(2).image.shape == (400, 600, 3)


HUGE_PT = 200 * 72.0  # 200 x 200 inches: the largest page PDF allows


def test_an_absurd_page_is_rendered_at_the_dpi_that_fits_the_pixel_cap() -> None:
    with open_document(content_pdf([BLANK], size=(HUGE_PT, HUGE_PT)), PageLimits()) as doc:
        info = doc.page_info(0)  # not rendered: 10000 x 10000 is 300 MB of bitmap
    assert info.dpi == pytest.approx(50.0, rel=1e-3)
    assert info.width * info.height <= PageLimits().max_pixels


def test_a_large_page_is_rendered_below_the_dpi_with_its_effective_dpi() -> None:
    side_pt = 30 * 72.0
    limits = PageLimits(dpi=200, max_pixels=4_000_000, render_timeout_s=20)
    with open_document(content_pdf([BLANK], size=(side_pt, side_pt)), limits) as doc:
        page = doc.render_page(0)
    assert page.dpi == pytest.approx(2000 / 30, rel=1e-3)
    assert page.image.shape[0] * page.image.shape[1] <= 4_000_000
    assert page.image.shape[0] >= 1995


def test_a_page_that_does_not_fit_even_at_the_floor_dpi_is_too_large() -> None:
    limits = PageLimits(max_pixels=4_000_000, min_dpi=50)
    with open_document(content_pdf([BLANK, BLANK], size=(HUGE_PT, HUGE_PT)), limits) as doc:
        for call in (doc.page_info, doc.render_page):
            with pytest.raises(DocumentError) as err:
                call(1)
            assert (err.value.code, err.value.page) == ("too_large", 1)
            assert "200x200 in" in str(err.value)


def test_a_hanging_render_is_cut_off_and_the_document_goes_on() -> None:
    limits = PageLimits(dpi=100, render_timeout_s=1.0)
    with open_document(content_pdf([BLANK, SLOW_PAGE, BLANK]), limits) as doc:
        assert doc.render_page(0).image.shape == (1100, 850, 3)
        started = time.monotonic()
        with pytest.raises(DocumentError) as err:
            doc.render_page(1)
        assert time.monotonic() - started < 3.0
        assert (err.value.code, err.value.page) == ("render_timeout", 1)
        assert doc.render_page(2).image.shape == (1100, 850, 3)  # a fresh child


def test_a_page_that_explodes_in_memory_is_cut_off_and_the_document_goes_on() -> None:
    limits = PageLimits(dpi=100, render_memory_mb=128, render_timeout_s=20)
    with open_document(content_pdf([BLOATED_PAGE, BLANK]), limits) as doc:
        with pytest.raises(DocumentError) as err:
            doc.render_page(0)
        assert (err.value.code, err.value.page) == ("render_memory", 0)
        assert "128 MB" in str(err.value)
        assert doc.render_page(1).image.shape == (1100, 850, 3)


def test_a_bitmap_past_the_memory_limit_is_refused_and_the_child_lives() -> None:
    """Here the child's own allocation fails (MemoryError), so the same child serves on."""
    limits = PageLimits(dpi=300, render_memory_mb=64, render_timeout_s=20)
    side_pt = 30 * 72.0  # 9000 x 9000 at 300 dpi: a 243 MB bitmap
    with open_document(content_pdf([BLANK, BLANK], size=(side_pt, side_pt)), limits) as doc:
        pid = doc._child._proc.pid  # noqa: SLF001 - which process served is the point
        with pytest.raises(DocumentError) as err:
            doc.render_page(0)
        assert (err.value.code, err.value.page) == ("render_memory", 0)
        assert doc.page_info(1).width == 9000 and doc._child._proc.pid == pid  # noqa: SLF001


_HANGING_PARENT = """
import sys
from tests.pages import SLOW_PAGE, content_pdf
from pages.document import PageLimits
from pages.source import open_document
doc = open_document(content_pdf([SLOW_PAGE]), PageLimits(render_timeout_s=600))
print(doc._child._proc.pid, flush=True)
doc.render_page(0)
"""


def _alive(pid: int) -> bool:
    """Running, as opposed to gone or a zombie waiting for a reaper."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            return not any(line.startswith("State:") and "Z" in line.split()[1] for line in status)
    except FileNotFoundError:
        return False


def test_the_child_dies_with_its_parent_even_mid_render() -> None:
    """A worker SIGKILLed while pdfium is stuck in a page leaves no renderer behind."""
    parent = subprocess.Popen([sys.executable, "-c", _HANGING_PARENT], stdout=subprocess.PIPE,
                              cwd=Path(__file__).resolve().parents[2])
    try:
        child = int(parent.stdout.readline())
        time.sleep(0.3)  # into the render
        assert _alive(child)
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(child)
