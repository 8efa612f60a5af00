"""Where every benchmark leaves its figures: bench/results/<name>.json (git-ignored)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def save_result(name: str, doc: dict[str, Any]) -> Path:
    """Write `doc` as bench/results/<name>.json, replacing the last run's; returns the path."""
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(doc, indent=1) + "\n", "utf-8")
    return path
