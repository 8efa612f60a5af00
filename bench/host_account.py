"""Where `docmill run`'s host CPU goes: the thread CPU spent inside chosen functions, summed over
one in-process run, beside the imports and the whole process's CPU.

    .venv/bin/python -m bench.host_account IMAGES [--cuda-path] [--function MODULE:NAME ...]

bench.host_cpu says how much CPU docmill spends outside its session runs; this says where.
Each function is wrapped where its callers look it up (a module attribute, or `Class.method`),
and its thread CPU time (time.thread_time) and calls are counted. Nested functions count in
each of their wrappers, so pick ones that do not call each other. One ORT thread and one
stream, as bench.host_cpu; `--cuda-path` patches the providers as bench.cuda_path does, so the
engine's CUDA branches run on CPU. Sampling profilers (py-spy) count a thread's wall time,
which on a busy 2-CPU machine overstates work done in C without the GIL; this does not.
"""

from __future__ import annotations

import argparse
import importlib
import os
import resource
import runpy
import sys
import tempfile
import time
from collections import Counter
from typing import Any, Callable

from bench.host_cpu import ONE_THREAD

DEFAULT_FUNCTIONS = (
    "worker.items:decode_image", "worker.engine.orientation:preprocess", "worker.engine.det:preprocess",
    "worker.engine.det:batch", "worker.engine.det:postprocess", "worker.engine.layout:reading_order",
    "worker.engine.geometry:crop_line", "worker.engine.cls:line_batch", "worker.engine.rec:line_batch",
    "worker.engine.rec:postprocess", "worker.engine.pixels:PixelBatch.feed",
    "worker.engine.providers:open_session", "docmill.modelset:ModelSet.load", "worker.writer:ResultWriter.write",
    "worker.engine.session:ModelSession.run_all",
)
ENV = {"OPENBLAS_NUM_THREADS": "1", **ONE_THREAD}  # OpenBLAS's before numpy's import (the entry point's is later)


class ThreadCpuTally:
    """Thread CPU seconds and calls per wrapped function."""

    def __init__(self) -> None:
        self.seconds: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()

    def wrap(self, spec: str) -> None:
        """Replace MODULE:NAME (NAME may be Class.method) by a wrapper that tallies it."""
        module_name, _, path = spec.partition(":")
        owner: Any = importlib.import_module(module_name)
        *parents, name = path.split(".")
        for parent in parents:
            owner = getattr(owner, parent)
        setattr(owner, name, self._tallied(spec, getattr(owner, name)))

    def _tallied(self, spec: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def tallied(*args: Any, **kwargs: Any) -> Any:
            start = time.thread_time()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[spec] += time.thread_time() - start
                self.calls[spec] += 1
        return tallied


def _process_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("images")
    parser.add_argument("--cuda-path", action="store_true", help="run the engine's CUDA branches on CPU")
    parser.add_argument("--function", action="append", help="MODULE:NAME to count (repeatable)")
    args = parser.parse_args(argv)
    os.environ.update(ENV)  # before numpy and onnxruntime are imported
    start = _process_cpu_s()
    import worker.local  # noqa: F401 - timed: the imports `docmill run` makes (the entry point is thin)
    imports = _process_cpu_s() - start
    if args.cuda_path:
        from bench.cuda_path import take_cuda_branches

        take_cuda_branches()
    tally = ThreadCpuTally()
    for spec in args.function or DEFAULT_FUNCTIONS:
        tally.wrap(spec)
    with tempfile.TemporaryDirectory(prefix="docmill-account-") as out:
        sys.argv = ["docmill", "run", args.images, "--out", out, "--device", "cpu", "--quiet"]
        try:
            runpy.run_module("docmill.cli", run_name="__main__", alter_sys=True)  # as bench.cuda_path
        except SystemExit as done:
            if done.code not in (0, None):
                raise
    print(f"imports {imports * 1000:.0f} ms; process CPU {_process_cpu_s():.3f} s", file=sys.stderr)
    for spec, seconds in tally.seconds.most_common():
        print(f"{seconds * 1000:9.1f} ms {tally.calls[spec]:6d} calls  {spec}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
