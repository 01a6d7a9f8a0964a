"""The host side of one kernel process: its folder, cgroup, jail link and file access.

A :class:`KernelHost` prepares what the kernel manager (``_manager.py``) launches (argv,
environment, connection file, socket prefix), follows the jail once it exists
(``<folder>/jail`` links to the jail's root as ``/proc/<pid>/root``, so the host reaches
the kernel's sockets and pixels while the kernel reaches nothing of the host), and removes
everything again. Without a jail
(``isolation="off"`` or nothing available) the kernel's area is the host folder itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import time
from pathlib import Path
from typing import Any

from .cgroups import KernelCgroup
from .hostdirs import KernelFiles, allocate_ids, run_root
from .jail import (
    JAIL_DIR,
    JAIL_LIB,
    KERNEL_LIB,
    JailPlan,
    plain_command,
    supervisor_command,
    supervisor_env,
)
from .limits import KernelLimits
from .sandbox import scrub_environment

FAST_TICK_S = 0.001
"""How often a starting jail is checked during its first :data:`FAST_TICKS_FOR_S`."""
FAST_TICKS_FOR_S = 0.25
TICK_S = 0.005
"""How often it is checked after that."""


def _identity(target: str | int) -> tuple[int, int] | None:
    """``(st_dev, st_ino)`` of a path or descriptor, ``None`` when it does not exist."""
    try:
        info = os.stat(target)
    except OSError:
        return None
    return info.st_dev, info.st_ino


class KernelHost:
    """Host-side resources of one kernel (see the module docstring)."""

    def __init__(
        self,
        plan: JailPlan,
        limits: KernelLimits,
        *,
        name: str,
        python: str | None,
        extra_env: dict[str, str],
        state: dict[str, Any],
        shell: str = "lean",
    ) -> None:
        self.plan = plan
        self.limits = limits
        self.shell = shell
        self.python = python
        self.extra_env = extra_env
        self.state = state  # shared with the session's finalizer
        self.dir = run_root().kernel_dir(name)
        state["dir"] = str(self.dir)
        self.jailed = plan.backend != "none"
        self.files: KernelFiles | None = None
        self.cgroup: KernelCgroup | None = None
        self.layers: list[str] = []
        self.jail_pid: int | None = None
        self.ids: tuple[int, int] | None = None
        self._wait_began = time.monotonic()
        if self.jailed:
            self.area = Path(JAIL_DIR)  # the kernel's writable area, as the kernel sees it
        else:
            self.area = self.dir
            for sub in ("work", "px"):
                (self.dir / sub).mkdir(mode=0o700)

    # -------------------------------------------------------------------- what to launch
    @property
    def workdir(self) -> Path:
        """The kernel's working directory (as the kernel sees it)."""
        return self.area / "work"

    @property
    def transfer_dir(self) -> Path:
        """Where pixels move between host and kernel (as the kernel sees it)."""
        return self.area / "px"

    def kernel_lib_file(self, name: str) -> str:
        """Where a file of this folder (e.g. ``_runtime.py``) lies, as the kernel sees it."""
        return f"{JAIL_LIB}/{name}" if self.jailed else str(KERNEL_LIB / name)

    @property
    def ipc_prefix(self) -> str:
        """The socket prefix the host connects to.

        For a jail these are host-side links to descriptors of the kernel's own sockets
        (see :meth:`pin_sockets`), never paths that resolve through the jail.
        """
        if self.jailed:
            return str(self.dir / "sock" / "ipc")
        return str(self.dir / "ipc")

    @property
    def connection_file(self) -> str:
        """The host's copy of the connection file (never visible to a jailed kernel)."""
        return str(self.dir / "kernel.json")

    def command(self) -> list[str]:
        """The argv template for the kernel manager (``{connection_file}`` filled in there)."""
        return supervisor_command(self.python) if self.jailed else plain_command(self.python)

    def prepare_launch(self) -> dict[str, str]:
        """Make the kernel's cgroup and uid; return the launch environment.

        For a jail, the environment is the supervisor's configuration and nothing else.
        """
        kernel_config: dict[str, Any] = {
            "rlimits": self.limits.rlimits(per_kernel_uid=self.plan.drop_uid),
            "workdir": str(self.workdir),
            "shell": self.shell,
        }
        env = scrub_environment(workdir=self.workdir, extra=self.extra_env)
        if not self.jailed:
            kernel_config["parent_pid"] = os.getpid()
            env["CODEVISION_KERNEL_CONFIG"] = json.dumps(kernel_config)
            return env
        env["TMPDIR"] = "/tmp"
        kernel_config["layers_file"] = f"{JAIL_DIR}/layers.json"
        kernel_config["seccomp"] = True
        if self.plan.landlock:
            kernel_config["landlock"] = {"read": ["/"], "write": [JAIL_DIR, "/dev"]}
        env["CODEVISION_KERNEL_CONFIG"] = json.dumps(kernel_config)
        ids = allocate_ids() if self.plan.drop_uid else None
        self.ids = ids
        cgroups: list[str] = []
        if self.plan.cgroup:
            self.cgroup = KernelCgroup.create(
                run_root().cgroup_name(self.dir),
                max_processes=self.limits.max_processes,
                memory_bytes=self.limits.jail_memory_bytes,
                cpu_cores=self.limits.cpu_cores,
            )
            cgroups = [str(path) for path in self.cgroup.paths]
            self.state["cgroup"] = cgroups
        return supervisor_env(
            self.plan,
            host_dir=self.dir,
            ids=ids,
            quota_bytes=self.limits.disk_bytes,
            cgroups=cgroups,
            kernel_env=env,
            python=self.python,
        )

    # -------------------------------------------------------------------- after launch
    def forget_jail(self) -> None:
        """Before a (re)start: drop the descriptors and pid of the previous jail."""
        self.close_files()
        for name in ("jail.pid", "jail.err", "jail.exit"):
            with contextlib.suppress(FileNotFoundError):
                (self.dir / name).unlink()
        self.jail_pid = None
        # Sockets stay pinned until the next jail's links replace theirs: a closed number
        # could be reused (by another kernel's socket) while a link still names it.
        self.state.setdefault("retired", []).extend(self.state.pop("socks", []))
        pidfd = self.state.pop("pidfd", None)
        if pidfd is not None:
            with contextlib.suppress(OSError):
                os.close(pidfd)

    async def follow_jail(self, process_alive, timeout: float) -> None:
        """Wait until the jail is built and open its area (before any user code runs)."""
        if not self.jailed:
            self.files = KernelFiles(self.dir)
            return
        pid_file = self.dir / "jail.pid"
        deadline = time.monotonic() + timeout
        self._wait_began = time.monotonic()
        while not pid_file.exists():
            await self._tick(process_alive, deadline)
        self.jail_pid = int(pid_file.read_text())
        with contextlib.suppress(OSError):
            self.state["pidfd"] = os.pidfd_open(self.jail_pid)
        # Files the host makes in a bubblewrap jail's tmpfs must belong to the kernel's uid.
        owner = self.ids if self.plan.backend == "bwrap" else None
        area = f"/proc/{self.jail_pid}/root{JAIL_DIR}"
        host_twin = _identity(JAIL_DIR)  # the host's own /run/cv, if it has one: not it
        while True:
            with contextlib.suppress(OSError):
                files = KernelFiles(area, owner)
                if _identity(files.fd) != host_twin and files.exists("work"):
                    self.files = files
                    return
                files.close()
            await self._tick(process_alive, deadline)

    async def pin_sockets(self, ports: list[int], process_alive, timeout: float) -> None:
        """Link the host's socket paths to descriptors of the jailed kernel's sockets.

        Each socket is opened (``O_PATH``) strictly inside the kernel's area, and the host
        connects through ``/proc/<host pid>/fd/<n>``: whatever the kernel later puts at
        those paths (a symlink to a host socket, say), the host keeps reaching the socket
        the kernel bound at start.
        """
        if not self.jailed:
            return
        assert self.files is not None
        deadline = time.monotonic() + timeout
        self._wait_began = time.monotonic()
        links = self.dir / "sock"
        links.mkdir(mode=0o700, exist_ok=True)
        for port in ports:
            name = f"ipc-{port}"
            while (fd := self.files.socket(name)) is None:
                await self._tick(process_alive, deadline)
            self.state.setdefault("socks", []).append(fd)
            staged = links / f"{name}.new"
            with contextlib.suppress(FileNotFoundError):
                staged.unlink()
            os.symlink(f"/proc/{os.getpid()}/fd/{fd}", staged)
            os.replace(staged, links / name)
        for fd in self.state.pop("retired", []):
            with contextlib.suppress(OSError):
                os.close(fd)

    async def _tick(self, process_alive, deadline: float) -> None:
        if not await process_alive():
            raise RuntimeError(f"the jail could not be built: {self.failure_detail()}")
        if time.monotonic() > deadline:
            raise TimeoutError("the jail did not come up in time")
        # A jail comes up in tens of milliseconds: look often at first, then less so.
        waited = time.monotonic() - self._wait_began
        await asyncio.sleep(FAST_TICK_S if waited < FAST_TICKS_FOR_S else TICK_S)

    def read_layers(self) -> None:
        """Record the layers in force (read once the kernel is ready, before user code)."""
        self.layers = [self.plan.backend, *self.plan.layers] if self.jailed else []
        if self.jailed and self.files is not None:
            with contextlib.suppress(OSError, ValueError):
                raw = self.files.read("layers.json", 0, 4096)
                self.layers += [str(layer) for layer in json.loads(raw)]

    def close_files(self) -> None:
        """Release the area's descriptor."""
        if self.files is not None:
            self.files.close()
            self.files = None

    @property
    def isolation(self) -> str:
        """The layers in force, e.g. ``"bwrap+uid+user+pid+...+rlimits(AS,CPU,...)"``."""
        return "+".join(self.layers) if self.layers else "none"

    def failure_detail(self) -> str:
        """Why the supervisor could not build the jail, if it said."""
        error = self.dir / "jail.err"
        with contextlib.suppress(OSError):
            return error.read_text().strip()[:500] or "no detail"
        return "no detail"

    def death_detail(self) -> str:
        """Extra words for a kernel death (the memory limit's OOM kills)."""
        if self.cgroup is not None and self.cgroup.oom_kills():
            return "; the jail reached its memory limit"
        return ""

    def kill_jail(self) -> None:
        """SIGKILL the jail's init through its pidfd (no risk of a reused pid)."""
        pidfd = self.state.get("pidfd")
        if pidfd is not None:
            with contextlib.suppress(OSError):
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        if self.cgroup is not None:
            self.cgroup.kill()

    def cleanup(self) -> None:
        """Kill what is left, remove the cgroup and the folder (idempotent)."""
        self.kill_jail()
        self.forget_jail()
        cleanup_state(self.state)
        self.cgroup = None


def cleanup_state(state: dict[str, Any]) -> None:
    """Finalizer-safe cleanup of what a :class:`KernelHost` left in ``state``."""
    pidfd = state.get("pidfd")
    if pidfd is not None:
        with contextlib.suppress(OSError):
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
    _close_descriptors(state)
    cgroups = state.pop("cgroup", None)
    if cgroups:
        KernelCgroup("stale", [Path(p) for p in cgroups]).remove()
    directory = state.pop("dir", None)
    if directory:
        shutil.rmtree(directory, ignore_errors=True)


def _close_descriptors(state: dict[str, Any]) -> None:
    """Close the jail's pidfd and pinned socket descriptors kept in ``state``."""
    for fd in [state.pop("pidfd", None), *state.pop("socks", []), *state.pop("retired", [])]:
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)
