"""Result paths for documents and formats, and which --include and --out cannot go together."""

from __future__ import annotations

import pytest

from docmill.documents import results_read_again
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
