"""Kernel launcher: hard limits, Landlock, seccomp, then the kernel (lean or ipykernel).

Run by path (``python _launch.py -f CONNECTION_FILE``), inside the jail when there is one,
so it imports nothing from the package. Its settings come as JSON in
``CODEVISION_KERNEL_CONFIG``: ``{"rlimits": {"AS": bytes, ...}, "parent_pid": int,
"workdir": str, "landlock": {"read": [...], "write": [...]} | null, "seccomp": bool,
"layers_file": str, "shell": "lean" | "ipython"}``: ``lean`` runs ``_lean_kernel`` (the
default), ``ipython`` runs ipykernel.

Every limit is set with soft = hard (CPU: hard = soft + 1 s, so ``SIGXCPU`` arrives first),
so code cannot raise it again. The layers that took effect here are written to
``layers_file`` before any user code runs; the host reads them once the kernel is ready.
A kernel forked from the template (``_template.py``) runs :func:`main` in its jail's init
instead of a new interpreter running this file.
"""

import json
import os
import resource
import signal
import sys

PR_SET_PDEATHSIG = 1


def _die_with_parent(parent_pid: int) -> None:
    """Unjailed kernels: ask Linux to kill this process when the host dies."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return
    if parent_pid and os.getppid() != parent_pid:
        os._exit(1)


def _apply_rlimits(limits: dict) -> list[str]:
    applied = []
    for name, value in limits.items():
        which = getattr(resource, f"RLIMIT_{name}", None)
        if which is None:
            continue
        _, hard = resource.getrlimit(which)
        value = int(value)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        ceiling = value + 1 if name == "CPU" else value
        if hard != resource.RLIM_INFINITY:
            ceiling = min(ceiling, hard)
        resource.setrlimit(which, (value, ceiling))
        applied.append(name)
    return applied


def confine(config: dict) -> None:
    """Apply a kernel configuration to this process: workdir, Landlock, seccomp, rlimits.

    The layers that took effect are written to ``layers_file``.
    """
    layers: list[str] = []
    if config.get("parent_pid"):
        _die_with_parent(int(config["parent_pid"]))
    workdir = config.get("workdir")
    if workdir:
        os.chdir(workdir)
    landlock = config.get("landlock")
    if landlock or config.get("seccomp"):
        import _jailsys  # found: main puts this folder on the path until the kernel starts

        if landlock:
            try:
                layers += _jailsys.landlock_restrict(landlock["read"], landlock["write"])
            except OSError as exc:
                layers.append(f"no-landlock({exc.strerror or exc})")
        if config.get("seccomp"):
            try:
                layers.append(_jailsys.seccomp_deny())
            except OSError as exc:
                layers.append(f"no-seccomp({exc.strerror or exc})")
    applied = _apply_rlimits(config.get("rlimits", {}))
    if applied:
        layers.append("rlimits(" + ",".join(applied) + ")")
    if config.get("layers_file"):
        with open(config["layers_file"], "w", encoding="utf-8") as handle:
            json.dump(layers, handle)
    # Writes past RLIMIT_FSIZE must fail with OSError rather than kill the kernel.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def main(argv: list[str] | None = None) -> None:
    """Apply the configuration (from the environment), then hand over to the kernel."""
    config = json.loads(os.environ.pop("CODEVISION_KERNEL_CONFIG", "{}"))
    here = os.path.dirname(os.path.abspath(__file__))
    if here not in sys.path:
        sys.path.insert(0, here)  # removed again below, before any user code runs
    import _jailsys

    _jailsys.set_name("cv-kernel")
    confine(config)
    argv = sys.argv[1:] if argv is None else argv
    lean = config.get("shell", "lean") == "lean"
    try:
        if lean:
            import _lean_kernel
    finally:
        # Running by path put this package folder first on sys.path; user code must not see it.
        while here in sys.path:
            sys.path.remove(here)
    if lean:
        _lean_kernel.main(_lean_kernel.connection_file_from(argv))
        return
    from ipykernel import kernelapp

    kernelapp.launch_new_instance(argv=argv)


if __name__ == "__main__":
    main()
