"""What docmill reads as an image and as a document, by name, and which names --include takes."""

from __future__ import annotations

import pytest

from docmill.inputs import is_document_name, may_be_document, parse_include


@pytest.mark.parametrize(("name", "expected"), [
    ("a.pdf", True), ("dir/B.PDF", True), ("scan.tif", True), ("scan.TIFF", True),
    ("a.png", False), ("pdf", False), ("a.pdf.png", False), ("s3://bucket/x/y.Pdf", True)])
def test_document_names(name: str, expected: bool) -> None:
    assert is_document_name(name) is expected


@pytest.mark.parametrize(("name", "expected"), [
    ("a.jpg", True), ("a.JFIF", True), ("a.jpe", True), ("master.jp2", True), ("tile.J2K", True),
    ("x.jpf", True), ("x.jpx", True), ("a.pdf", True), ("notes.txt", False), ("a.jp2.json", False)])
def test_input_names(name: str, expected: bool) -> None:
    from docmill.inputs import is_input_name

    assert is_input_name(name) is expected


def test_every_image_suffix_names_a_format_the_decoder_opens() -> None:
    """The suffix list and the decoder's formats are two facts that must agree: a listed
    suffix whose format the decoder refuses would turn a whole folder into decode errors."""
    from PIL import Image

    from docmill.inputs import IMAGE_SUFFIXES
    from pages.decode import FORMATS

    Image.init()
    assert {Image.EXTENSION[suffix] for suffix in IMAGE_SUFFIXES} <= set(FORMATS) | {"MPO"}


def test_include_patterns_match_names_or_whole_keys_case_insensitively():
    include = parse_include(" *.jpg , scans/*.png,,")
    assert include.patterns == ("*.jpg", "scans/*.png")
    cases = {"a.jpg": True, "deep/b.JPG": True, "c.jpgx": False, "x.png": False,
             "scans/x.png": True, "scans/y/z.PNG": True, "a/scans/x.png": False}
    assert {key: include(key) for key in cases} == cases
    with pytest.raises(ValueError):
        parse_include(" , ")


@pytest.mark.parametrize(("name", "expected"), [
    ("a.pdf", True), ("scan.TIF", True), ("3fa9c2e1", True), ("blobs/3fa9c2e1", True), ("notes.txt", True),
    ("a.jpg", False), ("a.PNG", False), ("master.jp2", False)])
def test_only_an_image_name_is_read_as_an_image_without_looking(name: str, expected: bool) -> None:
    """A hash-named blob may hold a PDF: its bytes must decide, or a PDF would be decoded as an image."""
    assert may_be_document(name) is expected
