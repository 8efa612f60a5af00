"""The one thing the stages need from ONNXRuntime: run a batch through a model.

Sessions are created (providers, threads, graph optimisation) by worker.engine.providers
when the engine loads a model set. ONNXRuntime's InferenceSession.run is thread-safe, so one
ModelSession serves every thread of a process.

On CPU, with more than one engine stream, cls, rec and ori have two ORT sessions: a wide
one with all the threads, for a run that has the cores to itself, and a narrow one with the
cores' share of one stream, for a run beside another stream's work (EngineCalls says which).
Two narrow runs at once keep the cores busier than one wide run: ORT's threads wait on each
other at every operator, and docmill's host work runs between a stream's runs. det is
exclusive instead: one run at a time, on every core. Two det runs at once held two pages'
detection memory, and the bench's mix of pages peaked at 1.22-1.26 times the big page alone
instead of 1.08 (docs/benchmarks.md).
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from contextlib import contextmanager, nullcontext
from typing import Any, Callable, Iterator

import numpy as np

from worker.engine.pixels import PIXEL_INPUTS, PixelBatch

# ONNXRuntime's memory names, as a session reports where it makes its outputs, and the device
# names IOBinding.bind_output takes for them.
_BINDING_DEVICES = {"Cpu": "cpu", "Cuda": "cuda"}


class EngineCalls:
    """How many engine calls of one process are running now: with more than one, each
    session run takes the narrow session, so concurrent runs share the cores instead of
    each asking for all of them."""

    def __init__(self) -> None:
        self._running = 0
        self._lock = threading.Lock()

    @contextmanager
    def call(self) -> Iterator[None]:
        with self._lock:
            self._running += 1
        try:
            yield
        finally:
            with self._lock:
                self._running -= 1

    @property
    def crowded(self) -> bool:
        return self._running > 1


def batch_bucket(count: int) -> int:
    """The batch size a run of `count` items is padded to with `batch_buckets`: the next power
    of two, so that batches of 5, 6 and 7 lines all run as 8. On CUDA each new input shape
    costs a cuDNN plan and arena growth; without buckets PP-OCRv6's rec met 109 distinct
    shapes on the 20 SROIE receipts (an H200, docs/benchmarks.md, "First GPU run")."""
    return 1 << max(count - 1, 0).bit_length()


class ModelSession:
    """A long-lived session taking a PixelBatch (the engine's prepared models) or one input
    tensor; `run` returns the first output, `run_all` every output. With a `narrow` twin (a
    future, while it is being built), runs made while `calls` is crowded go to the twin once
    it is ready. An `exclusive` session runs one batch at a time, whatever the number of
    threads calling it. With `spawn` (CUDA, `session_per_shape`), each input shape gets a
    session of its own, made by `spawn` on the shape's first run, up to `shape_sessions` (the
    CUDA defaults' buckets give rec about 70 shapes over 1,000 receipts, the few common ones
    first); the first shape, and any beyond the cap, use `session`. With `io_binding`, every
    run goes through ONNXRuntime's I/O binding (_bound_run)."""

    def __init__(self, session: Any, run_options: Any = None, narrow: "Future[Any] | None" = None,
                 calls: EngineCalls | None = None, exclusive: bool = False,
                 spawn: Callable[[], Any] | None = None, shape_sessions: int = 1, io_binding: bool = False):
        self._session = session
        self._io_binding = io_binding
        self._spawn = spawn
        self._shape_sessions = shape_sessions
        self._by_shape: dict[tuple[int, ...], Any] = {}
        self._spawning = threading.Lock()
        self._exclusive = threading.Lock() if exclusive else None
        self._narrow = narrow
        self._calls = calls
        self._run_options = run_options
        self.input_name: str = session.get_inputs()[0].name
        self.input_shape: list[Any] = list(session.get_inputs()[0].shape)
        self.takes_pixels = self.input_name == PIXEL_INPUTS[0]
        self.output_shape: list[Any] = list(session.get_outputs()[0].shape)
        self._busy_s = 0.0
        self._new_shape_s = 0.0
        self._shapes: set[tuple[int, ...]] = set()
        self._lock = threading.Lock()

    @property
    def providers(self) -> list[str]:
        return list(self._session.get_providers())

    @property
    def input_width(self) -> int | None:
        """The width the model fixes for its input, or None where it takes any."""
        width = self.input_shape[2 if self.takes_pixels else 3]
        return width if isinstance(width, int) else None

    def run(self, batch: "np.ndarray | PixelBatch", bucketed: bool = False) -> np.ndarray:
        return self.run_all(batch, bucketed)[0]

    def run_all(self, batch: "np.ndarray | PixelBatch", bucketed: bool = False) -> list[np.ndarray]:
        """The session's outputs for `batch`. `bucketed`: the batch runs padded with zero
        items to `batch_bucket` of its size, and the outputs are cut back to it."""
        count = len(batch)
        size = batch_bucket(count) if bucketed else count
        if size == count:
            return self._run(batch)
        if isinstance(batch, PixelBatch):
            return [out[:count] for out in self._run(batch.padded(size))]
        padded = np.zeros((size, *batch.shape[1:]), dtype=batch.dtype)
        padded[:count] = batch
        return [out[:count] for out in self._run(padded)]

    def _run(self, batch: "np.ndarray | PixelBatch") -> list[np.ndarray]:
        if self._spawn is not None:
            session = self._for_shape(tuple(batch.shape))
        else:
            session = self._twin() if self._calls is not None and self._calls.crowded else self._session
        feed = batch.feed() if isinstance(batch, PixelBatch) else {self.input_name: batch}
        with self._exclusive or nullcontext():
            start = time.perf_counter()
            out = self._bound_run(session, feed) if self._io_binding else session.run(None, feed, self._run_options)
            elapsed = time.perf_counter() - start
        with self._lock:
            self._busy_s += elapsed
            if batch.shape not in self._shapes:
                self._shapes.add(batch.shape)
                self._new_shape_s += elapsed
        return out

    def _bound_run(self, session: Any, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        """One run through ONNXRuntime's I/O binding: each input is copied to the session's
        device when it is bound, before the run; the outputs stay where the session makes them
        (on CUDA, on the GPU) until the run is over, then come back as arrays. A plain run does
        both copies inside itself; whether binding saves anything on a GPU is bench.gpu's
        sweep to say (settings.io_binding)."""
        binding = session.io_binding()
        for name, value in feed.items():
            binding.bind_cpu_input(name, value)
        for output, memory in zip(session.get_outputs(), session.get_output_memory_infos()):
            binding.bind_output(output.name, _BINDING_DEVICES.get(memory.name, "cpu"), memory.device_id)
        session.run_with_iobinding(binding, self._run_options)
        return binding.copy_outputs_to_cpu()

    def _for_shape(self, shape: tuple[int, ...]) -> Any:
        """This shape's own session, made on its first run (one at a time)."""
        with self._spawning:
            session = self._by_shape.get(shape)
            if session is None:
                first_or_past_cap = not self._by_shape or len(self._by_shape) >= self._shape_sessions
                session = self._session if first_or_past_cap else self._spawn()  # type: ignore[misc]
                self._by_shape[shape] = session
            return session

    def _twin(self) -> Any:
        """The narrow twin when it is built, else the wide session."""
        if self._narrow is None or not self._narrow.done():
            return self._session
        return self._narrow.result()

    @property
    def distinct_shapes(self) -> int:
        """How many input shapes the session has run: on a GPU each new one can cost an
        algorithm search and arena growth, so batching aims to keep it small."""
        with self._lock:
            return len(self._shapes)

    @property
    def new_shape_s(self) -> float:
        """Seconds of busy_s spent in the first run of each shape: on CUDA a new shape's run
        carries its cuDNN plan and arena growth, so this against busy_s says whether shapes
        or the kernels themselves cost the time."""
        with self._lock:
            return self._new_shape_s

    @property
    def busy_s(self) -> float:
        """Seconds spent inside session runs so far: what the model itself cost, to set
        against a stage's wall time (the rest is pre- and post-processing)."""
        with self._lock:
            return self._busy_s

    def metadata(self) -> dict[str, str]:
        return dict(self._session.get_modelmeta().custom_metadata_map)
