"""The accuracy gate every reduced-precision copy of a set passes (int8, fp16): its text
against the fp32 set's on the same pages, on the same device.

The sample is the built-in demo pages and, with --gate-images, a folder of the user's own.
The character error rate of the copy's text against the fp32 set's must stay within
`max_cer` (0.002, the accuracy tolerance of the speed issue), or the copy is refused and
nothing is published.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from demo.pages import truth, write_samples
from demo.scoring import edit_distance
from docmill.inputs import is_image_name
from docmill.modelset import ModelSet
from docmill.settings import Settings

from converter.limits import DEFAULT_MAX_CER


@dataclass(frozen=True)
class GateReport:
    variant: str  # "int8", "fp16": what was compared with fp32
    device: str  # where both sets ran
    pages: int
    chars: int
    edits: int
    max_cer: float
    fp32_seconds: float
    variant_seconds: float

    @property
    def cer(self) -> float:
        return self.edits / self.chars if self.chars else 0.0

    @property
    def passed(self) -> bool:
        return self.cer <= self.max_cer

    def line(self) -> str:
        speed = self.fp32_seconds / self.variant_seconds if self.variant_seconds else 0.0
        verdict = "passed" if self.passed else "FAILED"
        return (f"{self.variant} gate {verdict}: CER against fp32 {self.cer:.4f} (limit {self.max_cer}) on "
                f"{self.pages} pages on {self.device}, {speed:.2f}x the fp32 speed")

    def as_dict(self) -> dict[str, object]:
        """The figures a benchmark records beside its runs."""
        return {"variant": self.variant, "device": self.device, "pages": self.pages, "chars": self.chars,
                "edits": self.edits, "cer": round(self.cer, 5), "max_cer": self.max_cer,
                "passed": self.passed, "fp32_s": round(self.fp32_seconds, 2),
                "variant_s": round(self.variant_seconds, 2)}


def demo_pages() -> list[np.ndarray]:
    with tempfile.TemporaryDirectory() as tmp:
        write_samples(Path(tmp))
        return [cv2.imread(str(Path(tmp) / name)) for name in truth()]


def folder_images(folder: Path) -> list[np.ndarray]:
    paths = sorted(p for p in folder.rglob("*") if is_image_name(p.name))
    return [img for img in (cv2.imread(str(p)) for p in paths) if img is not None]


def accuracy_gate(fp32: ModelSet, variant_set: ModelSet, variant: str, settings: Settings,
                  extra_images: Path | None, max_cer: float = DEFAULT_MAX_CER, device: str = "cpu") -> GateReport:
    """Character error rate of `variant_set`'s text against `fp32`'s, page by page, both
    loaded on `device` (the one the copy is made for: int8 on CPU, fp16 on CUDA)."""
    from worker.engine.pipeline import OcrEngine

    pages = demo_pages() + (folder_images(extra_images) if extra_images else [])
    texts, seconds = {}, {}
    for label, model_set in (("fp32", fp32), (variant, variant_set)):
        engine = OcrEngine.load(model_set, settings, device)
        start = time.perf_counter()
        texts[label] = ["".join(line.text for line in page.lines) for page in engine.run(pages)]
        seconds[label] = time.perf_counter() - start
    chars = sum(len(t) for t in texts["fp32"])
    edits = sum(edit_distance(a, b) for a, b in zip(texts["fp32"], texts[variant]))
    return GateReport(variant, device, len(pages), chars, edits, max_cer, seconds["fp32"], seconds[variant])
