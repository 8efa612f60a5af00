"""Multi-page TIFF: every frame is a page, decoded like a one-page TIFF image, one at a time."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, TiffImagePlugin

from tests.pages import page_image, tagged_tiff, tiff
from pages.document import DocumentError, PageLimits
from pages.source import open_document
from pages.decode import decode_image


def frames() -> list[Image.Image]:
    """Three pages of different sizes and modes: grey, colour, bilevel."""
    return [page_image("one", size=(300, 200), seed=1),
            page_image("two", size=(400, 300), seed=2).convert("RGB"),
            page_image("three", size=(200, 100), seed=3).point(lambda v: 255 if v > 128 else 0).convert("1")]


@pytest.mark.parametrize("compression", [None, "tiff_lzw"])
def test_every_frame_is_a_page_with_its_pixels(compression: str | None) -> None:
    pages = frames()
    with open_document(tiff(pages, dpi=300, compression=compression), PageLimits()) as doc:
        assert (doc.kind, doc.page_count) == ("tiff", 3)
        for index, source in enumerate(pages):
            page = doc.render_page(index)
            expected = np.asarray(source.convert("RGB"))[..., ::-1]
            assert page.image.shape == expected.shape and page.image.dtype == np.uint8
            assert np.array_equal(page.image, expected)
            assert (page.index, page.dpi, page.has_text) == (index, 300.0, None)
            assert doc.embedded_lines(index) == []
        assert doc.page_info(1).width == 400 and doc.page_info(1).height == 300


def test_pages_can_be_read_in_any_order() -> None:
    pages = frames()
    with open_document(tiff(pages), PageLimits()) as doc:
        shapes = [doc.render_page(i).image.shape[:2] for i in (2, 0, 1, 2)]
    assert shapes == [(100, 200), (200, 300), (300, 400), (100, 200)]


def test_no_resolution_tag_is_no_dpi() -> None:
    with open_document(tiff(frames()), PageLimits()) as doc:
        assert doc.render_page(0).dpi is None and doc.page_info(2).dpi is None


def test_each_frame_states_its_own_resolution() -> None:
    """A scan bundle may mix a 300 dpi page, a page with no tag and a fax page: each page's
    resolution is its own frame's, never one read before it."""
    tags = [{282: 300, 283: 300, 296: 2}, {}, {282: 204, 283: 98, 296: 2}]
    with open_document(tagged_tiff(list(zip(frames(), tags))), PageLimits()) as doc:
        stated = [(doc.page_info(i).dpi, doc.page_info(i).dpi_y) for i in (0, 1, 2, 1, 0)]
    assert stated == [(300.0, None), (None, None), (204.0, 98.0), (None, None), (300.0, None)]


def test_a_frame_over_the_pixel_cap_is_too_large_and_the_rest_render() -> None:
    limits = PageLimits(max_pixels=100_000)  # frames are 60k, 120k and 20k pixels
    with open_document(tiff(frames()), limits) as doc:
        with pytest.raises(DocumentError) as err:
            doc.render_page(1)
        assert (err.value.code, err.value.page) == ("too_large", 1)
        assert doc.page_info(1).width == 400  # its size is still known
        assert doc.render_page(2).image.shape == (100, 200, 3)
        assert doc.render_page(0).image.shape == (200, 300, 3)


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
def test_a_truncated_tiff_is_a_decode_error() -> None:
    data = tiff(frames())
    with pytest.raises(DocumentError) as err:
        open_document(data[: len(data) // 2], PageLimits())
    assert (err.value.code, err.value.page) == ("decode_error", None)


def test_orientation_is_applied_to_every_frame_as_for_a_single_image() -> None:
    pages = frames()[:2]
    turned = TiffImagePlugin.ImageFileDirectory_v2()
    turned[274] = 6  # EXIF/TIFF orientation: show turned 90 degrees clockwise
    data = tiff(pages, tiffinfo=turned)
    with open_document(data, PageLimits()) as doc:
        for index in (0, 1, 0):
            expected = np.rot90(np.asarray(pages[index].convert("RGB")), k=-1)[..., ::-1]
            assert np.array_equal(doc.render_page(index).image, expected)
            assert doc.page_info(index).height == pages[index].width
        assert np.array_equal(doc.render_page(0).image, decode_image(tiff(pages[:1], tiffinfo=turned), 10**8))


def test_a_fax_frame_is_read_with_square_pixels_and_its_scale_back() -> None:
    """A frame at 204 x 98 dpi (a standard fax) is read stretched twice as tall; the page
    says how its pixels map back to the frame's own."""
    fax = page_image("fax", size=(408, 100), seed=4).point(lambda v: 255 if v > 128 else 0).convert("1")
    with open_document(tiff([fax, fax], compression="group3", dpi=None, resolution_unit=2,
                            tiffinfo={282: 204, 283: 98, 296: 2}), PageLimits()) as doc:
        page = doc.render_page(1)
        assert page.image.shape == (208, 408, 3)
        assert page.scale == (1.0, 100 / 208)
        assert (doc.page_info(1).width, doc.page_info(1).height, page.dpi) == (408, 100, 204.0)
        assert doc.page_info(1).dpi_y == 98.0


def test_reduced_resolution_copies_and_masks_are_not_pages() -> None:
    """A pyramidal TIFF (a IIIF master: the page, then halves of it) is one page; a scan that
    keeps a thumbnail after each page and a mask has only its pages, in order."""
    from tests.pages import tagged_tiff

    page = page_image("master", size=(800, 400), seed=5).convert("RGB")
    pyramid = tagged_tiff([(page, {254: 0}), (page.resize((400, 200)), {254: 1}), (page.resize((200, 100)), {254: 1})])
    with open_document(pyramid, PageLimits()) as doc:
        assert doc.page_count == 1 and doc.render_page(0).image.shape == (400, 800, 3)
        assert doc.is_image  # its page comes first: an image, read as one
    behind = tagged_tiff([(page.resize((200, 100)), {254: 1}), (page, {254: 0})])
    with open_document(behind, PageLimits()) as doc:  # a thumbnail first: the image decoder would read that
        assert doc.page_count == 1 and not doc.is_image and doc.render_page(0).image.shape == (400, 800, 3)
    one, two = page_image("one", size=(300, 200), seed=6), page_image("two", size=(400, 300), seed=7)
    scan = tagged_tiff([(one, {254: 2}), (one.resize((30, 20)), {254: 1}), (two, {254: 2}),
                        (two.resize((40, 30)), {255: 2}), (two.convert("1"), {254: 4})])
    with open_document(scan, PageLimits()) as doc:
        assert doc.page_count == 2
        assert [doc.render_page(i).image.shape[:2] for i in (0, 1)] == [(200, 300), (300, 400)]
        assert np.array_equal(doc.render_page(1).image, np.asarray(two.convert("RGB"))[..., ::-1])
