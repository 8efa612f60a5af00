"""`docmill run` through the engine's CUDA branches, on CPU: the CUDA provider's name is
patched to the CPU provider's before the engine loads, so the sessions run on CPU while every
on-GPU choice applies (DEVICE_DEFAULTS["cuda"], batch buckets, the CTC head in rec's graph, no
narrow twins). What the CUDA defaults do to input shapes and to text can be measured without
a GPU; their speed cannot.

    python -m bench.cuda_path run IMAGES --out OUT --models pp-ocrv6 --device cpu --quiet \\
        [--set batch_buckets=false ...]

The JSON summary's `distinct_shapes` and `new_shape_s` are the figures; score the results
with ../shared/bench/score.py for word F1 (docs/benchmarks.md, "First GPU run").
"""

from __future__ import annotations

import runpy
import sys

import worker.engine.providers as providers


def take_cuda_branches() -> None:
    """Name the CPU provider CUDA's, with no provider options, before the engine loads."""
    providers.CUDA = providers.CPU
    providers.provider_config = lambda names, settings: [(name, {}) for name in names]


def main(argv: list[str]) -> None:
    """Patch, then run docmill's entry point as `python -m docmill.cli` would (it exits)."""
    take_cuda_branches()
    sys.argv = ["docmill", *argv]
    runpy.run_module("docmill.cli", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
