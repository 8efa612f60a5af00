"""Which files docmill reads as images and as documents: one list, used by `docmill run`,
the producer, the worker, the converter's gate and the benchmarks, so they never disagree
about what an input is. A document name is a candidate only: its bytes decide (a one-page
TIFF is an image)."""

from __future__ import annotations

from collections import Counter

# JPEG 2000 (.jp2, and .j2k/.jpf/.jpx) is the master format of many library and archive
# digitisation programmes; .jpe and .jfif are JPEG's other names.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".tif", ".tiff", ".bmp", ".webp", ".gif",
                  ".jp2", ".j2k", ".jpf", ".jpx")
DOCUMENT_SUFFIXES = (".pdf", ".tif", ".tiff")
INPUT_SUFFIXES = IMAGE_SUFFIXES + tuple(s for s in DOCUMENT_SUFFIXES if s not in IMAGE_SUFFIXES)
DEFAULT_INCLUDE = ",".join(f"*{suffix}" for suffix in INPUT_SUFFIXES)


def is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_SUFFIXES)


def is_document_name(name: str) -> bool:
    """PDF and TIFF names: read as documents when their bytes say so."""
    return name.lower().endswith(DOCUMENT_SUFFIXES)


def is_input_name(name: str) -> bool:
    """Anything docmill reads: an image or a document."""
    return name.lower().endswith(INPUT_SUFFIXES)


def suffix_of(name: str) -> str:
    """'scan.PDF' -> '.pdf'; a name without a suffix -> '(none)'. For counting what was skipped."""
    base = name.rsplit("/", 1)[-1]
    return "." + base.rsplit(".", 1)[1].lower() if "." in base.strip(".") else "(none)"


def describe_skipped(skipped: Counter) -> str:
    """'3 .pdf, 1 .txt' for a one-line summary, most frequent first."""
    return ", ".join(f"{n} {suffix}" for suffix, n in skipped.most_common())
