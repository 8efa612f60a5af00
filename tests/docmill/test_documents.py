"""Result paths for documents and formats, and which --include and --out cannot go together."""

from __future__ import annotations

import pytest

from docmill.documents import page_result_uri, page_results_of, results_read_again
from docmill.inputs import DEFAULT_INCLUDE, parse_include


@pytest.mark.parametrize(("include", "roots", "out", "refused"), [
    ("*", ["in"], "in/out", True),  # the blobs' results would be read next time
    ("*", ["in"], "in", True),  # --out the input itself
    ("[0-9a-f]*", ["in"], "in/out", True),  # hex-named blobs, and their results
    ("*", ["s3://b/in"], "s3://b/in/out", True),
    ("*", ["other", "in"], "in/out", True),
    ("*", ["in"], "out", False),  # --out beside the input
    ("*", ["s3://b/in"], "s3://b/out", False),
    (DEFAULT_INCLUDE, ["in"], "in/out", False),  # named inputs: written_by_docmill tells their results apart
    ("*.tif, *.pdf", ["in"], "in/out", False),  # takes no blob
    ("*.json", ["in"], "in/out", False),
])
def test_an_include_that_takes_blob_results_inside_the_input_is_refused(include: str, roots: list[str], out: str,
                                                                        refused: bool) -> None:
    sentence = results_read_again(parse_include(include), include, roots, out)
    assert (sentence is not None) is refused
    if refused:
        assert f"--out {out} lies inside the input" in sentence and "put --out outside the input" in sentence


@pytest.mark.parametrize("count", [1, 12, 9_999, 10_000, 123_456])
def test_a_documents_page_names_sort_in_page_order(count: int) -> None:
    numbers = sorted(n for n in {1, 2, 9, 10, 99, 100, 999, 1_000, 9_999, 10_000, 99_999, 100_000, count}
                     if n <= count)
    names = [page_result_uri("out/scan.pdf.json", n, count) for n in numbers]
    assert sorted(names) == names
    assert len({len(name) for name in names}) == 1
    if count < 10_000:  # the names results up to 9,999 pages have always had
        assert names[0] == "out/scan.pdf/page-0001.json"
    assert page_results_of(names) == {"out/scan.pdf.json"}  # each name is one a later run knows as a page's


@pytest.mark.parametrize(("number", "count"), [(0, 5), (6, 5)])
def test_a_page_outside_its_document_has_no_name(number: int, count: int) -> None:
    with pytest.raises(ValueError, match=f"page {number} is not within 1..{count}"):
        page_result_uri("out/scan.pdf.json", number, count)
