"""Kernel launcher: applies limits, then becomes an ipykernel.

Run by path (``python _launch.py -f CONNECTION_FILE``) so that it imports nothing from
the package. Its settings come as JSON in ``CODEVISION_KERNEL_CONFIG``:
``{"rlimits": {"AS": bytes, ...}, "parent_pid": int, "workdir": str}``.
"""

import ctypes
import json
import os
import resource
import signal
import sys

PR_SET_PDEATHSIG = 1


def _die_with_parent(parent_pid: int) -> None:
    """Ask Linux to kill this process when the host dies; exit if it already has."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return
    if parent_pid and os.getppid() != parent_pid:
        os._exit(1)


def _apply_rlimits(limits: dict) -> None:
    for name, value in limits.items():
        which = getattr(resource, f"RLIMIT_{name}", None)
        if which is None:
            continue
        _, hard = resource.getrlimit(which)
        value = int(value)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        resource.setrlimit(which, (value, hard if name != "CPU" else value + 5))


def main() -> None:
    """Apply the configuration, then hand over to ipykernel."""
    config = json.loads(os.environ.pop("CODEVISION_KERNEL_CONFIG", "{}"))
    _die_with_parent(int(config.get("parent_pid", 0)))
    workdir = config.get("workdir")
    if workdir:
        os.chdir(workdir)
    _apply_rlimits(config.get("rlimits", {}))
    # Writes past RLIMIT_FSIZE must fail with OSError rather than kill the kernel.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    # Running by path put this package folder first on sys.path; user code must not see it.
    if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
        del sys.path[0]
    from ipykernel import kernelapp

    kernelapp.launch_new_instance(argv=sys.argv[1:])


if __name__ == "__main__":
    main()
