"""Counts and their nouns in printed lines."""

from __future__ import annotations

import pytest

from docmill.wording import counted


@pytest.mark.parametrize(("n", "noun", "plural", "expected"), [
    (1, "page", None, "1 page"),
    (0, "page", None, "0 pages"),
    (1_204, "earlier result", None, "1,204 earlier results"),
    (2, "unsafe key", None, "2 unsafe keys"),
    (3, "child", "children", "3 children"),
])
def test_a_count_takes_the_noun_it_needs(n: int, noun: str, plural: str | None, expected: str) -> None:
    assert counted(n, noun, plural) == expected
