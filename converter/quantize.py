"""`--quantize int8`: static QDQ int8 copies of a built set, kept only if they read the same.

Static quantisation (per-channel weights, activations calibrated on real inputs) uses the
CPU's int8 dot-product instructions (VNNI), where dynamic quantisation only slows these
conv-heavy models down. Calibration inputs come from running the fp32 set itself on the
built-in demo pages: det gets whole pages, cls and rec get the line crops the fp32 detector
finds, at the widths the engine really feeds them.

The gate compares the int8 set's text with the fp32 set's on a sample (the demo pages and,
with --gate-images, a folder of the user's own): the character error rate of int8 against
fp32 must stay within `max_cer` (0.002, the accuracy tolerance of the speed issue), or the
int8 set is refused and nothing is published.
"""

from __future__ import annotations

import contextlib
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from demo.pages import truth, write_samples
from demo.scoring import edit_distance
from docmill.inputs import is_image_name
from docmill.modelset import STAGES, ModelSet, SourceProvenance, sha256_file
from docmill.settings import Settings

from converter.limits import DEFAULT_MAX_CER



@dataclass(frozen=True)
class GateReport:
    pages: int
    chars: int
    edits: int
    max_cer: float
    fp32_seconds: float
    int8_seconds: float

    @property
    def cer(self) -> float:
        return self.edits / self.chars if self.chars else 0.0

    @property
    def passed(self) -> bool:
        return self.cer <= self.max_cer

    def line(self) -> str:
        speed = self.fp32_seconds / self.int8_seconds if self.int8_seconds else 0.0
        verdict = "passed" if self.passed else "FAILED"
        return (f"int8 gate {verdict}: CER against fp32 {self.cer:.4f} (limit {self.max_cer}) on "
                f"{self.pages} pages, {speed:.2f}x the fp32 speed")


def demo_pages() -> list[np.ndarray]:
    with tempfile.TemporaryDirectory() as tmp:
        write_samples(Path(tmp))
        return [cv2.imread(str(Path(tmp) / name)) for name in truth()]


def folder_images(folder: Path) -> list[np.ndarray]:
    paths = sorted(p for p in folder.rglob("*") if is_image_name(p.name))
    return [img for img in (cv2.imread(str(p)) for p in paths) if img is not None]


def calibration_inputs(model_set: ModelSet, settings: Settings, pages: list[np.ndarray]) -> dict[str, list[np.ndarray]]:
    """Real inputs for each model, as the engine builds them from these pages."""
    from worker.engine import det, geometry, rec
    from worker.engine.lineimage import line_tensor
    from worker.engine.pipeline import OcrEngine

    engine = OcrEngine.load(model_set, settings, "cpu")
    opts = engine.options
    inputs: dict[str, list[np.ndarray]] = {stage: [] for stage in STAGES}
    for page in pages:
        item = det.preprocess(page, opts)
        inputs["det"].append(item.tensor[None])
        prob = det.run(engine.det_session, [item], item.hw)[0]
        for box in det.postprocess(prob, item.src_hw, opts)[:24]:
            crop = geometry.crop_quad(page, box)
            _, cls_h, cls_w = opts.cls_image_shape
            inputs["cls"].append(line_tensor(crop, cls_h, cls_w)[None])
            width = rec.padded_width(crop, opts, None)
            inputs["rec"].append(line_tensor(crop, opts.rec_image_shape[1], width)[None])
    return inputs


def quantize_model(src: Path, dst: Path, samples: list[np.ndarray], input_name: str) -> None:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it: Iterator[dict[str, np.ndarray]] = iter({input_name: s} for s in samples)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._it, None)

    prepared = dst.with_suffix(".pre.onnx")
    with contextlib.chdir(dst.parent):  # the quantiser leaves temporary files in the cwd
        quant_pre_process(str(src), str(prepared), skip_symbolic_shape=True)
        quantize_static(str(prepared), str(dst), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    prepared.unlink()


def quantize_set(model_set: ModelSet, settings: Settings, out_root: Path, scratch: Path) -> Path:
    """Build `<set>-int8` beside the fp32 set: same dictionary and defaults, each model
    quantised with calibration inputs from the fp32 set's own run on the demo pages."""
    from converter.modelset_build import build_model_set
    from converter.onnx_info import read_onnx_info

    inputs = calibration_inputs(model_set, settings, demo_pages())
    scratch.mkdir(parents=True, exist_ok=True)
    paths = {}
    for stage in STAGES:
        paths[stage] = scratch / f"{stage}.int8.onnx"
        name = read_onnx_info(model_set.path(stage)).inputs[0].name
        quantize_model(model_set.path(stage), paths[stage], inputs[stage], name)
    provenance = {stage: SourceProvenance(uri=f"int8:{model_set.name}@{model_set.version}/{stage}.onnx",
                                          sha256=sha256_file(model_set.path(stage))) for stage in STAGES}
    ori = model_set.path("ori") if model_set.has("ori") else None  # carried over as it is
    if ori is not None:
        provenance["ori"] = model_set.manifest.models["ori"].source
    return build_model_set(f"{model_set.name}-int8", paths["det"], paths["cls"], paths["rec"],
                           model_set.characters, provenance, model_set.manifest.defaults, out_root, ori=ori)


def accuracy_gate(fp32: ModelSet, int8: ModelSet, settings: Settings, extra_images: Path | None,
                  max_cer: float = DEFAULT_MAX_CER) -> GateReport:
    """Character error rate of the int8 set's text against the fp32 set's, page by page."""
    import time

    from worker.engine.pipeline import OcrEngine

    pages = demo_pages() + (folder_images(extra_images) if extra_images else [])
    texts, seconds = {}, {}
    for label, model_set in (("fp32", fp32), ("int8", int8)):
        engine = OcrEngine.load(model_set, settings, "cpu")
        start = time.perf_counter()
        texts[label] = ["".join(line.text for line in page.lines) for page in engine.run(pages)]
        seconds[label] = time.perf_counter() - start
    chars = sum(len(t) for t in texts["fp32"])
    edits = sum(edit_distance(a, b) for a, b in zip(texts["fp32"], texts["int8"]))
    return GateReport(len(pages), chars, edits, max_cer, seconds["fp32"], seconds["int8"])
