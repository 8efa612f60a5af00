"""`--quantize int8`: static QDQ int8 copies of a built set, kept only if they read the same.

Static quantisation (per-channel weights, activations calibrated on real inputs) uses the
CPU's int8 dot-product instructions (VNNI), where dynamic quantisation only slows these
conv-heavy models down. Calibration inputs come from running the fp32 set itself on the
built-in demo pages: det gets whole pages, cls and rec get the line crops the fp32 detector
finds, at the widths the engine really feeds them.

The int8 set then passes the accuracy gate (converter/gate.py) on CPU, the device it is
made for: its text against the fp32 set's, within `max_cer`, or it is refused and nothing is
published.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

import numpy as np

from docmill.modelset import STAGES, ModelSet, SourceProvenance, sha256_file
from docmill.settings import Settings

from converter.gate import demo_pages


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
