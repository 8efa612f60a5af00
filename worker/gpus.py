"""`docmill worker --gpus`: which GPUs a host's engine processes run on, one GPU each.

ONNXRuntime's CUDA provider runs on device 0 unless told otherwise, so `--processes N` alone
puts every process on the first GPU of a many-GPU host. With `--gpus`, the supervisor starts
`--processes` children per listed GPU, and each child sees only its own GPU through
CUDA_VISIBLE_DEVICES, where it is device 0 (the engine never names a device).

The indices count the GPUs this process can see. Where CUDA_VISIBLE_DEVICES is already set (a
container given GPUs 4 and 5), `--gpus 0,1` means those two, and each child is handed the
parent's own entry for its GPU, index or UUID. The GPUs are counted by the driver (libcuda's
cuDeviceGetCount) before any child starts, so a wrong index costs one line, not children that
fail and restart.
"""

from __future__ import annotations

import ctypes
import os

VISIBLE = "CUDA_VISIBLE_DEVICES"
ALL = "all"


class GpuListError(ValueError):
    """A `--gpus` that cannot be served here; the message says what to do."""


def parse_gpus(text: str) -> list[int] | None:
    """`0,1,3` as [0, 1, 3]; `all` as None (every GPU the driver shows)."""
    if text.strip() == ALL:
        return None
    try:
        indices = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        indices = []
    if not indices or min(indices) < 0:
        raise GpuListError(f"--gpus {text}: give GPU indices such as 0,1 or 'all'")
    twice = sorted({index for index in indices if indices.count(index) > 1})
    if twice:
        raise GpuListError(f"--gpus {text}: GPU {twice[0]} is listed twice; use --processes for more per GPU")
    return indices


def driver_gpu_count() -> int:
    """How many GPUs the NVIDIA driver shows this process, CUDA_VISIBLE_DEVICES applied."""
    try:
        driver = ctypes.CDLL("libcuda.so.1")
    except OSError as exc:
        raise GpuListError("--gpus: no NVIDIA driver on this host (libcuda.so.1 not found); "
                           "leave --gpus out to run on CPU") from exc
    status = driver.cuInit(0)
    if status != 0:
        raise GpuListError(f"--gpus: the NVIDIA driver did not start (cuInit error {status}); "
                           "check nvidia-smi on this host")
    count = ctypes.c_int(0)
    status = driver.cuDeviceGetCount(ctypes.byref(count))
    if status != 0:
        raise GpuListError(f"--gpus: the NVIDIA driver could not count its GPUs (error {status})")
    return count.value


def child_devices(wanted: list[int] | None, per_gpu: int, count: int, visible: str | None) -> list[str]:
    """Each child's CUDA_VISIBLE_DEVICES, `per_gpu` children per wanted GPU in the order given:
    of `count` GPUs shown, named by the parent's own `visible` entries where it has them."""
    if count < 1:
        raise GpuListError("--gpus: the NVIDIA driver shows no GPU to this process; check "
                           f"{VISIBLE} and nvidia-smi")
    indices = list(range(count)) if wanted is None else wanted
    missing = [index for index in indices if index >= count]
    if missing:
        raise GpuListError(f"--gpus: there is no GPU {missing[0]}: the driver shows {count} "
                           f"({_span(count)}) to this process")
    names = [entry.strip() for entry in visible.split(",")] if visible else [str(i) for i in range(count)]
    return [names[index] for index in indices for _ in range(per_gpu)]


def gpu_devices(text: str, per_gpu: int) -> list[str]:
    """`--gpus text` with `--processes per_gpu` on this host: each child's CUDA_VISIBLE_DEVICES.
    Raises GpuListError."""
    wanted = parse_gpus(text)
    return child_devices(wanted, per_gpu, driver_gpu_count(), os.environ.get(VISIBLE))


def _span(count: int) -> str:
    return "GPU 0" if count == 1 else f"GPUs 0-{count - 1}"
