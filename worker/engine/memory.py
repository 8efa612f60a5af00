"""Process memory: hand freed image-sized buffers back to the system.

glibc serves allocations below its mmap threshold from heap arenas and keeps what is freed
there for reuse. The threshold starts at 128 KiB but rises to the largest block freed so
far (up to 32 MiB), so after the first big page a worker's decoded pages, resized det inputs
and crops all come from the arenas, and with decode threads running beside the engine the
arenas hold on to hundreds of MB. A fixed threshold keeps every buffer of 128 KiB or more
in its own mapping, returned when freed: measured on the 20 SROIE receipts with `docmill
run`, peak RSS 1,010-1,100 MB with glibc's default and 875 MB with the threshold fixed, at
the same speed (docs/benchmarks.md).

What stays in the arenas is the small stuff: line crops, Python objects, a run's small
arrays. A mix of pages leaves it fragmented, so the heap never shrinks from its top alone;
`trim_heap` after each engine batch hands every free page inside the arenas back. On the
bench's mixed set that took the RSS between batches from about 270 to 220 MB.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from functools import lru_cache

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number


@lru_cache(maxsize=1)
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name) if name else None
    except OSError:
        return None


def fix_mmap_threshold(kib: int) -> bool:
    """Fix glibc's mmap threshold at `kib` KiB (0 leaves glibc's dynamic default). False
    where the C library has no mallopt (musl, macOS): nothing to tune there."""
    if kib <= 0:
        return False
    mallopt = getattr(_libc(), "mallopt", None)
    if mallopt is None:
        return False
    done = bool(mallopt(M_MMAP_THRESHOLD, kib * 1024))
    log.debug("malloc mmap threshold fixed at %d KiB: %s", kib, done)
    return done


def trim_heap() -> bool:
    """Return the free pages of every malloc arena to the system (glibc's malloc_trim).
    False where there is no malloc_trim, or nothing was returned."""
    malloc_trim = getattr(_libc(), "malloc_trim", None)
    return bool(malloc_trim(0)) if malloc_trim is not None else False
