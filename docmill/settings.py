"""The one settings object: environment variables with the DOCMILL_ prefix, validated at start.

No other module reads the environment on its own; everything takes a `Settings`.
`docmill config` prints it with secrets masked (see `masked_dump`).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import (BaseModel, ConfigDict, Field, SecretStr, ValidationError, ValidationInfo, create_model,
                      field_validator, model_validator)

from docmill.environment import EnvironmentModel
from docmill.options import EngineOptions

ENV_PREFIX = "DOCMILL_"
DEFAULT_MODEL_SET = "pp-ocrv6-int8det"
GPU_DEFAULT_MODEL_SET = "pp-ocrv6"  # Settings.models_for: the same set, its detector in fp32
DEFAULT_PIXEL_BUDGET_MP = 96.0  # Settings.pixel_budget when pixel_budget_mp is 0

Device = Literal["auto", "cpu", "cuda"]


def _all_optional(model: type[BaseModel]) -> dict[str, Any]:
    """Every field of `model` as `Optional[...] = None`, for partial overrides."""
    return {name: (field.annotation | None, None) for name, field in model.model_fields.items()}


class _EngineOverridesBase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.model_dump().items() if v is not None}


EngineOverrides = create_model(
    "EngineOverrides",
    __base__=_EngineOverridesBase,
    __doc__="DOCMILL_ENGINE__<OPTION> overrides of EngineOptions; None keeps the manifest's value.",
    **_all_optional(EngineOptions),
)


class Settings(EnvironmentModel):
    """Everything an operator can set. Env: DOCMILL_<FIELD>, nested with `__`."""

    env_prefix = ENV_PREFIX
    model_config = ConfigDict(extra="ignore", validate_default=True)

    models: str = Field(DEFAULT_MODEL_SET, description="model set: preset name, folder or s3:// URI")
    cache_dir: Path = Field(default_factory=lambda: Path.home() / ".cache" / "docmill")
    device: Device = "auto"
    intra_op_threads: int = Field(0, ge=0, description="ONNXRuntime intra-op threads; 0 = ORT default")
    inter_op_threads: int = Field(0, ge=0)
    ort_spinning: bool = Field(False, description="let ONNXRuntime's idle intra-op threads spin between runs "
                               "(its default); off, they sleep and leave the cores to decoding and "
                               "post-processing")
    cpu_arena: Literal["shared", "shrink", "session", "off"] = Field(
        "shared", description="ONNXRuntime's CPU memory arena: one for all of the process's sessions, "
        "kept between runs (shared); one per session with its unused chunks handed back after every "
        "run (shrink); one per session that keeps its high-water mark (session, ORT's default); or "
        "none (off)")
    graph_optimization: Literal["disable", "basic", "extended", "all"] = "all"
    fold_graph: bool = Field(True, description="rewrite PP-LCNet's affine and hard-swish layers into "
                             "their convolutions before ONNXRuntime loads a model (exact; files untouched)")
    batch_images: int = Field(8, ge=1, le=256, description="images per engine batch")
    engine_streams: int = Field(0, ge=0, le=8, description="engine batches run at once per process, so one "
                                "batch's host work overlaps another's inference; 0 = the engine's "
                                "default (2: on CPU each run then takes its share of the cores)")
    pixel_budget_mp: float = Field(0, ge=0, le=10_000, description="megapixels of pages one process "
                                   "holds at once, each page counted with what detection holds for it; "
                                   "a bigger page runs alone; 0 = 96")
    cuda_conv_algo_search: Literal["EXHAUSTIVE", "HEURISTIC", "DEFAULT"] = Field(
        "HEURISTIC", description="cuDNN conv algorithm search; EXHAUSTIVE re-benchmarks every new shape, "
                                 "DEFAULT is cuDNN's fallback mode (PP-OCRv6 rec: 0.6 receipts/s on an H200)")
    cuda_prefer_nhwc: bool = Field(False, description="CUDA: run convolutions channels-last, the layout tensor "
                                   "cores work in (ORT's prefer_nhwc, in its default builds since 1.20); off "
                                   "until a GPU run shows it helps (bench.gpu --sweep)")
    gpu_mem_limit_mb: int | None = Field(None, ge=256, description="cap on the CUDA arena per session")
    session_per_shape: bool = Field(False, description="CUDA: one ONNXRuntime session per input shape, up to "
                                    "shape_sessions a model, so that no session alternates shapes (since ORT 1.20 "
                                    "a Conv keeps one cuDNN plan, for its last shape: onnxruntime issue 23006)")
    shape_sessions: int = Field(16, ge=1, le=4096, description="with session_per_shape: sessions one model may "
                                "hold; later shapes share its first session")
    io_binding: bool = Field(False, description="run each model through ONNXRuntime's I/O binding: inputs "
                             "copied to the device when bound, outputs left on the session's device and "
                             "copied back after the run; off unless a GPU run shows it helps (bench.gpu --sweep)")
    tensorrt: bool = Field(False, description="put the TensorRT provider first (engines cached on disk)")
    malloc_mmap_threshold_kb: int = Field(128, ge=0, le=32768, description="fix glibc's mmap threshold so "
                                          "freed page-sized buffers go back to the system (0: glibc's default)")
    max_image_bytes: int = Field(64 * 1024 * 1024, ge=1)
    max_image_pixels: int = Field(100_000_000, ge=1)
    max_document_bytes: int = Field(4 * 1024 ** 3, ge=1, description="largest PDF or TIFF read; it is "
                                    "spooled to a temporary file, never held in memory whole")
    pdf_dpi: float = Field(150.0, gt=0, le=1200, description="PDF render resolution (bench/pdf_dpi.py: the "
                           "lowest at which 6-12 pt text read as well as at 300)")
    pdf_min_dpi: float = Field(50.0, gt=0, le=1200, description="a PDF page that fits max_image_pixels only "
                               "below this is refused as too_large")
    render_timeout_s: float = Field(60.0, gt=0, le=3600, description="wall-clock limit on opening a PDF and "
                                    "on each page's render")
    render_memory_mb: int = Field(2048, ge=64, description="memory the PDF render child may add for one page")
    broker_url: SecretStr = SecretStr("redis://127.0.0.1:6379/0")
    s3_endpoint_url: str | None = None
    task_retries: int = Field(8, ge=0, le=100, description="retries (with backoff up to 60 s) of a task "
                              "that fails as a whole before its items get error results")
    visibility_timeout_s: int = Field(3600, ge=1, description="broker re-delivers unacked tasks after this; "
                                      "keep it longer than the slowest task")
    restore_interval_s: int = Field(10, ge=1, description="how often a worker looks for tasks left unacked "
                                    "past the visibility timeout (a killed worker's) and re-queues them")
    heartbeat_s: int = Field(5, ge=1, le=300, description="how often a worker beats in Redis and records "
                             "the tasks it holds (prefetched, running, waiting out a retry's countdown)")
    worker_lost_after_s: int = Field(30, ge=3, description="a worker silent this long counts as lost: a live "
                                     "worker re-queues its unacked tasks then, not after the visibility timeout")
    broker_wait_s: int = Field(60, ge=0, le=3600, description="how long `docmill worker` waits for the broker "
                               "to answer at start before it exits with one line")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "WARNING"
    engine: EngineOverrides = Field(default_factory=EngineOverrides)

    @field_validator("cache_dir")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()

    @field_validator("worker_lost_after_s")
    @classmethod
    def _outlasts_late_beats(cls, value: int, info: ValidationInfo) -> int:
        """A worker whose beat is merely late (a slow Redis call, a busy host) must not count
        as lost: its tasks would run twice."""
        if value <= 2 * info.data.get("heartbeat_s", 0):
            raise ValueError("must be more than twice DOCMILL_HEARTBEAT_S")
        return value

    @model_validator(mode="after")
    def _engine_overrides_in_range(self) -> "Settings":
        """Overrides are checked against EngineOptions' bounds at start, not at first use."""
        try:
            EngineOptions().merged(self.engine.as_dict())
        except ValidationError as exc:
            err = exc.errors()[0]
            raise ValueError(f"engine.{err['loc'][0]}: {err['msg']}") from None
        return self

    def pixel_budget(self) -> int:
        """The budget in pixels: the setting, or 96 MP when it is 0. That lets two receipts
        (41 MP counted each) in at once, one per engine stream, while a 35 MP scan (90)
        runs alone, on every core; a GPU is fed batches of pages within the same bound."""
        megapixels = self.pixel_budget_mp or DEFAULT_PIXEL_BUDGET_MP
        return round(megapixels * 1_000_000)

    def models_for(self, on_gpu: bool) -> str:
        """The model set to load: the one chosen (DOCMILL_MODELS or the constructor), else the
        device's default. The default's int8 detector is for CPUs: ORT's CUDA provider has no
        int8 convolution, so its quantise and dequantise steps would only add work there (and
        per-channel ones fall back to the CPU), so a GPU gets the same set with the fp32 det."""
        if on_gpu and "models" not in self.model_fields_set:
            return GPU_DEFAULT_MODEL_SET
        return self.models

    @property
    def model_cache(self) -> Path:
        return self.cache_dir / "models"

    def masked_dump(self) -> dict[str, Any]:
        """Settings as plain data with every password or secret replaced by ***."""
        data = self.model_dump(mode="json")
        data["broker_url"] = mask_url(self.broker_url.get_secret_value())
        if data.get("s3_endpoint_url"):
            data["s3_endpoint_url"] = mask_url(data["s3_endpoint_url"])
        data["cache_dir"] = str(self.cache_dir)
        return data


_USERINFO = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@]*):(?P<pw>[^@/]*)@", re.I)


def mask_url(url: str) -> str:
    """redis://user:secret@host -> redis://user:***@host (URLs without a password unchanged)."""
    return _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:***@", url)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()


def misspelt_variables(environ: Mapping[str, str]) -> list[str]:
    """A line for each DOCMILL_ variable that is no setting but nearly spells one. Settings
    cannot refuse names they do not know (deployment files and other tools share the
    prefix: DOCMILL_SECRETS_DIR), but a likely typo should not pass unseen."""
    names = [name.upper() for name in Settings.model_fields]
    lines = []
    for key in sorted(environ):
        rest = key.upper().removeprefix(ENV_PREFIX)
        if rest == key.upper() or rest in names or "__" in rest:
            continue
        close = difflib.get_close_matches(rest, names, n=1, cutoff=0.8)
        if close:
            lines.append(f"{key} is not a setting and is ignored; did you mean {ENV_PREFIX}{close[0]}?")
    return lines


def describe_settings_error(exc: ValidationError) -> str:
    """One line naming the environment variable at fault and what is wrong with it."""
    err = exc.errors()[0]
    loc = [str(part) for part in err["loc"]]
    msg = err["msg"].removeprefix("Value error, ")
    if msg.startswith("engine."):
        loc, msg = msg.split(":", 1)[0].split("."), msg.split(":", 1)[1].strip()
    return f"DOCMILL_{'__'.join(loc).upper()}: {msg}"
