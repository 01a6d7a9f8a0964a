"""OS-level isolation for kernels: network namespace, scrubbed environment, launch command.

Model-written code is untrusted. Import blacklists are bypassable, so isolation is done by
the operating system instead:

* **No network**: on Linux the kernel starts inside its own network namespace
  (``unshare --net --map-root-user``); only unix-socket (IPC) transport reaches it.
* **Resource limits**: applied by the launcher (see ``_launch.py``) before ipykernel starts.
* **Environment**: an allowlist; secrets such as ``*_API_KEY`` or ``*_TOKEN`` never pass.

Isolation is a policy: ``"strict"`` refuses to start a kernel the OS cannot isolate,
``"auto"`` (the default) isolates where possible and warns once otherwise, ``"off"`` runs
the kernel as a plain child process.
"""

from __future__ import annotations

import fnmatch
import functools
import os
import shutil
import subprocess
import sys
import warnings
from collections.abc import Mapping
from enum import Enum
from pathlib import Path

LAUNCHER = Path(__file__).with_name("_launch.py")


class IsolationPolicy(str, Enum):
    """How strictly a kernel must be cut off from the network."""

    STRICT = "strict"
    AUTO = "auto"
    OFF = "off"


class IsolationError(RuntimeError):
    """Raised under ``isolation="strict"`` when the OS cannot isolate the kernel."""


ENV_ALLOWLIST: tuple[str, ...] = (
    "PATH",
    "LANG",
    "LANGUAGE",
    "LC_*",
    "TZ",
    "TERM",
    "PYTHONPATH",
    "PYTHONHOME",
    "VIRTUAL_ENV",
    "CONDA_PREFIX",
    "LD_LIBRARY_PATH",
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "FONTCONFIG_PATH",
)
SECRET_PATTERNS: tuple[str, ...] = (
    "*_KEY",
    "*_API_KEY",
    "*_TOKEN",
    "*TOKEN*",
    "*SECRET*",
    "*PASSWORD*",
    "*CREDENTIAL*",
    "AWS_*",
    "GOOGLE_APPLICATION_CREDENTIALS",
)


def is_secret(name: str) -> bool:
    """Whether an environment variable name looks like it holds a secret."""
    upper = name.upper()
    return any(fnmatch.fnmatchcase(upper, pattern) for pattern in SECRET_PATTERNS)


def scrub_environment(
    source: Mapping[str, str] | None = None,
    *,
    workdir: str | os.PathLike[str],
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Build the kernel's environment from an allowlist of ``source`` (default: ``os.environ``).

    Variables that look like secrets are dropped even when allowlisted. ``extra`` is added
    as given (the caller vouches for it). ``HOME`` and ``TMPDIR`` point at ``workdir``.
    """
    source = os.environ if source is None else source
    env = {
        name: value
        for name, value in source.items()
        if any(fnmatch.fnmatchcase(name, pattern) for pattern in ENV_ALLOWLIST)
        and not is_secret(name)
    }
    env.setdefault("PATH", os.defpath)
    workdir = os.fspath(workdir)
    env.update(
        HOME=workdir,
        TMPDIR=workdir,
        MPLBACKEND="module://matplotlib_inline.backend_inline",
        MPLCONFIGDIR=os.path.join(workdir, ".matplotlib"),
        PYTHONDONTWRITEBYTECODE="1",
        PYTHONUNBUFFERED="1",
    )
    # Keep freed image-sized buffers in the heap for reuse instead of unmapping them after
    # every cell: fresh pages for each multi-megabyte image otherwise cost more than the op.
    env.setdefault("MALLOC_MMAP_THRESHOLD_", str(256 << 20))
    env.setdefault("MALLOC_TRIM_THRESHOLD_", str(512 << 20))
    env.setdefault("MALLOC_TOP_PAD_", str(64 << 20))
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    if extra:
        env.update(extra)
    return env


@functools.lru_cache(maxsize=1)
def network_namespace_support() -> tuple[bool, str]:
    """Probe once whether this OS can start a process in a private network namespace.

    Returns:
        ``(supported, reason)``; ``reason`` explains a refusal.
    """
    if not sys.platform.startswith("linux"):
        return False, f"network namespaces need Linux; this is {sys.platform}"
    unshare = shutil.which("unshare")
    if unshare is None:
        return False, "the 'unshare' command (util-linux) is not installed"
    try:
        probe = subprocess.run(
            [unshare, "--net", "--map-root-user", sys.executable, "-c", "pass"],
            capture_output=True,
            timeout=20,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"'unshare --net --map-root-user' failed to run: {exc}"
    if probe.returncode != 0:
        detail = probe.stderr.decode(errors="replace").strip() or f"exit {probe.returncode}"
        return False, f"'unshare --net --map-root-user' was refused by the OS: {detail}"
    return True, "private network namespace"


_warned = False


def resolve_isolation(policy: IsolationPolicy | str) -> str:
    """Decide which isolation a new kernel gets under ``policy``.

    Returns:
        ``"netns"`` (no network) or ``"none"``.

    Raises:
        IsolationError: ``policy`` is strict and the OS cannot isolate.
    """
    global _warned
    policy = IsolationPolicy(policy)
    if policy is IsolationPolicy.OFF:
        return "none"
    supported, reason = network_namespace_support()
    if supported:
        return "netns"
    if policy is IsolationPolicy.STRICT:
        raise IsolationError(
            f"cannot isolate the kernel from the network: {reason}. "
            "Run where user namespaces are allowed, or pass isolation='auto' (isolate when "
            "possible) or isolation='off' (no network isolation) to accept the risk."
        )
    if not _warned:
        _warned = True
        warnings.warn(
            f"kernels run WITHOUT network isolation: {reason} "
            "(pass isolation='strict' to refuse instead)",
            RuntimeWarning,
            stacklevel=3,
        )
    return "none"


def launch_command(isolation: str, python: str | None = None) -> list[str]:
    """The argv that starts a kernel; ``{connection_file}`` is filled in by jupyter_client."""
    argv = [python or sys.executable, os.fspath(LAUNCHER), "-f", "{connection_file}"]
    if isolation == "netns":
        unshare = shutil.which("unshare") or "unshare"
        argv = [unshare, "--net", "--map-root-user", *argv]
    return argv
