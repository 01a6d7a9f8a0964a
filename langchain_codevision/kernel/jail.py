"""One jail per kernel: which layers this machine offers, and the command that builds them.

Model-written code is hostile, so every kernel runs in a jail made of OS layers, never of
import blacklists:

============  ================================================================================
layer         what it stops
============  ================================================================================
``uid``       (root hosts) the kernel runs as its own unprivileged host uid: nothing the host
              owns is writable even if a mount layer failed; kernels cannot touch each other
``user``      a user namespace: inside it the kernel is uid 65534 with no capabilities
``pid``       a PID namespace: it sees and can signal only its own processes; closing the
              session kills the namespace's init, and every descendant dies with it
``mount``     a new root: host system paths read-only, the Python prefixes read-only, no
              ``/root``, ``/home``, host ``/tmp`` or ``/dev/shm``, no other kernel's files;
              one size-capped tmpfs (workdir, ``/tmp``, ``/dev/shm``) that vanishes with it
``net``       a network namespace with no interfaces but loopback; ``ipc``/``uts`` as well
``rlimits``   address space, CPU, file size, open files (and processes, with ``uid``), soft =
              hard, so code cannot raise them
``cgroup``    (where cgroups can be made) ``pids.max`` and a memory limit for the whole jail
``landlock``  (where the kernel offers it) writes only below the jail's tmpfs; ABI >= 6 also
              cuts signals and abstract unix sockets outside the sandbox
``seccomp``   system calls image code never needs and kernel exploits start from
              (``io_uring``, ``bpf``, ``perf_event_open``, ``userfaultfd``, ``keyctl``,
              ``ptrace``, ``unshare``, ``mount``, ...) fail with ``EPERM``; foreign-ABI calls too
============  ================================================================================

Backends: ``bwrap`` (bubblewrap) or ``namespaces`` (the same layers built by the
package's own supervisor). A ``namespaces`` jail is either built around a fresh interpreter
(``start="exec"``) or forked, with every layer above, from the host's preloaded kernel
template (``start="fork"``, the default where it works: numpy, PIL, cv2, the lean kernel and
ipykernel are imported once and their pages shared copy-on-write; see ``_template.py``).
``isolation="strict"`` refuses to start a kernel without the core layers; ``"auto"`` runs
with what is available and warns once, naming what is missing; ``"off"`` runs a plain child
process (trusted code only).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import site
import subprocess
import sys
import sysconfig
import tempfile
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from . import _jailsys
from .cgroups import cgroup_support
from .hostdirs import run_root
from .sandbox import IsolationError, IsolationPolicy

__all__ = [
    "CORE_LAYERS",
    "JAIL_DIR",
    "JAIL_LIB",
    "JailBackend",
    "JailPlan",
    "backend_support",
    "plan_jail",
    "readonly_paths",
]

KERNEL_LIB = Path(__file__).parent
SUPERVISOR = KERNEL_LIB / "_supervisor.py"
LAUNCHER = KERNEL_LIB / "_launch.py"
JAIL_DIR = "/run/cv"
"""Where the kernel's writable tmpfs lies inside the jail (see ``_supervisor.py``)."""
JAIL_LIB = "/codevision-lib"
"""Where this folder (launcher, kernel runtime) is shown read-only inside the jail, wherever
the package is installed (a checkout below ``/tmp`` included)."""

JailBackend = Literal["auto", "bwrap", "namespaces"]
CORE_LAYERS = ("user", "pid", "mount", "net", "ipc", "rlimits")
"""Layers ``isolation="strict"`` requires (plus ``uid`` on root hosts, and a process cap)."""

SYSTEM_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")


READONLY_PATHS_TTL_S = 30.0
"""How long :func:`readonly_paths` reuses what it found for the same Python and PYTHONPATH."""

_readonly_found: dict[tuple[str | None, str], tuple[float, tuple[str, ...]]] = {}


def readonly_paths(python: str | None = None) -> list[str]:
    """The host paths a jailed kernel sees at their own place (read-only): system, Python.

    Every kernel start asks, so the answer (about 30 ``stat`` calls and ``sysconfig``'s path
    expansion, ~0.5 ms) is kept for :data:`READONLY_PATHS_TTL_S` per Python and PYTHONPATH.
    """
    key = (python, os.environ.get("PYTHONPATH", ""))
    now = time.monotonic()
    found = _readonly_found.get(key)
    if found is None or now - found[0] > READONLY_PATHS_TTL_S:
        found = (now, tuple(_find_readonly_paths(python)))
        _readonly_found[key] = found
    return list(found[1])


def _find_readonly_paths(python: str | None) -> list[str]:
    paths = [p for p in SYSTEM_PATHS if os.path.lexists(p)]
    prefixes = {sys.prefix, sys.base_prefix, sys.exec_prefix}
    prefixes.update(sysconfig.get_paths()[key] for key in ("purelib", "platlib"))
    prefixes.update(site.getsitepackages())
    prefixes.update(os.environ.get("PYTHONPATH", "").split(os.pathsep))
    if python:
        prefixes.add(str(Path(python).resolve().parent.parent))
    prefixes.discard("")
    # The jail has its own /tmp and /dev/shm: host paths below them cannot be shown.
    prefixes = {p for p in prefixes if not p.startswith(("/tmp/", "/var/tmp/", "/dev/shm/"))}
    for candidate in sorted(prefixes, key=len):
        real = os.path.realpath(candidate)
        for path in {candidate, real}:
            covered = any(path == p or path.startswith(p.rstrip("/") + "/") for p in paths)
            if os.path.isdir(path) and not covered:
                paths.append(path)
    return paths


@dataclass(frozen=True)
class JailPlan:
    """How the next kernel will be jailed.

    Attributes:
        backend: ``"bwrap"``, ``"namespaces"`` or ``"none"`` (a plain child process).
        layers: Host-side layers in force (the kernel adds ``rlimits``/``landlock``).
        missing: Layers wanted but unavailable here, each with its reason.
        drop_uid: Whether the kernel gets its own unprivileged host uid (root hosts).
        cgroup: Whether the kernel gets its own cgroup (process and memory caps).
        landlock: Whether the launcher confines the kernel with Landlock.
        bwrap: The bubblewrap binary, for the ``bwrap`` backend.
    """

    backend: str
    layers: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    drop_uid: bool = False
    cgroup: bool = False
    landlock: bool = False
    bwrap: str | None = None


def _probe_config(backend: str, bwrap: str | None, host_dir: str) -> dict[str, object]:
    return {
        "backend": backend,
        "bwrap": bwrap,
        "host_dir": host_dir,
        "uid": 65533 if os.getuid() == 0 else None,
        "gid": 65533 if os.getuid() == 0 else None,
        "ro_paths": readonly_paths(),
        "quota_bytes": 1 << 20,
        "cgroups": [],
        "parent_pid": os.getpid(),
        "lib": [str(KERNEL_LIB), JAIL_LIB],
        "kernel_argv": [sys.executable, "-E", "-s", f"{JAIL_LIB}/_probe.py"],
        "kernel_env": {"PATH": os.defpath},
    }


@functools.lru_cache(maxsize=4)
def backend_support(backend: str) -> str | None:
    """``None`` when ``backend`` can build a jail here, else the reason it cannot (probed once)."""
    if not sys.platform.startswith("linux"):
        return f"jails need Linux; this is {sys.platform}"
    bwrap = shutil.which("bwrap")
    if backend == "bwrap" and bwrap is None:
        return "bubblewrap ('bwrap') is not installed"
    # In the run root, so the janitor removes the probe's folder even if this process is killed.
    with tempfile.TemporaryDirectory(prefix="probe-", dir=run_root().path) as tmp:
        os.chmod(tmp, 0o711)
        conn = Path(tmp) / "kernel.json"
        conn.write_text("{}")
        env = {
            "CODEVISION_JAIL": json.dumps(_probe_config(backend, bwrap, tmp)),
            "PATH": os.defpath,
        }
        try:
            done = subprocess.run(
                [sys.executable, "-E", "-s", str(SUPERVISOR), str(conn)],
                env=env,
                capture_output=True,
                timeout=30,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"the {backend} jail could not be started: {exc}"
        if done.returncode != 0:
            error = Path(tmp) / "jail.err"
            detail = error.read_text().strip() if error.exists() else ""
            detail = detail or done.stderr.decode(errors="replace").strip()[-300:]
            return f"the {backend} jail failed here: {detail or f'exit {done.returncode}'}"
    return None


_warned: set[str] = set()


def plan_jail(policy: IsolationPolicy | str, backend: JailBackend = "auto") -> JailPlan:
    """Decide how a new kernel is jailed under ``policy``.

    Raises:
        IsolationError: ``policy`` is strict and a core layer is unavailable.
    """
    policy = IsolationPolicy(policy)
    if policy is IsolationPolicy.OFF:
        return JailPlan("none")
    if backend not in ("auto", "bwrap", "namespaces"):
        raise ValueError(f"jail must be 'auto', 'bwrap' or 'namespaces', got {backend!r}")
    candidates = ["bwrap", "namespaces"] if backend == "auto" else [backend]
    reasons = {name: backend_support(name) for name in candidates}
    chosen = next((name for name in candidates if reasons[name] is None), None)
    root = os.getuid() == 0
    cgroup_ok, cgroup_reason = cgroup_support()
    landlock_abi = _jailsys.landlock_abi()
    missing: list[str] = []
    if chosen is None:
        missing += [f"{name}: {reason}" for name, reason in reasons.items()]
    if not cgroup_ok:
        missing.append(f"cgroup: {cgroup_reason}")
    if not landlock_abi:
        missing.append("landlock: not offered by this kernel")
    if (chosen is None or (not cgroup_ok and not root)) and policy is IsolationPolicy.STRICT:
        what = "no jail backend works" if chosen is None else "no cap on processes"
        raise IsolationError(
            f"cannot jail the kernel ({what}): " + "; ".join(missing) + ". Install "
            "bubblewrap or allow user namespaces, or pass isolation='auto' (best "
            "available) or isolation='off' (no jail) to accept the risk."
        )
    layers: list[str] = []
    if chosen is not None:
        layers += ["uid"] if root else []
        layers += ["user", "pid", "mount", "net", "ipc", "uts"]
    if cgroup_ok and chosen is not None:
        layers.append("cgroup")
    if missing and policy is IsolationPolicy.AUTO:
        key = "|".join(missing)
        if key not in _warned:
            _warned.add(key)
            warnings.warn(
                "kernels run with a weaker jail: " + "; ".join(missing) + " (pass "
                "isolation='strict' to refuse instead)",
                RuntimeWarning,
                stacklevel=3,
            )
    return JailPlan(
        backend=chosen or "none",
        layers=tuple(layers),
        missing=tuple(missing),
        drop_uid=root and chosen is not None,
        cgroup=cgroup_ok and chosen is not None,
        landlock=bool(landlock_abi) and chosen is not None,
        bwrap=shutil.which("bwrap") if chosen == "bwrap" else None,
    )


def supervisor_command(python: str | None = None) -> list[str]:
    """The argv launched for a jailed kernel (``{connection_file}`` filled in)."""
    return [python or sys.executable, "-E", "-s", str(SUPERVISOR), "{connection_file}"]


def plain_command(python: str | None = None) -> list[str]:
    """The argv of an unjailed kernel."""
    return [python or sys.executable, str(LAUNCHER), "-f", "{connection_file}"]


def supervisor_env(
    plan: JailPlan,
    *,
    host_dir: Path,
    ids: tuple[int, int] | None,
    quota_bytes: int,
    cgroups: list[str],
    kernel_env: Mapping[str, str],
    python: str | None = None,
) -> dict[str, str]:
    """The supervisor's environment: its JSON configuration and nothing else."""
    python = python or sys.executable
    config = {
        "backend": plan.backend,
        "bwrap": plan.bwrap,
        "host_dir": str(host_dir),
        "uid": ids[0] if ids else None,
        "gid": ids[1] if ids else None,
        "inner_id": 65534,
        "ro_paths": readonly_paths(python),
        "quota_bytes": quota_bytes,
        "cgroups": cgroups,
        "parent_pid": os.getpid(),
        "lib": [str(KERNEL_LIB), JAIL_LIB],
        "kernel_argv": [python, f"{JAIL_LIB}/{LAUNCHER.name}", "-f", f"{JAIL_DIR}/kernel.json"],
        "kernel_env": dict(kernel_env),
    }
    return {"CODEVISION_JAIL": json.dumps(config), "PATH": os.defpath}
