"""Documents are told from images by their bytes, and listed by their names."""

from __future__ import annotations

import pytest

from tests import fixtures_images as fx
from tests.pages import page_image, text_pdf, tiff
from pages.document import DocumentError, PageLimits
from pages.source import open_document, sniff_kind


def test_a_pdf_is_found_by_its_header_even_after_leading_junk() -> None:
    pdf = text_pdf([["x"]])
    assert sniff_kind(pdf) == "pdf"
    assert sniff_kind(pdf[:16]) == "pdf"
    assert sniff_kind(b"\0" * 1000 + pdf) == "pdf"
    assert sniff_kind(b"\0" * 1024 + pdf) == "image"  # past where readers look


@pytest.mark.parametrize("magic", [b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"])
def test_tiff_magic_little_big_endian_and_bigtiff(magic: bytes) -> None:
    assert sniff_kind(magic + b"\0" * 12) == "tiff"


def test_real_tiff_and_images() -> None:
    assert sniff_kind(tiff([page_image("a")])) == "tiff"
    assert sniff_kind(fx.encode(fx.marker_rgb(), "PNG")) == "image"
    assert sniff_kind(fx.encode(fx.marker_rgb(), "JPEG")) == "image"
    assert sniff_kind(b"") == "image"


@pytest.mark.parametrize("data", [b"", fx.encode(fx.marker_rgb(), "PNG")])
def test_an_image_or_nothing_is_not_a_document(data: bytes) -> None:
    with pytest.raises(DocumentError) as err:
        open_document(data, PageLimits())
    assert err.value.code == "decode_error"


def test_limits_refuse_nonsense() -> None:
    with pytest.raises(ValueError):
        PageLimits(dpi=40, min_dpi=50)
    with pytest.raises(ValueError):
        PageLimits(render_timeout_s=0)
