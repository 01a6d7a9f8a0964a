"""Per-kernel cgroups: process, memory and CPU caps that hold for the whole jail.

Rlimits are per process; a fork loop or many mid-sized allocations get around them. A
cgroup counts every process of the kernel together: ``pids.max`` stops a fork bomb with
``EAGAIN``, the memory limit (which also counts the jail's tmpfs pages) stops a memory
bomb inside the jail, and a CPU bandwidth quota keeps busy background processes from
taking more than their share of the host's cores. Both cgroup v1 (``pids``, ``memory``,
``cpu`` hierarchies) and v2 (unified) are handled; creating them needs root or a delegated
subtree, otherwise :func:`cgroup_support` says why not and the jail runs without this layer.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["KernelCgroup", "cgroup_support", "sweep_stale_cgroups"]

CGROUP_ROOT = Path("/sys/fs/cgroup")
GROUP = "codevision"
CPU_PERIOD_US = 100_000


def _is_v2() -> bool:
    return (CGROUP_ROOT / "cgroup.controllers").is_file()


def _v1_dirs() -> dict[str, Path]:
    dirs = {name: CGROUP_ROOT / name for name in ("pids", "memory")}
    cpu = CGROUP_ROOT / "cpu"
    if (cpu / "cpu.cfs_quota_us").exists():
        dirs["cpu"] = cpu
    return dirs


@functools.lru_cache(maxsize=1)
def cgroup_support() -> tuple[bool, str]:
    """Whether per-kernel cgroups can be made here; ``(supported, reason)``."""
    try:
        if _is_v2():
            parent = CGROUP_ROOT / GROUP
            parent.mkdir(exist_ok=True)
            _enable_v2_controllers(parent)
        else:
            for name, base in _v1_dirs().items():
                if not (base / "cgroup.procs").exists():
                    return False, f"the cgroup v1 '{name}' hierarchy is not mounted"
                (base / GROUP).mkdir(exist_ok=True)
    except OSError as exc:
        return False, f"cannot create cgroups under {CGROUP_ROOT}: {exc.strerror or exc}"
    return True, "cgroup v2" if _is_v2() else "cgroup v1 (pids, memory)"


def _enable_v2_controllers(parent: Path) -> None:
    for directory in (CGROUP_ROOT, parent):
        control = directory / "cgroup.subtree_control"
        enabled = control.read_text().split()
        available = (directory / "cgroup.controllers").read_text().split()
        wanted = [c for c in ("pids", "memory", "cpu") if c in available]
        missing = [c for c in wanted if c not in enabled]
        if missing:
            control.write_text(" ".join(f"+{c}" for c in missing))


@dataclass
class KernelCgroup:
    """The cgroup(s) of one kernel; :meth:`create` makes them, :meth:`remove` kills and removes.

    Attributes:
        name: Directory name, ``<owner>-<kernel>`` (the owner part lets a later process
            sweep the cgroups of a host that was killed).
        paths: One directory per hierarchy (one on v2, ``pids`` and ``memory`` on v1).
    """

    name: str
    paths: list[Path] = field(default_factory=list)

    @classmethod
    def create(
        cls,
        name: str,
        *,
        max_processes: int | None,
        memory_bytes: int | None,
        cpu_cores: float | None = None,
    ) -> KernelCgroup:
        """Make the cgroup and write its limits (``cpu_cores``: a CPU bandwidth quota)."""
        group = cls(name)
        try:
            if _is_v2():
                path = CGROUP_ROOT / GROUP / name
                path.mkdir()
                group.paths.append(path)
                if max_processes:
                    (path / "pids.max").write_text(str(max_processes))
                if memory_bytes:
                    (path / "memory.max").write_text(str(memory_bytes))
                    with contextlib.suppress(OSError):
                        (path / "memory.swap.max").write_text("0")
                if cpu_cores and (path / "cpu.max").exists():
                    quota = int(cpu_cores * CPU_PERIOD_US)
                    (path / "cpu.max").write_text(f"{quota} {CPU_PERIOD_US}")
            else:
                for kind, base in _v1_dirs().items():
                    path = base / GROUP / name
                    path.mkdir()
                    group.paths.append(path)
                    if kind == "pids" and max_processes:
                        (path / "pids.max").write_text(str(max_processes))
                    if kind == "memory" and memory_bytes:
                        (path / "memory.limit_in_bytes").write_text(str(memory_bytes))
                        swap = path / "memory.memsw.limit_in_bytes"
                        if swap.exists():
                            with contextlib.suppress(OSError):
                                swap.write_text(str(memory_bytes))
                    if kind == "cpu" and cpu_cores:
                        (path / "cpu.cfs_period_us").write_text(str(CPU_PERIOD_US))
                        quota = int(cpu_cores * CPU_PERIOD_US)
                        (path / "cpu.cfs_quota_us").write_text(str(quota))
        except OSError:
            group.remove()
            raise
        return group

    def oom_kills(self) -> int:
        """How often the kernel's memory limit made the OOM killer kill a process in it."""
        for path in self.paths:
            for name in ("memory.events", "memory.oom_control"):
                with contextlib.suppress(OSError):
                    for line in (path / name).read_text().splitlines():
                        key, _, value = line.partition(" ")
                        if key == "oom_kill":
                            return int(value)
        return 0

    def kill(self) -> None:
        """SIGKILL every process still in the cgroup."""
        for path in self.paths:
            kill_file = path / "cgroup.kill"
            if kill_file.exists():
                with contextlib.suppress(OSError):
                    kill_file.write_text("1")
                continue
            with contextlib.suppress(OSError):
                for pid in (path / "cgroup.procs").read_text().split():
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(int(pid), signal.SIGKILL)

    def remove(self) -> None:
        """Kill what is left in it and remove the directories (idempotent)."""
        if not self.paths:
            return
        self.kill()
        deadline = time.monotonic() + 2.0
        for path in self.paths:
            while path.exists():
                try:
                    path.rmdir()
                except OSError:
                    if time.monotonic() > deadline:
                        break
                    self.kill()
                    time.sleep(0.01)
        self.paths.clear()


def sweep_stale_cgroups(is_live_owner) -> int:
    """Remove the cgroups of hosts that died (``is_live_owner(owner) -> bool``); returns a count."""
    if not cgroup_support()[0]:
        return 0
    parents = [CGROUP_ROOT / GROUP] if _is_v2() else [b / GROUP for b in _v1_dirs().values()]
    removed = 0
    for parent in parents:
        with contextlib.suppress(OSError):
            for child in parent.iterdir():
                owner = child.name.rsplit("-", 1)[0]
                if not child.is_dir() or is_live_owner(owner) or _pid_alive(owner):
                    continue
                stale = KernelCgroup(child.name, [child])
                stale.remove()
                removed += 1
    return removed


def _pid_alive(owner: str) -> bool:
    """Whether the process named first in ``owner`` (``<pid>-<random>``) still runs.

    A host whose run root lies elsewhere (another ``TMPDIR``) is not seen by the lock
    check; its cgroups are kept while its pid lives (a reused pid only delays a sweep).
    """
    head = owner.split("-", 1)[0]
    if not head.isdigit():
        return True
    try:
        os.kill(int(head), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
