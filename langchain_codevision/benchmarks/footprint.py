"""What this process's kernels leave on the host: processes, folders, shared memory, cgroups.

:func:`kernel_footprint` counts, for the calling process only (other processes on the same
host are never looked at):

* ``processes``: live descendants of this process (kernels, jail supervisors), except the
  kernel template that forked kernels come from and the run root's watcher (one each per
  host process, kept for its life);
* ``run_root_entries``: kernel folders in this process's run root
  (``$TMPDIR/codevision-<pid>-*/``, the lock file aside);
* ``shm_entries``: ``/dev/shm/codevision-<pid>-*`` entries;
* ``cgroups``: per-kernel cgroups named after this process's run root.

Compare a footprint taken before a run with one taken after the pools are closed:
:func:`leaked` returns what grew.

Example:
    >>> before = kernel_footprint()
    >>> ...  # run episodes, close the pools
    >>> leaked(before, kernel_footprint())
    {}
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import psutil

from langchain_codevision.kernel.cgroups import CGROUP_ROOT, GROUP

__all__ = ["kernel_footprint", "leaked", "settled_footprint"]

TEMPLATE_SCRIPT = "_template.py"
"""The kernel template's script (the fork server's preloaded parent of forked kernels)."""
JANITOR_SCRIPT = "_janitor.py"
"""The run root's watcher (one per host process, kept for its life)."""
HOST_HELPERS = (TEMPLATE_SCRIPT, JANITOR_SCRIPT)


def _descendants() -> int:
    count = 0
    for child in psutil.Process(os.getpid()).children(recursive=True):
        try:
            if child.status() == psutil.STATUS_ZOMBIE:
                continue
            if any(
                part.endswith((TEMPLATE_SCRIPT, JANITOR_SCRIPT)) for part in child.cmdline()[:4]
            ):
                continue
            count += 1
        except psutil.Error:
            continue
    return count


def _run_roots() -> list[Path]:
    return sorted(Path(tempfile.gettempdir()).glob(f"codevision-{os.getpid()}-*"))


def _run_root_entries() -> int:
    count = 0
    for root in _run_roots():
        try:
            count += sum(1 for entry in root.iterdir() if entry.name != "owner.lock")
        except OSError:
            continue
    return count


def _cgroups() -> int:
    owners = {root.name[len("codevision-") :] for root in _run_roots()}
    if not owners:
        return 0
    count = 0
    for parent in [CGROUP_ROOT / GROUP, *CGROUP_ROOT.glob(f"*/{GROUP}")]:
        try:
            count += sum(1 for c in parent.iterdir() if c.name.rsplit("-", 1)[0] in owners)
        except OSError:
            continue
    return count


def kernel_footprint() -> dict[str, int]:
    """Counts of what this process's kernels hold on the host (see the module docs)."""
    shm = Path("/dev/shm")
    return {
        "processes": _descendants(),
        "run_root_entries": _run_root_entries(),
        "shm_entries": len(list(shm.glob(f"codevision-{os.getpid()}-*"))) if shm.is_dir() else 0,
        "cgroups": _cgroups(),
    }


def settled_footprint(baseline: dict[str, int], timeout: float = 10.0) -> dict[str, int]:
    """The footprint once it is back to ``baseline`` (or after ``timeout`` s: the last one).

    Processes are reaped and folders removed a moment after a pool closes; this waits for
    that instead of reporting a leak that is only in flight.
    """
    deadline = time.monotonic() + timeout
    while True:
        now = kernel_footprint()
        if not leaked(baseline, now) or time.monotonic() > deadline:
            return now
        time.sleep(0.1)


def leaked(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """What grew between two footprints (an empty dict: nothing leaked)."""
    return {k: after[k] - before.get(k, 0) for k in after if after[k] > before.get(k, 0)}
