"""Counts in the lines docmill prints, with their nouns agreeing: '1 page', '1,204 pages'."""

from __future__ import annotations


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """`n` (with thousands separators) and `noun`, or its plural (`noun` + 's' unless given)
    when `n` is not 1."""
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"
