"""The allocator settings of the ``camkit`` command's own process.

A folder run allocates and frees the same large buffers for every batch: decoded images,
input batches, maps on the originals, overlays, encoded files. glibc's ``malloc`` serves
blocks above a threshold (128 KiB at first) with ``mmap`` and returns them to the operating
system when they are freed, so the next batch's buffers are fresh pages again, each one a
page fault that the kernel fills with zeros: on MobileNetV3-small, about 1.6 million faults
and 2 s of system time per 1,024 images (docs/benchmarks.md). :func:`keep_freed_memory`
raises the thresholds, so that freed blocks are reused: a third of the faults remain.

Only the command line calls it, for its own process; the library never changes process-wide
settings. Blocks above :data:`MMAP_THRESHOLD` (a photograph of more than about 11 Mpx as
RGB) are still mapped and unmapped one by one, so peak memory on large images is unchanged.
"""

from __future__ import annotations

import ctypes
import os
import platform

__all__ = ["MMAP_THRESHOLD", "TRIM_THRESHOLD", "keep_freed_memory"]

MMAP_THRESHOLD = 32 << 20
"""Blocks from this size on (32 MiB, glibc's largest allowed value) are mapped one by one."""
TRIM_THRESHOLD = 256 << 20
"""Free memory at the top of the heap is given back to the system beyond this (256 MiB)."""

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")


def keep_freed_memory() -> bool:
    """Raise glibc's ``malloc`` thresholds (``mallopt``) to :data:`MMAP_THRESHOLD` and
    :data:`TRIM_THRESHOLD`, for the rest of the process. Returns whether they were set.

    Nothing is done (``False``) on other C libraries (macOS, Windows, musl), or when the
    environment sets glibc's malloc options already (``MALLOC_MMAP_THRESHOLD_``,
    ``MALLOC_TRIM_THRESHOLD_``, ``GLIBC_TUNABLES``): the user's choice stands.
    """
    if any(name in os.environ for name in _USER_SETTINGS):
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
