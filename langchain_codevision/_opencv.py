"""OpenCV for the package's own image work, run on the calling thread.

OpenCV splits a large call over a pool of worker threads, one per core, and the workers
spin for a while after each call before they sleep. The package's calls are a millisecond
or two on a page (the model view's resize, the grey-page check), made while other episodes,
their kernels and the model server want the same cores: on the 2-core development machine a
1000x1000 -> 896x896 resize took the same wall time either way and about 0.8 ms more CPU with
the pool (``python -m langchain_codevision._opencv`` measures it). So the first time the
package uses OpenCV in a process, :func:`opencv` sets it to one thread
(``cv2.setNumThreads(0)``: every call on its caller's thread), as data loaders commonly do.

A thread count already chosen (OpenCV's own ``OPENCV_FOR_THREADS_NUM``, or a
``cv2.setNumThreads`` call made before the package's first use) is left as it is, and so is
everything with ``CODEVISION_OPENCV_SERIAL=0`` (or ``false``, ``no``, ``off``).
Kernels get ``OPENCV_FOR_THREADS_NUM=1`` in their environment (see ``kernel/sandbox.py``).
"""

from __future__ import annotations

import os
import threading
from types import ModuleType

__all__ = ["OPENCV_SERIAL_ENV", "opencv"]

OPENCV_SERIAL_ENV = "CODEVISION_OPENCV_SERIAL"
"""Set to ``0`` (or ``false``, ``no``, ``off``) to leave OpenCV's threads alone."""

_lock = threading.Lock()
_decided = False


def opencv() -> ModuleType:
    """The ``cv2`` module, set to run on the calling thread the first time (see above)."""
    global _decided
    import cv2

    if not _decided:
        with _lock:
            if not _decided:
                # a count other than one per core was chosen already (by the user's own
                # cv2.setNumThreads, say): it stays
                if _serial_wanted() and cv2.getNumThreads() == cv2.getNumberOfCPUs():
                    cv2.setNumThreads(0)
                _decided = True
    return cv2


def _serial_wanted() -> bool:
    if "OPENCV_FOR_THREADS_NUM" in os.environ:
        return False
    return os.environ.get(OPENCV_SERIAL_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def _measure(calls: int = 200) -> dict[str, float]:
    """CPU and wall ms per model-view resize, with OpenCV's pool and on one thread."""
    import time

    import cv2
    import numpy as np

    page = np.random.default_rng(0).integers(0, 256, (1000, 1000), dtype=np.uint8)
    out: dict[str, float] = {}
    for label, threads in (("pool", -1), ("serial", 0)):
        cv2.setNumThreads(threads)
        cpu, wall = time.process_time(), 0.0
        for _ in range(calls):
            start = time.perf_counter()
            cv2.resize(page, (896, 896), interpolation=cv2.INTER_LINEAR)
            wall += time.perf_counter() - start
            time.sleep(0.003)  # as between an episode's views
        out[f"{label} cpu ms"] = (time.process_time() - cpu) / calls * 1000
        out[f"{label} wall ms"] = wall / calls * 1000
    return out


if __name__ == "__main__":  # pragma: no cover - a measurement, run by hand
    for name, value in _measure().items():
        print(f"{name}: {value:.3f}")
