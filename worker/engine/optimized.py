"""ONNXRuntime's own graph optimisation of a prepared model, saved once per machine.

A CPU session spends most of its creation optimising the graph: on the default set's four
models, 198 ms of CPU at every process start against 107 ms when loading the graph ORT saved
after optimising it (`optimized_model_filepath`), loaded with optimisation off. Outputs are
bit-identical. The saved graph may carry layouts chosen for this processor's vector width
(ORT says so when it writes one), so the file's key covers the model file, the ORT version,
the optimisation level and the CPU's feature flags: a set folder shared by different
machines keeps one file per kind of machine, and none is ever loaded on another.

Only CPU sessions are saved: CUDA sessions start once per long-lived worker, and ORT
cannot save graphs that other providers have compiled. Where the set folder is read-only,
or a model comes as bytes, the session optimises as before.
"""

from __future__ import annotations

import logging
import os
import platform
import threading
from contextlib import suppress
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import onnxruntime as ort

from worker.engine.prepare import PREPARED_DIR, source_key

log = logging.getLogger(__name__)

KEY_CHARS = 16
# ORT computes int8 convolutions as uint8 x int8; with AVX2 (and AVX-512 without VNNI) a pair
# of products is summed in 16 bits and saturates. With this entry, on such a CPU only, ORT's
# optimiser moves the weights to uint8 first, so the saved graph depends on it: it is part of
# the key. Without it, pp-ocrv6-int8det's det lost the first letters of faint lines on an
# AVX2-only EPYC (docs/benchmarks.md, "int8 on CPUs without VNNI").
X64_QUANT_PRECISION = ("session.x64quantprecision", "1")


@lru_cache(maxsize=1)
def machine_features() -> str:
    """What a saved graph may depend on in this processor: its feature flags on Linux, its
    architecture and model name elsewhere."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return " ".join(sorted(line.split(":", 1)[1].split()))
    except OSError:
        pass
    return f"{platform.machine()} {platform.processor()}"


def saved_path(model: Path, level: ort.GraphOptimizationLevel) -> Path:
    """Where ORT's optimisation of `model` at `level` on this kind of machine is kept."""
    key = source_key(model, ort.__version__, str(int(level)), machine_features(), "=".join(X64_QUANT_PRECISION),
                     chars=KEY_CHARS)
    folder = model.parent if model.parent.name == PREPARED_DIR else model.parent / PREPARED_DIR
    return folder / f"{model.stem}.ort-{key}.onnx"


def open_session(model: str | bytes, opts: ort.SessionOptions, providers: list[str],
                 provider_options: list[dict[str, Any]], save: bool) -> ort.InferenceSession:
    """A session on `model` (changing `opts`): with `save` (CPU sessions), from its saved
    optimisation when there is one for this machine, else optimised now and, where it can
    be, saved for the next process."""
    def create(source: str | bytes) -> ort.InferenceSession:
        return ort.InferenceSession(source, sess_options=opts, providers=providers,
                                    provider_options=provider_options)

    if (not save or not isinstance(model, str)
            or opts.graph_optimization_level == ort.GraphOptimizationLevel.ORT_DISABLE_ALL):
        return create(model)
    target = saved_path(Path(model), opts.graph_optimization_level)
    if target.is_file():
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        return create(str(target))
    try:
        target.parent.mkdir(exist_ok=True)
    except OSError:
        return create(model)
    if not os.access(target.parent, os.W_OK):
        return create(model)
    return _create_and_save(create, model, opts, target)


def _create_and_save(create: Callable[[str], ort.InferenceSession], model: str, opts: ort.SessionOptions,
                     target: Path) -> ort.InferenceSession:
    """Optimise `model` in a new session and keep ORT's graph at `target`: written under a
    name of this thread's, then renamed whole, for processes starting beside this one."""
    partial = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    opts.optimized_model_filepath = str(partial)
    try:
        session = create(model)
    except Exception as exc:  # noqa: BLE001 - ORT fails the whole session when it cannot save
        _discard(partial, target, exc)
        opts.optimized_model_filepath = ""
        return create(model)
    try:
        os.replace(partial, target)
    except OSError as exc:
        _discard(partial, target, exc)
    return session


def _discard(partial: Path, target: Path, exc: Exception) -> None:
    log.info("%s: cannot keep ORT's optimised graph (%s); optimising at every start", target, exc)
    with suppress(OSError):
        partial.unlink(missing_ok=True)
