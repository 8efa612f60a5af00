"""The one thing the stages need from ONNXRuntime: run a batch through a model.

Sessions are created (providers, threads, graph optimisation) by worker.engine.providers
when the engine loads a model set. ONNXRuntime's InferenceSession.run is thread-safe, so one
ModelSession serves every thread of a process.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np


class ModelSession:
    """A long-lived session with one input tensor; `run` returns the first output, `run_all`
    every output."""

    def __init__(self, session: Any, run_options: Any = None):
        self._session = session
        self._run_options = run_options
        self.input_name: str = session.get_inputs()[0].name
        self.input_shape: list[Any] = list(session.get_inputs()[0].shape)
        self.output_shape: list[Any] = list(session.get_outputs()[0].shape)
        self._busy_s = 0.0
        self._shapes: set[tuple[int, ...]] = set()
        self._lock = threading.Lock()

    @property
    def providers(self) -> list[str]:
        return list(self._session.get_providers())

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self.run_all(batch)[0]

    def run_all(self, batch: np.ndarray) -> list[np.ndarray]:
        start = time.perf_counter()
        out = self._session.run(None, {self.input_name: batch}, self._run_options)
        with self._lock:
            self._busy_s += time.perf_counter() - start
            self._shapes.add(batch.shape)
        return out

    @property
    def distinct_shapes(self) -> int:
        """How many input shapes the session has run: on a GPU each new one can cost an
        algorithm search and arena growth, so batching aims to keep it small."""
        with self._lock:
            return len(self._shapes)

    @property
    def busy_s(self) -> float:
        """Seconds spent inside session runs so far: what the model itself cost, to set
        against a stage's wall time (the rest is pre- and post-processing)."""
        with self._lock:
            return self._busy_s

    def metadata(self) -> dict[str, str]:
        return dict(self._session.get_modelmeta().custom_metadata_map)
