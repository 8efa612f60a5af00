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
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from docmill.modelset import STAGES, ModelSet, ModelSetError, SourceProvenance
from docmill.settings import Settings

from converter.gate import accuracy_gate, demo_pages
from converter.limits import DEFAULT_MAX_CER


# Per-channel QDQ needs DequantizeLinear's `axis`, which came with opset 13; older models
# (PP-OCRv6's det is opset 11) are converted up first.
QDQ_MIN_OPSET = 13


def calibration_inputs(model_set: ModelSet, settings: Settings, pages: list[np.ndarray],
                       stages: tuple[str, ...] = STAGES) -> dict[str, list[np.ndarray]]:
    """Real inputs for each of `stages`, as the engine builds them from these pages."""
    from worker.engine import det, geometry, rec
    from worker.engine.lineimage import line_tensor
    from worker.engine.pipeline import OcrEngine

    engine = OcrEngine.load(model_set, settings, "cpu")
    opts = engine.options
    inputs: dict[str, list[np.ndarray]] = {stage: [] for stage in STAGES}
    for page in pages:
        item = det.preprocess(page, opts)
        inputs["det"].append(det.batch([item], item.hw, opts).normalized())
        if not {"cls", "rec"} & set(stages):
            continue  # no crops to calibrate
        prob = det.run(engine.det_session, [item], item.hw, opts)[0]
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

    upgraded = dst.with_suffix(".opset.onnx")
    prepared = dst.with_suffix(".pre.onnx")
    with contextlib.chdir(dst.parent):  # the quantiser leaves temporary files in the cwd
        quant_pre_process(str(_at_least_opset(src, upgraded)), str(prepared), skip_symbolic_shape=True)
        quantize_static(str(prepared), str(dst), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    prepared.unlink()
    upgraded.unlink(missing_ok=True)


def _at_least_opset(src: Path, scratch: Path) -> Path:
    """`src` itself when its opset allows per-channel QDQ, else a copy converted up, at `scratch`."""
    import onnx
    from onnx import version_converter

    model = onnx.load(str(src))
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset >= QDQ_MIN_OPSET:
        return src
    onnx.save(version_converter.convert_version(model, QDQ_MIN_OPSET), str(scratch))
    return scratch


@dataclass(frozen=True)
class Int8Models:
    """A set's model files with `stages` quantised, and where each file came from."""

    fp32: ModelSet
    name: str
    paths: dict[str, Path]
    provenance: dict[str, SourceProvenance]

    def build(self, out_root: Path) -> Path:
        """The set under `out_root`, the fp32 set's dictionary and defaults carried over."""
        from converter.modelset_build import build_model_set

        ori = self.fp32.path("ori") if self.fp32.has("ori") else None
        return build_model_set(self.name, self.paths["det"], self.paths["cls"], self.paths["rec"],
                               self.fp32.characters, self.provenance, self.fp32.manifest.defaults, out_root,
                               ori=ori)


def quantize_models(model_set: ModelSet, settings: Settings, scratch: Path, stages: tuple[str, ...] = STAGES,
                    name: str | None = None) -> Int8Models:
    """`stages` quantised into `scratch` with calibration inputs from the fp32 set's own run on
    the demo pages; every other model (ori included) carried over as it is. The set is named
    `name`, by default `<set>-int8`."""
    from converter.onnx_info import read_onnx_info

    inputs = calibration_inputs(model_set, settings, demo_pages(), stages)
    scratch.mkdir(parents=True, exist_ok=True)
    carried = [*STAGES, *(["ori"] if model_set.has("ori") else [])]
    paths = {stage: model_set.path(stage) for stage in carried}
    provenance = {stage: model_set.manifest.models[stage].source for stage in carried}
    for stage in stages:
        paths[stage] = scratch / f"{stage}.int8.onnx"
        quantize_model(model_set.path(stage), paths[stage], inputs[stage],
                       read_onnx_info(model_set.path(stage)).inputs[0].name)
        provenance[stage] = SourceProvenance(uri=f"int8:{model_set.name}@{model_set.version}/{stage}.onnx",
                                             sha256=model_set.manifest.models[stage].sha256)
    if model_set.manifest.dictionary.source is not None:
        provenance["dict"] = model_set.manifest.dictionary.source
    return Int8Models(model_set, name or f"{model_set.name}-int8", paths, provenance)


class GateFailed(ModelSetError):
    """An int8 copy read differently from its fp32 set, or could not be made; nothing was built
    where --models finds it. A ModelSetError, so a command that resolves the set says so in
    one line."""


def gated_int8_set(model_set: ModelSet, settings: Settings, out_root: Path, scratch: Path,
                   stages: tuple[str, ...] = STAGES, name: str | None = None, extra_images: Path | None = None,
                   max_cer: float = DEFAULT_MAX_CER, progress: Callable[[str], None] = lambda message: None) -> Path:
    """Quantise, build the copy in `scratch`, gate it on CPU against the fp32 set, and only
    when it passes build it under `out_root` (the same files, so the same version): a copy
    that reads differently never reaches a folder `--models` can name. Raises GateFailed, also
    for whatever ORT's quantiser raises."""
    try:
        models = quantize_models(model_set, settings, scratch / "int8", stages, name)
    except Exception as exc:  # noqa: BLE001 - ORT's quantiser raises bare Exceptions
        raise GateFailed(f"{model_set.name}: int8 quantization failed: {str(exc).splitlines()[0]}") from exc
    progress(f"{models.name}: {model_set.name}'s {', '.join(stages)} quantized to int8 (static, calibrated "
             "on the demo pages)")
    staged = ModelSet.load(models.build(scratch / "staged"))
    report = accuracy_gate(model_set, staged, "int8", settings, extra_images, max_cer, "cpu")
    progress(f"{models.name}: {report.line()}")
    if not report.passed:
        raise GateFailed(f"{staged.name} refused: {report.line()}; nothing published")
    return models.build(out_root)
