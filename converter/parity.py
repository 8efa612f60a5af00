"""Parity: the converted ONNX model must compute what the Paddle model computes.

Both sides run on CPU with one thread, so the figures are the same on every run (the manifest
records them, and a republish of the same inputs must write the same bytes). Paddle runs as
Paddle Inference with graph optimisation and oneDNN off: the plain kernels are the reference.

Inputs: random ones at three or more shapes per model (each dynamic dimension takes several
values, batch included: the seed's assert_allclose check) and real ones: a rendered document
page for det, and text-line crops of that page for cls and rec.

Tolerances (max abs difference), measured on the real ch_PP-OCRv4 det/rec and mobile v2 cls:
- random inputs, default 1e-4: the differences are 5e-8 to 2e-6 (float32 summation order);
  1e-4 is fifty times the largest.
- real inputs, default 1e-3: a real page drives activations far harder than uniform noise, and
  the det map then differs by up to 1.3e-4 at pixels near probability 0.5, where the sigmoid
  is steepest (mean difference 6e-8). This is float32, not the converter: RapidOCR's own
  published ONNX of the same weights differs from Paddle by 1.0e-4 on the same page. 1e-3 is
  eight times that and still a hundred times below what a wrong conversion (a mistyped
  attribute, a lost dimension) produces, 1e-1 and more, or what moves a det pixel across the
  0.3 threshold in any way that matters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnxruntime as ort
from PIL import ImageDraw, ImageFont

from converter.limits import DEFAULT_REAL_TOLERANCE
from converter.paddle_model import PaddleModel, import_paddle
from demo.pages import PAGES, render

RANDOM_SEED = 20241120
DET_MEAN = (0.485, 0.456, 0.406)
DET_STD = (0.229, 0.224, 0.225)
DET_LIMIT_SIDE = 960
LINE_HEIGHT = 48
CLS_WIDTH = 192
MAX_CROPS = 8

# Shapes for each stage's dynamic dimensions (batch, height, width): det sides are multiples
# of 32 as the engine feeds them; rec/cls widths span short words to long lines.
STAGE_SHAPES: dict[str, list[tuple[int, int, int]]] = {
    "det": [(1, 64, 96), (2, 320, 224), (1, 640, 480)],
    "cls": [(1, 48, 192), (3, 48, 192), (2, 48, 96)],
    "rec": [(1, 48, 80), (2, 48, 320), (1, 48, 640)],
    "model": [(1, 32, 32), (2, 64, 64), (3, 96, 96)],
}


@dataclass(frozen=True)
class ParityCase:
    """One comparison: which input, its shape, the largest absolute difference found."""

    input: str
    shape: tuple[int, ...]
    max_abs_diff: float
    tolerance: float

    @property
    def passed(self) -> bool:
        return self.max_abs_diff <= self.tolerance


@dataclass(frozen=True)
class ParityReport:
    cases: tuple[ParityCase, ...]

    @property
    def max_abs_diff(self) -> float:
        return max(case.max_abs_diff for case in self.cases)

    @property
    def passed(self) -> bool:
        return all(case.passed for case in self.cases)

    def first_failure(self) -> ParityCase | None:
        return next((case for case in self.cases if not case.passed), None)

    def as_manifest(self) -> dict[str, Any]:
        """What a model set's manifest records under models[stage].parity."""
        return {"reference": "paddle-inference-cpu", "max_abs_diff": float(self.max_abs_diff),
                "cases": [{"input": c.input, "shape": list(c.shape), "max_abs_diff": float(c.max_abs_diff),
                           "tolerance": c.tolerance} for c in self.cases]}


class PaddleRunner:
    """Paddle Inference on CPU, one thread, no graph rewrites: the reference side."""

    def __init__(self, model: PaddleModel):
        inference = import_paddle().inference
        config = inference.Config(str(model.model_file), str(model.params_file))
        config.disable_gpu()
        config.disable_mkldnn()
        config.switch_ir_optim(False)
        config.set_cpu_math_library_num_threads(1)
        config.disable_glog_info()
        self._predictor = inference.create_predictor(config)

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        for name, array in zip(self._predictor.get_input_names(), inputs):
            handle = self._predictor.get_input_handle(name)
            handle.reshape(list(array.shape))
            handle.copy_from_cpu(np.ascontiguousarray(array))
        self._predictor.run()
        return [self._predictor.get_output_handle(name).copy_to_cpu()
                for name in self._predictor.get_output_names()]


class OnnxRunner:
    """onnxruntime on CPU with one thread, as deterministic as the reference."""

    def __init__(self, path: Path):
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self._session = ort.InferenceSession(str(path), sess_options=options,
                                             providers=["CPUExecutionProvider"])

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        names = [i.name for i in self._session.get_inputs()]
        return self._session.run(None, dict(zip(names, inputs)))


def random_shapes(declared: tuple[int, ...], stage: str) -> list[tuple[int, ...]]:
    """Concrete shapes for a declared input shape: fixed dimensions kept, dynamic ones (-1)
    filled from the stage's table (first = batch, last two = height and width), so every
    dynamic dimension takes more than one value. A fully fixed input repeats its one shape,
    each time with fresh random values."""
    table = STAGE_SHAPES.get(stage, STAGE_SHAPES["model"])
    return [_concrete(declared, batch, height, width) for batch, height, width in table]


def _concrete(declared: tuple[int, ...], batch: int, height: int, width: int) -> tuple[int, ...]:
    last = len(declared) - 1
    fill = {0: batch, last - 1: height, last: width} if last >= 2 else {0: batch, last: width}
    return tuple(dim if dim > 0 else fill.get(i, height) for i, dim in enumerate(declared))


def compare(reference: list[np.ndarray], converted: list[np.ndarray]) -> float:
    """Largest absolute difference over all outputs; inf when counts, shapes or NaNs disagree."""
    if len(reference) != len(converted):
        return math.inf
    worst = 0.0
    for ref, got in zip(reference, converted):
        if ref.shape != got.shape:
            return math.inf
        diff = np.abs(ref.astype(np.float64) - got.astype(np.float64))
        if diff.size and not np.isfinite(diff).all():
            return math.inf
        worst = max(worst, float(diff.max()) if diff.size else 0.0)
    return worst


def check_parity(model: PaddleModel, onnx_path: Path, stage: str, tolerance: float,
                 real_inputs: list[tuple[str, np.ndarray]] = (),
                 real_tolerance: float = DEFAULT_REAL_TOLERANCE,
                 declared: tuple[int, ...] | None = None) -> ParityReport:
    """Compare the two sides on random inputs (three or more shapes of `declared`, by default
    the Paddle program's input shape) and on `real_inputs`."""
    paddle_side, onnx_side = PaddleRunner(model), OnnxRunner(onnx_path)
    rng = np.random.default_rng(RANDOM_SEED)
    inputs = [("random", rng.uniform(-1.0, 1.0, shape).astype(np.float32), tolerance)
              for shape in random_shapes(declared or model.inputs[0].shape, stage)]
    inputs += [(label, array, real_tolerance) for label, array in real_inputs]
    return ParityReport(tuple(
        ParityCase(label, array.shape, compare(paddle_side.run([array]), onnx_side.run([array])), limit)
        for label, array, limit in inputs))


# --- real inputs -------------------------------------------------------------------------------

@dataclass(frozen=True)
class SamplePage:
    """A rendered document page (BGR) with the box of each text line on it."""

    name: str
    image: np.ndarray
    line_boxes: list[tuple[int, int, int, int]]  # left, top, right, bottom


def sample_page() -> SamplePage:
    """docmill's deterministic letter page: real text, known lines, no files needed."""
    page = PAGES[0]()
    image = render(page)
    draw = ImageDraw.Draw(image)
    boxes = []
    for item in page.items[:MAX_CROPS]:
        font = ImageFont.load_default(size=item.size)
        left, top, right, bottom = draw.textbbox((item.x, item.y), item.text, font=font, anchor=item.anchor)
        boxes.append((int(left) - 4, int(top) - 4, int(right) + 4, int(bottom) + 4))
    bgr = cv2.cvtColor(np.asarray(image.convert("RGB")), cv2.COLOR_RGB2BGR)
    return SamplePage(page.name, bgr, boxes)


def det_input(image: np.ndarray) -> np.ndarray:
    """PaddleOCR's det preprocessing (inference.yml): long side to 960, sides multiples of
    32, BGR scaled to [0, 1] then mean/std per channel; NCHW with a batch of one."""
    h, w = image.shape[:2]
    ratio = min(1.0, DET_LIMIT_SIDE / max(h, w))
    rh, rw = (max(32, int(round(side * ratio / 32)) * 32) for side in (h, w))
    resized = cv2.resize(image, (rw, rh)).astype(np.float32) / 255.0
    normalised = (resized - np.array(DET_MEAN, np.float32)) / np.array(DET_STD, np.float32)
    return np.ascontiguousarray(normalised.transpose(2, 0, 1)[None])


def line_input(image: np.ndarray, boxes: list[tuple[int, int, int, int]], width: int | None) -> np.ndarray:
    """Text-line crops at height 48, aspect kept, (x/255 - 0.5)/0.5, zero-padded on the right
    to `width` (cls) or to the widest crop (rec); one batch."""
    crops = [image[top:bottom, left:right] for left, top, right, bottom in boxes]
    widths = [max(1, math.ceil(LINE_HEIGHT * c.shape[1] / c.shape[0])) for c in crops]
    canvas_width = width or max(widths)
    batch = np.zeros((len(crops), 3, LINE_HEIGHT, canvas_width), np.float32)
    for i, (crop, crop_width) in enumerate(zip(crops, widths)):
        fitted = min(crop_width, canvas_width)
        resized = cv2.resize(crop, (fitted, LINE_HEIGHT)).astype(np.float32)
        batch[i, :, :, :fitted] = (resized / 255.0 - 0.5).transpose(2, 0, 1) / 0.5
    return batch


def real_inputs(stage: str, page: SamplePage) -> list[tuple[str, np.ndarray]]:
    """The real inputs a PP-OCR stage is compared on: the page for det, its lines for cls/rec."""
    if stage == "det":
        return [(f"page {page.name}", det_input(page.image))]
    if stage == "cls":
        return [(f"line crops of {page.name}", line_input(page.image, page.line_boxes, CLS_WIDTH))]
    if stage == "rec":
        return [(f"line crops of {page.name}", line_input(page.image, page.line_boxes, None))]
    return []
