"""Engine options: every knob of the OCR pipeline, with PaddleOCR's own defaults.

They are a shared contract because they travel: a model set's manifest records the
defaults measured for it, settings and `docmill run --set` override them, and task
messages carry them to workers. Layering, lowest first: PaddleOCR defaults (below) <
the model set's manifest `defaults` < DOCMILL_ENGINE__* settings < per-run overrides.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class EngineOptions(BaseModel):
    """Parameters of det -> cls -> rec; names follow PaddleOCR's predict_system flags."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    det_limit_side_len: int = Field(960, ge=32, le=8192)
    det_limit_type: Literal["max", "min", "resize_long"] = "max"
    det_small_text_side_len: int = Field(2560, ge=0, le=8192)  # a page of small print is detected again this fine (0: never)
    det_mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    det_std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    det_thresh: float = Field(0.3, gt=0, lt=1)
    det_box_thresh: float = Field(0.6, ge=0, lt=1)
    det_unclip_ratio: float = Field(1.5, gt=0, le=10)
    det_max_candidates: int = Field(1000, ge=1)
    det_use_dilation: bool = False
    det_score_mode: Literal["fast", "slow"] = "fast"
    det_min_size: int = Field(3, ge=1)
    det_batch_size: int = Field(4, ge=1, le=64)
    det_canvas_multiple: int = Field(32, ge=32, le=4096, multiple_of=32)
    use_angle_cls: bool = True
    cls_image_shape: tuple[int, int, int] = (3, 48, 192)
    cls_batch_size: int = Field(6, ge=1, le=1024)
    cls_thresh: float = Field(0.9, ge=0, le=1)
    cls_strong_thresh: float = Field(0.99, ge=0, le=1)  # to turn a line against its page's majority
    cls_min_aspect: float = Field(2.0, ge=0, le=100)  # shorter crops (width / height) follow the majority
    use_doc_orientation: bool = False  # turn pages by 90/180/270 before detection (needs an `ori` model)
    ori_min_score: float = Field(0.7, ge=0, le=1)  # turn a page only when the orientation model is this sure
    reading_order: Literal["columns", "rows"] = "columns"  # XY-cut columns and blocks, or PaddleOCR's rows
    rec_image_shape: tuple[int, int, int] = (3, 48, 320)
    rec_batch_size: int = Field(6, ge=1, le=1024)
    rec_batch_width: int = Field(0, ge=0)  # >0: a rec batch holds crops up to this many columns in all
    rec_width_multiple: int = Field(32, ge=8, le=1024)
    batch_buckets: bool = False  # each model run padded to a power-of-two batch: few input shapes on a GPU
    drop_score: float = Field(0.5, ge=0, le=1)
    drop_show_through: bool = True  # drop faint lines that read far better mirrored: the reverse side's text
    word_boxes: bool = False  # each line's words with their boxes (Line.words), from rec's character positions

    def merged(self, overrides: dict[str, Any] | None) -> "EngineOptions":
        """A copy with `overrides` applied and validated (None values are ignored)."""
        if not overrides:
            return self
        data = self.model_dump()
        data.update({k: v for k, v in overrides.items() if v is not None})
        return EngineOptions.model_validate(data)


# What suits a device better than a set's defaults, which were measured on CPU. On CUDA:
# - batches far larger than the CPU's 6 crops, by columns for rec (tens of wide lines or
#   hundreds of narrow ones per run), so each run is worth its launch and copy costs;
# - few input shapes, since each new one costs a cuDNN plan and arena growth. Without them
#   PP-OCRv6's rec met 109 distinct shapes on the 20 SROIE receipts on an H200 and its runs
#   took 50 of the 57 session seconds (docs/benchmarks.md, "First GPU run"). So every run's
#   batch is padded to a power of two (batch_buckets), det pages to 128-pixel canvases and
#   rec crops to 64-pixel widths. Chosen on 200 receipts (the engine's CUDA path run on CPU):
#   69 shapes in all against 174 (on 1,000 receipts: 80), at the same word F1 (0.909 against
#   0.910 on the receipts); 256-pixel canvases cost 0.007 F1, 128-pixel widths 0.005.
# On CPU, det runs one page at a time: ORT's threads fill the cores on one page already, and
# a batch of pages would hold each one's det working memory at once (the bench's mixed set:
# 428 against 474 MB with the CPU pixel budget, at the same images/s; docs/benchmarks.md).
DEVICE_DEFAULTS: dict[str, dict[str, Any]] = {
    "cpu": {"det_batch_size": 1},
    "cuda": {"det_batch_size": 8, "det_canvas_multiple": 128, "cls_batch_size": 128, "rec_batch_size": 256,
             "rec_batch_width": 32768, "rec_width_multiple": 64, "batch_buckets": True},
}


def nearest_option(name: str) -> str | None:
    """The engine option a misspelt `name` most likely meant, if any is close."""
    import difflib

    close = difflib.get_close_matches(name, list(EngineOptions.model_fields), n=1)
    return close[0] if close else None


def check_option_names(options: dict[str, Any], caller: str) -> None:
    """TypeError, as Python gives for an unexpected keyword, for the first key of `options`
    that is no engine option, with the nearest one that is."""
    for name in options:
        if name not in EngineOptions.model_fields:
            nearest = nearest_option(name)
            raise TypeError(f"{caller} got an unknown engine option {name!r}"
                            + (f"; did you mean {nearest}?" if nearest else ""))


def parse_option_assignments(pairs: list[str]) -> dict[str, Any]:
    """Turn CLI `key=value` strings into a validated overrides dict (values parsed as JSON
    when they parse, else kept as strings). Unknown keys and bad values raise ValueError
    with one line naming the option (and the nearest known one to a misspelt key), before
    any work starts."""
    import json

    known = set(EngineOptions.model_fields)
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or key not in known:
            nearest = nearest_option(key) if sep else None
            guess = f"did you mean {nearest}? " if nearest else ""
            raise ValueError(
                f"--set {pair!r}: {guess}expected KEY=VALUE with KEY one of {', '.join(sorted(known))}"
            )
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    try:
        EngineOptions().merged(out)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(part) for part in err["loc"])
        raise ValueError(f"--set {field}={out.get(field, err.get('input'))!r}: {err['msg']}") from None
    return out
