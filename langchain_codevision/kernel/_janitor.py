"""Removes a host process's run root and cgroups once that process is gone, however it ended.

``atexit`` does not run when a host dies by a signal (``langgraph dev`` stopped with
SIGTERM, a SIGKILLed worker), and kernels' folders would stay until a later process sweeps
them. So each run root gets this small watcher, started with the run root (standard
library only, run as ``python -I -S _janitor.py RUN_ROOT``): its stdin is a pipe whose
write end only the host holds. End of file means the host exited or closed the run root;
the watcher then waits until the host's ``owner.lock`` is free (the host is really gone),
removes the run root and the host's cgroups, and exits.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import os
import shutil
import sys
import time
from pathlib import Path

__all__ = ["host_gone"]

WAIT_S = 120.0
"""How long the watcher waits for the host's lock after end of file before giving up."""
REMOVE_TRIES = 20
REMOVE_PAUSE_S = 0.1


def host_gone(lock: Path) -> bool:
    """Whether nobody holds ``lock`` (a run root's ``owner.lock``): its host is gone."""
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def _remove_cgroups(owner: str) -> None:
    """The host's cgroups, through the package's own sweep (loaded by path: no imports)."""
    spec = importlib.util.spec_from_file_location(
        "_cv_cgroups", Path(__file__).with_name("cgroups.py")
    )
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    module.sweep_stale_cgroups(lambda other: other != owner)


def _remove(root: Path) -> None:
    """Remove ``root``, again while a dying jail still writes into it.

    The host's lock is free from the moment its descriptors close, a little before its
    kernels' processes get their parent-death signal: one still building its jail may add
    a file meanwhile, and a folder that gained a file is not removed the first time.
    """
    for _ in range(REMOVE_TRIES):
        shutil.rmtree(root, ignore_errors=True)
        if not root.exists():
            return
        time.sleep(REMOVE_PAUSE_S)


def main(root: Path) -> None:
    """Wait for the host to go, then remove what it left."""
    while os.read(0, 4096):
        pass
    deadline = time.monotonic() + WAIT_S
    while not host_gone(root / "owner.lock"):
        if time.monotonic() > deadline:
            return
        time.sleep(0.05)
    _remove(root)
    with contextlib.suppress(Exception):
        _remove_cgroups(root.name.removeprefix("codevision-"))


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main(Path(sys.argv[1]))
