"""docmill: streaming batch OCR. The contracts every package shares (settings, storage URIs,
result schema, task message, model manifest, job state), the CLI entry point, and the Python
API: `from docmill import Ocr`. Importing the contracts loads no worker, producer or
converter code; `Ocr` is loaded on first use."""

from __future__ import annotations

from typing import Any

__version__ = "0.2.0"
__all__ = ["Ocr", "OcrLine", "OcrPage", "__version__"]


def __getattr__(name: str) -> Any:
    if name in ("Ocr", "OcrLine", "OcrPage"):
        from docmill import api

        return getattr(api, name)
    raise AttributeError(f"module 'docmill' has no attribute {name!r}")
