"""A gateway's kernel, jailed like a local one: the ``codevision-jailed`` kernelspec.

A Kernel Gateway starts each kernel as ``python -m langchain_codevision.kernel.gateway_kernel
-f CONNECTION_FILE``. This launcher starts a :class:`~.session.KernelSession` (the same jail,
cgroup, limits and runtime as a local kernel, signing with the gateway's key) and relays the
gateway's TCP sockets to the jailed kernel's own sockets, which the jail cannot leave:

    gateway --tcp--> this launcher (outside the jail) --ipc--> the kernel (inside the jail)

It exits, taking the jail with it, when the kernel dies, on SIGTERM, or when the gateway
asks the kernel to shut down. Limits come as JSON (:class:`~.limits.KernelLimits` fields) in
``CODEVISION_KERNEL_LIMITS``; ``CODEVISION_KERNEL_ISOLATION`` is the policy (``strict``).

Install the kernelspec where the gateway looks (a Jupyter data dir's ``kernels/``)::

    python -m langchain_codevision.kernel.gateway_kernel install --prefix ~/.local/share/jupyter
    jupyter kernelgateway --KernelGatewayApp.default_kernel_name=codevision-jailed ...
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import zmq

from .hostdirs import run_root
from .limits import KernelLimits
from .session import KernelSession

__all__ = ["KERNEL_NAME", "install_kernelspec", "kernelspec", "main"]

KERNEL_NAME = "codevision-jailed"
MODULE = "langchain_codevision.kernel.gateway_kernel"  # not __name__: "__main__" under -m
LIMITS_ENV = "CODEVISION_KERNEL_LIMITS"
ISOLATION_ENV = "CODEVISION_KERNEL_ISOLATION"
# (channel, socket the gateway connects to, socket towards the kernel)
RELAYS = (
    ("shell", zmq.ROUTER, zmq.DEALER),
    ("control", zmq.ROUTER, zmq.DEALER),
    ("stdin", zmq.ROUTER, zmq.DEALER),
    ("hb", zmq.ROUTER, zmq.DEALER),
    ("iopub", zmq.XPUB, zmq.XSUB),
)


def kernelspec(limits: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``kernel.json`` of the jailed kernel (this interpreter, this package)."""
    env = {"PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    if limits:
        KernelLimits(**limits)  # refuse unknown or invalid fields now
        env[LIMITS_ENV] = json.dumps(limits)
    return {
        "argv": [sys.executable, "-m", MODULE, "-f", "{connection_file}"],
        "display_name": "CodeVision (jailed Python)",
        "language": "python",
        "interrupt_mode": "message",
        "env": env,
        "metadata": {"codevision": {"jailed": True}},
    }


def install_kernelspec(
    prefix: str | Path, name: str = KERNEL_NAME, limits: dict[str, Any] | None = None
) -> Path:
    """Write the kernelspec under ``<prefix>/kernels/<name>``; returns its folder."""
    folder = Path(prefix) / "kernels" / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "kernel.json").write_text(json.dumps(kernelspec(limits), indent=2) + "\n")
    return folder


def _relay(context: zmq.Context, front: str, back: str, kinds: tuple[int, int]) -> None:
    outer, inner = context.socket(kinds[0]), context.socket(kinds[1])
    outer.bind(front)
    inner.connect(back)
    with contextlib.suppress(zmq.ContextTerminated, zmq.ZMQError):
        zmq.proxy(outer, inner)
    outer.close(0)
    inner.close(0)


def serve(connection_file: str) -> int:
    """Run one jailed kernel behind the gateway's connection file; the exit status."""
    info = json.loads(Path(connection_file).read_text())
    limits = KernelLimits(**json.loads(os.environ.get(LIMITS_ENV) or "{}"))
    session = KernelSession(limits=limits, isolation=os.environ.get(ISOLATION_ENV, "strict"))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # interrupts arrive as messages
    session._key = info["key"].encode()  # sign as the gateway does: its relays pass ours on
    session.start()
    try:
        session.execute(f"__cv_runtime__.isolation = {session.isolation!r}")
        session._kc.stop_channels()  # the relays carry the gateway's traffic from now on
        kernel = session._km.get_connection_info()
        context = zmq.Context()
        for channel, outer, inner in RELAYS:
            front = f"tcp://{info['ip']}:{info[f'{channel}_port']}"
            back = f"ipc://{kernel['ip']}-{kernel[f'{channel}_port']}"
            thread = threading.Thread(
                target=_relay, args=(context, front, back, (outer, inner)), daemon=True
            )
            thread.start()
        while not stop.wait(0.2):
            if not session.is_alive():
                return 1
        return 0
    finally:
        session.close()


def main(argv: list[str] | None = None) -> None:
    """``-f CONNECTION_FILE`` runs a kernel; ``install --prefix DIR`` writes the spec."""
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}")
    parser.add_argument("-f", dest="connection_file")
    parser.add_argument("command", nargs="?", choices=["install"])
    parser.add_argument("--prefix", default=None, help="a Jupyter data dir (default: user)")
    parser.add_argument("--name", default=KERNEL_NAME)
    parser.add_argument("--limits", default=None, help="KernelLimits fields as JSON")
    args = parser.parse_args(argv)
    if args.command == "install":
        from jupyter_core.paths import jupyter_data_dir

        try:
            limits = json.loads(args.limits) if args.limits else None
            folder = install_kernelspec(args.prefix or jupyter_data_dir(), args.name, limits)
        except (TypeError, ValueError) as exc:
            parser.error(f"--limits: {exc}")
        print(folder)
        return
    if not args.connection_file:
        parser.error("-f CONNECTION_FILE is required")
    code = serve(args.connection_file)
    run_root().close()
    sys.stdout.flush()
    os._exit(code)  # the relay threads block in zmq.proxy and hold nothing worth keeping


if __name__ == "__main__":
    main()
