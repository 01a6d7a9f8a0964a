"""Host-side directories of the kernels, and safe access to the files inside a jail.

Each host process keeps one run root, ``$TMPDIR/codevision-<pid>-<random>/`` (mode 0711),
holding an ``owner.lock`` it keeps locked for its lifetime and one mode-0700 directory
per kernel (connection file, the jail's pid, a link to its root). A jailed kernel never
sees these: everything it can write lives in its own size-capped tmpfs, which vanishes
with the jail. The run root is removed at exit; a later process removes the run roots
(and cgroups) of hosts that were SIGKILLed, recognised by their unlocked ``owner.lock``.

:class:`KernelFiles` is how the host reads result pixels from and writes input pixels into
a kernel's area: through a directory descriptor opened while the kernel was fresh, with
``openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV)``, so no symlink, ``..``
or mount the kernel plants can send the host's reads or writes anywhere else.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import itertools
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from . import _jailsys
from ._janitor import host_gone
from .cgroups import sweep_stale_cgroups

__all__ = ["KernelFiles", "RunRoot", "allocate_ids", "run_root"]

JANITOR_PATH = Path(__file__).with_name("_janitor.py")
PREFIX = "codevision-"
_RUN_ROOT_NAME = re.compile(rf"{PREFIX}\d+-[A-Za-z0-9_]{{8}}")
UID_BASE = 1 << 30
"""Kernel uids are taken from ``UID_BASE`` upwards (below 2^31, as tools parse them signed)."""

_lock = threading.Lock()
_root: RunRoot | None = None
_uids = itertools.count()


class RunRoot:
    """This process's directory of kernel folders (see the module docstring)."""

    def __init__(self, base: str | None = None) -> None:
        self.base = Path(base or tempfile.gettempdir())
        self.path = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=self.base))
        os.chmod(self.path, 0o711)
        self.owner = self.path.name[len(PREFIX) :]
        self._lock_fd = os.open(self.path / "owner.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._names = itertools.count(1)
        self._janitor, self.janitor = _start_janitor(self.path)
        self.swept = sweep_stale(self.base, keep=self.path)

    def kernel_dir(self, name: str) -> Path:
        """A new private (0700) folder for one kernel."""
        path = self.path / f"{name}-{next(self._names)}"
        path.mkdir(mode=0o700)
        return path

    def cgroup_name(self, kernel_dir: Path) -> str:
        """The cgroup name of a kernel: ``<owner>-<kernel folder>``, swept by owner."""
        return f"{self.owner}-{kernel_dir.name.replace('-', '_')}"

    def close(self) -> None:
        """Remove the run root (at interpreter exit)."""
        for _ in range(20):  # a kernel folder being removed concurrently may race the walk
            shutil.rmtree(self.path, ignore_errors=True)
            if not self.path.exists():
                break
            time.sleep(0.05)
        with contextlib.suppress(OSError):
            os.close(self._lock_fd)
        with contextlib.suppress(OSError):
            os.close(self._janitor)


def _start_janitor(path: Path) -> tuple[int, subprocess.Popen[bytes]]:
    """Start the watcher that removes ``path`` when this process is gone (see ``_janitor``).

    Returns the pipe's write end, which only this process holds (Python makes it
    non-inheritable, and kernels close every descriptor they are not given), and the watcher.
    """
    read_end, write_end = os.pipe()
    try:
        watcher = subprocess.Popen(
            [sys.executable, "-I", "-S", str(JANITOR_PATH), str(path)],
            stdin=read_end,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # a signal to the host's process group spares it
        )
    finally:
        os.close(read_end)
    return write_end, watcher


def run_root() -> RunRoot:
    """This process's run root, made (and stale ones swept) on first use."""
    global _root
    with _lock:
        if _root is None or not _root.path.exists():
            _root = RunRoot()
        return _root


@atexit.register
def _close_run_root() -> None:
    """At exit, after the pools and sessions (registered at import, so it runs last)."""
    if _root is not None:
        _root.close()


def _owner_alive(directory: Path) -> bool:
    """Whether the host that made run root ``directory`` still holds its ``owner.lock``."""
    return not host_gone(directory / "owner.lock")


def sweep_stale(base: Path, keep: Path | None = None) -> int:
    """Remove run roots (and cgroups) left by hosts that died; returns how many went.

    Only folders named like a run root (``codevision-<pid>-<random>``) that hold an
    ``owner.lock`` nobody holds are removed: anything else is not provably this package's.
    """
    removed = 0
    live: set[str] = set()
    for entry in [*base.glob(f"{PREFIX}*"), *Path("/dev/shm").glob(f"{PREFIX}*")]:
        if keep is not None and entry == keep:
            live.add(entry.name[len(PREFIX) :])
            continue
        with contextlib.suppress(OSError):
            info = entry.lstat()
            if not stat.S_ISDIR(info.st_mode):
                continue
            if not _RUN_ROOT_NAME.fullmatch(entry.name):
                continue
            if not (entry / "owner.lock").exists():
                # An empty run root whose owner was killed while removing it (a new one
                # makes its lock within microseconds: a minute's age rules that out).
                if time.time() - info.st_mtime > 60 and not any(entry.iterdir()):
                    entry.rmdir()
                    removed += 1
                continue
            if _owner_alive(entry):
                live.add(entry.name[len(PREFIX) :])
                continue
            shutil.rmtree(entry, ignore_errors=True)
            removed += 1
    with contextlib.suppress(OSError):
        removed += sweep_stale_cgroups(lambda owner: owner in live)
    return removed


def allocate_ids() -> tuple[int, int]:
    """A fresh ``(uid, gid)`` for one kernel: 1024 per host process, by pid (mod 2^20)."""
    offset = ((os.getpid() % (1 << 20)) << 10) + next(_uids) % 1024
    return UID_BASE + offset, UID_BASE + offset


class KernelFiles:
    """Reads and writes below one kernel's area without following anything the kernel made."""

    def __init__(
        self, directory: str | os.PathLike[str], owner: tuple[int, int] | None = None
    ) -> None:
        self.fd = os.open(directory, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        self.owner = owner

    def _open_regular(self, name: str) -> int:
        """A read-only descriptor of the regular file ``name`` (nothing followed)."""
        fd = _jailsys.open_beneath(self.fd, name, os.O_RDONLY | os.O_NONBLOCK)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise ValueError(f"{name} is not a regular file")
        return fd

    def read(self, name: str, offset: int, length: int) -> bytes:
        """``length`` bytes at ``offset`` of the regular file ``name``."""
        fd = self._open_regular(name)
        try:
            return os.pread(fd, length, offset)
        finally:
            os.close(fd)

    def read_into(self, name: str, offset: int, buffer: Any) -> int:
        """Fill ``buffer`` (any writable buffer) from ``offset`` of the regular file ``name``.

        Returns how many bytes were read: fewer than ``len(buffer)`` only where the file
        ends first. The bytes go straight into ``buffer``, with no copy of their own.
        """
        fd = self._open_regular(name)
        try:
            view = memoryview(buffer).cast("B")
            done = 0
            while done < len(view):
                got = os.preadv(fd, [view[done:]], offset + done)
                if got <= 0:
                    break
                done += got
            return done
        finally:
            os.close(fd)

    def exists(self, name: str) -> bool:
        """Whether the regular file or folder ``name`` exists (nothing followed)."""
        try:
            fd = _jailsys.open_beneath(self.fd, name, os.O_PATH)
        except OSError:
            return False
        try:
            mode = os.fstat(fd).st_mode
            return stat.S_ISREG(mode) or stat.S_ISDIR(mode)
        finally:
            os.close(fd)

    def socket(self, name: str) -> int | None:
        """An ``O_PATH`` descriptor of the unix socket ``name``; ``None`` while there is none."""
        try:
            fd = _jailsys.open_beneath(self.fd, name, os.O_PATH)
        except OSError:
            return None
        if not stat.S_ISSOCK(os.fstat(fd).st_mode):
            os.close(fd)
            return None
        return fd

    def create(self, name: str):
        """A new file ``name`` (it must not exist yet), opened for writing."""
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
        uid, gid = self.owner or (None, None)
        with _jailsys.file_owner(uid, gid):
            fd = _jailsys.open_beneath(self.fd, name, flags, 0o644)
        return os.fdopen(fd, "wb")

    def close(self) -> None:
        """Release the directory descriptor (idempotent)."""
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = -1
