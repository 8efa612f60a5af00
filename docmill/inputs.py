"""Which files docmill reads as images: one list, used by `docmill run`, the producer, the
converter's gate and the benchmarks, so they never disagree about what an input is."""

from __future__ import annotations

from collections import Counter

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp", ".gif")
DEFAULT_INCLUDE = ",".join(f"*{suffix}" for suffix in IMAGE_SUFFIXES)


def is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_SUFFIXES)


def suffix_of(name: str) -> str:
    """'scan.PDF' -> '.pdf'; a name without a suffix -> '(none)'. For counting what was skipped."""
    base = name.rsplit("/", 1)[-1]
    return "." + base.rsplit(".", 1)[1].lower() if "." in base.strip(".") else "(none)"


def describe_skipped(skipped: Counter) -> str:
    """'3 .pdf, 1 .txt' for a one-line summary, most frequent first."""
    return ", ".join(f"{n} {suffix}" for suffix, n in skipped.most_common())
