"""Where the benches find the checkout and the shared evaluation data beside it (`../shared`).
Standard library only: bench.gpu imports it before its dependencies are installed."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
SROIE_IMAGES = SHARED / "data" / "sroie_sample" / "images"
SROIE_LABELS = SHARED / "data" / "sroie_sample" / "labels.jsonl"
PADDLEOCR_TRUTH = SHARED / "data" / "paddleocr" / "ground_truth.json"  # its doc/ images transcribed
