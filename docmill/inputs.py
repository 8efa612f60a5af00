"""Which files docmill reads as images and as documents: one list, used by `docmill run`,
the producer, the worker, the converter's gate and the benchmarks, so they never disagree
about what an input is. A document name is a candidate only: its bytes decide (a one-page
TIFF is an image)."""

from __future__ import annotations

import fnmatch
import re
from collections import Counter

# JPEG 2000 (.jp2, and .j2k/.jpf/.jpx) is the master format of many library and archive
# digitisation programmes; .jpe and .jfif are JPEG's other names.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".tif", ".tiff", ".bmp", ".webp", ".gif",
                  ".jp2", ".j2k", ".jpf", ".jpx")
DOCUMENT_SUFFIXES = (".pdf", ".tif", ".tiff")
INPUT_SUFFIXES = IMAGE_SUFFIXES + tuple(s for s in DOCUMENT_SUFFIXES if s not in IMAGE_SUFFIXES)
DEFAULT_INCLUDE = ",".join(f"*{suffix}" for suffix in INPUT_SUFFIXES)
INCLUDE_HELP = (f'files to read: glob patterns, comma-separated (default "{DEFAULT_INCLUDE}"); a pattern with "/" '
                'matches the whole key; "*" takes every file, and a name with no image suffix is read as what its '
                'bytes are (PDF, TIFF or image)')


def is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_SUFFIXES)


def is_document_name(name: str) -> bool:
    """PDF and TIFF names: read as documents when their bytes say so."""
    return name.lower().endswith(DOCUMENT_SUFFIXES)


def is_input_name(name: str) -> bool:
    """Anything docmill reads by default: an image or a document."""
    return name.lower().endswith(INPUT_SUFFIXES)


def may_be_document(name: str) -> bool:
    """Whether a file must be opened to know if it is a document: PDF and TIFF names, and
    names with no image suffix (hash-named blobs that an --include took in). Their first bytes
    decide; only an image name is read as an image without looking."""
    return is_document_name(name) or not is_image_name(name)


def suffix_of(name: str) -> str:
    """'scan.PDF' -> '.pdf'; a name without a suffix -> '(none)'. For counting what was skipped."""
    base = name.rsplit("/", 1)[-1]
    return "." + base.rsplit(".", 1)[1].lower() if "." in base.strip(".") else "(none)"


def describe_skipped(skipped: Counter) -> str:
    """'3 .pdf, 1 .txt' for a one-line summary, most frequent first."""
    return ", ".join(f"{n} {suffix}" for suffix, n in skipped.most_common())


class Include:
    """Glob patterns, case-insensitive. A pattern without '/' matches the file name; one with
    '/' matches the key relative to the input prefix. Compiled once: it runs on every key."""

    def __init__(self, patterns: tuple[str, ...]) -> None:
        if not patterns:
            raise ValueError("--include needs at least one pattern")
        self.patterns = patterns
        self._name_re = _compile([p for p in patterns if "/" not in p])
        self._key_re = _compile([p for p in patterns if "/" in p])

    def __call__(self, key: str) -> bool:
        name = key.rsplit("/", 1)[-1]
        return bool((self._name_re and self._name_re.match(name))
                    or (self._key_re and self._key_re.match(key)))


def _compile(patterns: list[str]) -> re.Pattern[str] | None:
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns), re.IGNORECASE)


def parse_include(text: str) -> Include:
    """'*.jpg, *.png' -> Include(('*.jpg', '*.png'))."""
    return Include(tuple(p.strip() for p in text.split(",") if p.strip()))
