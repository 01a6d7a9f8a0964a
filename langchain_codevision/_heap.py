"""Keep freed pixel buffers in the heap for reuse, instead of handing them back to the OS.

glibc's ``malloc`` serves every block above its mmap threshold (128 KiB at first, raised only
as such blocks are freed) with a fresh ``mmap`` and unmaps it on ``free``, and it trims the
heap whenever more than twice that lies free at its top. An episode allocates a few
megabyte-sized buffers per image (the pixels, the PNG rows, the deflate output, the
transfer copy) on several threads, so the buffers kept coming back from the OS as new pages:
about 3,300 page faults per 2-step episode on a 1000x1000 page with a reset kernel, about
5 ms of the host's time (``bench/graph.py``). With the threshold at 16 MiB and trimming only
past 32 MiB free, the same episode takes about 20 (a few hundred with a fresh kernel each).

:func:`tune_heap` sets both, once per process, on glibc only. A setting the user made
(``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_``, or ``glibc.malloc`` tunables in
``GLIBC_TUNABLES``) is left as it is, and ``CODEVISION_HEAP_TUNING=0`` turns this off. The cost:
each malloc arena (one per thread that allocates, at most) may keep up to 32 MiB free for
reuse.
"""

from __future__ import annotations

import ctypes
import os
import threading

__all__ = ["HEAP_TUNING_ENV", "MMAP_THRESHOLD", "TRIM_THRESHOLD", "tune_heap"]

HEAP_TUNING_ENV = "CODEVISION_HEAP_TUNING"
"""Set to ``0`` (or ``false``, ``no``, ``off``) to leave malloc's settings alone."""

MMAP_THRESHOLD = 16 << 20
"""Blocks up to this size come from the heap (a 2300x2300 RGB image is 15.9 MiB)."""

TRIM_THRESHOLD = 32 << 20
"""Free memory at the heap's top beyond this goes back to the OS."""

_SETTINGS = (  # (mallopt option, the user's own environment variable for it, name, value)
    (-3, "MALLOC_MMAP_THRESHOLD_", "mmap_threshold", MMAP_THRESHOLD),  # M_MMAP_THRESHOLD
    (-1, "MALLOC_TRIM_THRESHOLD_", "trim_threshold", TRIM_THRESHOLD),  # M_TRIM_THRESHOLD
)

_lock = threading.Lock()
_applied: dict[str, int] | None = None


def tune_heap() -> dict[str, int]:
    """Raise malloc's mmap and trim thresholds (once); returns what was set, by name.

    An empty result means nothing was changed: not glibc, turned off, or set by the user.
    """
    global _applied
    with _lock:
        if _applied is None:
            _applied = _apply()
        return dict(_applied)


def _apply() -> dict[str, int]:
    if os.environ.get(HEAP_TUNING_ENV, "1").strip().lower() in ("0", "false", "no", "off"):
        return {}
    if not _is_glibc() or "glibc.malloc." in os.environ.get("GLIBC_TUNABLES", ""):
        return {}
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # pragma: no cover - glibc always has it
        return {}
    applied: dict[str, int] = {}
    for option, user_variable, name, value in _SETTINGS:
        if user_variable in os.environ:
            continue
        if mallopt(ctypes.c_int(option), ctypes.c_int(value)) == 1:
            applied[name] = value
    return applied


def _is_glibc() -> bool:
    try:
        return os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc")
    except (AttributeError, ValueError, OSError):  # not a GNU system
        return False
