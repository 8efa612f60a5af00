"""ONNXRuntime sessions and execution providers, created once per process by the engine.

onnxruntime-gpu lists CUDAExecutionProvider even where no CUDA runtime or GPU exists, and
asking for it there prints a screen of errors before falling back. So CUDA is probed once,
with ONNXRuntime's logging silenced, on a one-node model: the providers used are the ones
that actually load. Where not even the NVIDIA driver's library loads, the probe is not made:
loading ORT's CUDA provider to find that out cost 57-68 ms of CPU at every `docmill run` on a
CPU-only machine.
"""

from __future__ import annotations

import ctypes
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

import onnxruntime as ort

from docmill.errors import UsageError
from docmill.settings import Settings
from worker.engine import optimized
from worker.engine.prepare import prepared_model
from worker.engine.session import EngineCalls, ModelSession

log = logging.getLogger(__name__)

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
_SILENT = 4  # ORT severity FATAL: keeps provider-load failures off the console
_GRAPH_LEVELS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


class DeviceUnavailable(UsageError):
    """The device asked for cannot be used here; the message is one line of advice. A usage
    error: a command that takes --device lets it reach the entry point, which prints it as one
    line and exits 2."""


def probe_model() -> bytes:
    """A one-node model (Identity on one float): loading it on a provider tests the provider."""
    from onnx import TensorProto, helper

    node = helper.make_node("Identity", ["x"], ["y"])
    graph = helper.make_graph(
        [node], "probe",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model.SerializeToString()


# The NVIDIA driver's user-space library, by the names its installers give it.
CUDA_DRIVER_LIBRARIES = ("libcuda.so.1", "libcuda.so", "nvcuda.dll")


def cuda_driver_loads(names: tuple[str, ...] = CUDA_DRIVER_LIBRARIES) -> bool:
    """True when one of the driver libraries `names` can be loaded. Loading it does not
    initialise CUDA (no cuInit), so a process that forks afterwards is unharmed."""
    for name in names:
        try:
            ctypes.CDLL(name)
        except OSError:
            continue
        return True
    return False


@lru_cache(maxsize=1)
def cuda_works() -> bool:
    """True when a session with the CUDA provider really runs on this machine."""
    if CUDA not in ort.get_available_providers() or not cuda_driver_loads():
        return False
    opts = ort.SessionOptions()
    opts.log_severity_level = _SILENT
    ort.set_default_logger_severity(_SILENT)
    try:
        session = ort.InferenceSession(probe_model(), sess_options=opts, providers=[CUDA])
        return CUDA in session.get_providers()
    except Exception:  # noqa: BLE001 - any failure to load CUDA means "not here"
        return False
    finally:
        ort.set_default_logger_severity(2)


def resolve_providers(device: str) -> list[str]:
    """Providers for `auto|cpu|cuda`; `cuda` where CUDA does not load raises DeviceUnavailable."""
    if device == "cpu":
        return [CPU]
    if cuda_works():
        return [CUDA, CPU]
    if device == "cuda":
        raise DeviceUnavailable(
            "--device cuda: CUDA is not available here (no GPU, driver or CUDA/cuDNN runtime "
            "that onnxruntime-gpu can load); use --device auto or cpu"
        )
    return [CPU]


def session_options(settings: Settings, on_gpu: bool = False, threads: int | None = None) -> ort.SessionOptions:
    """Threads, graph optimisation and the CPU arena from settings. ORT's intra-op threads
    spin while idle by default; docmill's own decoding and post-processing run between and
    beside session runs, and spinning threads took their cores: on the 20 receipts (2 CPUs),
    spinning off cut user CPU from 35-43 s to 29-30 s and wall from 20.6-25.0 s to 19.3-20.4 s.

    On CPU, ORT's memory patterns are off. A pattern is recorded at a shape's first run and
    then lays out every later run of that shape in one block: PP-OCRv6's det on a 1280 x 896
    page (a 35 MP scan's input) held 185 MB at the first run and 207 MB at every run after,
    while without patterns it held 181 MB, then 185, at the same speed. So a run of big pages
    no longer costs more than the first of them.

    `threads` overrides the intra-op threads (a narrow twin's, see narrow_threads)."""
    opts = ort.SessionOptions()
    opts.enable_mem_pattern = on_gpu
    spin = "1" if settings.ort_spinning else "0"
    opts.add_session_config_entry("session.intra_op.allow_spinning", spin)
    opts.add_session_config_entry("session.inter_op.allow_spinning", spin)
    opts.graph_optimization_level = _GRAPH_LEVELS[settings.graph_optimization]
    opts.intra_op_num_threads = settings.intra_op_threads if threads is None else threads
    opts.inter_op_num_threads = settings.inter_op_threads
    opts.enable_cpu_mem_arena = settings.cpu_arena != "off"
    opts.add_session_config_entry(*optimized.X64_QUANT_PRECISION)
    if settings.cpu_arena == "shared":
        register_shared_arena()
        opts.add_session_config_entry("session.use_env_allocators", "1")
    opts.log_severity_level = 3
    return opts


@lru_cache(maxsize=1)
def register_shared_arena() -> None:
    """One CPU arena in ORT's environment for every session that asks for it (`cpu_arena=shared`),
    registered once per process.

    det, cls and rec run one after another, so one arena sized for the biggest run serves
    them all, where a per-session arena would hold each model's high-water mark at once. It is
    kept between runs: handing chunks back after every run (`shrink`) made the next run fault
    them in again, 1.47 million page faults and 3.8 s of system CPU over the 20 receipts
    against 0.27 million and 1.3 s, for the same peak RSS (docs/benchmarks.md, "One arena for
    all sessions")."""
    info = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
    growing_by_doubling = ort.OrtArenaCfg({"arena_extend_strategy": 0})  # kNextPowerOfTwo, no cap
    ort.create_and_register_allocator(info, growing_by_doubling)


TENSORRT = "TensorrtExecutionProvider"


def provider_config(providers: list[str], settings: Settings) -> list[tuple[str, dict[str, str]]]:
    """Each provider with its options. CUDA: the cuDNN algorithm search (HEURISTIC by
    default: EXHAUSTIVE benchmarks every new input shape, which det and rec change all the
    time), an arena that grows by what a run asks for rather than doubling (ORT's advice
    for inputs whose shapes vary, so a new shape does not reserve twice its need), an
    optional arena cap, the copy stream shared with compute, and channels-last convolutions
    when asked for. TensorRT, when
    asked for and CUDA works, goes first with its engines cached under the cache dir."""
    config: list[tuple[str, dict[str, str]]] = []
    if CUDA in providers and settings.tensorrt:
        cache = settings.cache_dir / "tensorrt"
        config.append((TENSORRT, {"trt_engine_cache_enable": "True", "trt_engine_cache_path": str(cache),
                                  "trt_fp16_enable": "False"}))
    for name in providers:
        options: dict[str, str] = {}
        if name == CUDA:
            options = {"cudnn_conv_algo_search": settings.cuda_conv_algo_search,
                       "arena_extend_strategy": "kSameAsRequested", "do_copy_in_default_stream": "True"}
            if settings.gpu_mem_limit_mb:
                options["gpu_mem_limit"] = str(settings.gpu_mem_limit_mb * 1024 * 1024)
            if settings.cuda_prefer_nhwc:
                options["prefer_nhwc"] = "1"
        config.append((name, options))
    return config


def narrow_threads(settings: Settings, streams: int) -> int | None:
    """Intra-op threads of a narrow twin session (worker.engine.session) when `streams`
    engine streams share this host's cores: each stream's share, or None where a twin would
    have no fewer threads than the wide session."""
    cores = settings.intra_op_threads or len(os.sched_getaffinity(0))
    share = max(1, cores // max(streams, 1))
    return share if streams > 1 and share < cores else None


def open_session(path: str, providers: list[str], settings: Settings, ctc_head: bool = False,
                 narrow: int | None = None, calls: EngineCalls | None = None,
                 exclusive: bool = False) -> ModelSession:
    """A session on the model at `path`, prepared for running (worker.engine.prepare): taking
    PixelBatch's inputs, folded when `fold_graph` is on, and with `ctc_head` ending in each
    step's best class. With `narrow` threads (CPU only), a twin session with that many, for
    runs while `calls` is crowded: built on a thread of its own, so that the first pages run
    on the wide session meanwhile instead of waiting for it. `exclusive`: one run at a time.
    On CUDA with `session_per_shape`, each input shape gets a session of its own (ModelSession).
    With `io_binding`, every run goes through ONNXRuntime's I/O binding."""
    config = provider_config(providers, settings)
    model = prepared_model(path, fold=settings.fold_graph, ctc_head=ctc_head, pixels=True)
    on_gpu = CUDA in providers

    def create(threads: int | None = None) -> ort.InferenceSession:
        return optimized.open_session(model, session_options(settings, on_gpu=on_gpu, threads=threads),
                                      [name for name, _ in config], [options for _, options in config],
                                      save=not on_gpu)

    session = create()
    if on_gpu and CUDA not in session.get_providers():
        raise DeviceUnavailable(f"{path}: the CUDA provider did not load for this model; use --device cpu")
    twin = _TWIN_BUILDER.submit(create, narrow) if narrow and not on_gpu else None
    spawn = create if on_gpu and settings.session_per_shape else None
    return ModelSession(session, run_options(settings), twin, calls, exclusive, spawn, settings.shape_sessions,
                        settings.io_binding)


# Narrow twins are built one at a time behind the wide sessions (open_session).
_TWIN_BUILDER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="docmill-twin")


def run_options(settings: Settings) -> ort.RunOptions | None:
    """With `cpu_arena=shrink`, each run hands the arena's unused chunks back at its end: the
    arena still serves the many tensors of one run, but no run keeps what the largest input
    shape so far needed (docs/benchmarks.md, "The CPU arena, measured again": shrinking only
    after big runs was 7% faster but let a long-running worker's RSS grow 15%)."""
    if settings.cpu_arena != "shrink":
        return None
    options = ort.RunOptions()
    options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
    return options

