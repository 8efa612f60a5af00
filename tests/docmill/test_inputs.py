"""What docmill reads as an image and as a document, by name."""

from __future__ import annotations

import pytest

from docmill.inputs import is_document_name


@pytest.mark.parametrize(("name", "expected"), [
    ("a.pdf", True), ("dir/B.PDF", True), ("scan.tif", True), ("scan.TIFF", True),
    ("a.png", False), ("pdf", False), ("a.pdf.png", False), ("s3://bucket/x/y.Pdf", True)])
def test_document_names(name: str, expected: bool) -> None:
    assert is_document_name(name) is expected
