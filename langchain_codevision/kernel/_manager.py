"""Start, interrupt, restart and stop one local kernel process; hand out its client.

:class:`LocalKernel` is the kernel manager of :class:`~.session.KernelSession`: it writes
the kernel's connection file (IPC sockets under the host folder the session prepared, a
fresh signing key), launches the process (forked from the kernel template through
:func:`~._forkserver.launch_forked`, or ``Popen`` of the launcher's command in its own
process group) and makes the :class:`~._client.KernelClient` that talks to it.

It keeps to the Jupyter protocol (the connection file, the signed messages, interrupts as
``interrupt_request`` on the control socket) but not to jupyter_client's manager classes:
their configurable objects, provisioner lookup and connection-file bookkeeping were about
a third of the host's CPU for a fresh kernel's start and close, paid on every start.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import threading
import time
import uuid
from typing import IO, Any, Protocol

import zmq
import zmq.asyncio

from ._client import HostSession, KernelClient
from ._forkserver import launch_forked

__all__ = ["ExecProcess", "KernelProcess", "LocalKernel", "new_key"]

CHANNELS = ("shell", "iopub", "stdin", "control", "hb")
"""The kernel's sockets, in the order their IPC numbers are given out."""
FIRST_EXIT_CHECK_S = 0.001
"""How soon after a kill the kernel process is first checked for having ended (then 2x)."""
LAST_EXIT_CHECK_S = 0.1
EXIT_WAIT_S = 5.0
"""How long a close or restart waits for a killed process to end before going on."""


def new_key() -> bytes:
    """A fresh message-signing key (what jupyter_client makes: a random UUID's text)."""
    return str(uuid.uuid4()).encode("ascii")


class KernelProcess(Protocol):
    """What the manager holds of a launched kernel process (``Popen``-like)."""

    pid: int

    def poll(self) -> int | None: ...

    def send_signal(self, signum: int) -> None: ...

    def kill(self) -> None: ...

    def close(self) -> None: ...


class ExecProcess:
    """A kernel (or its jail supervisor) started by ``Popen`` as a process group leader.

    The leader is never reaped before its group is killed: while it is a zombie its pid,
    and so the group's id, cannot be reused, so a group kill never reaches anyone else's
    processes, and what the kernel started dies with it even when it exits first.
    """

    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        self.popen = popen
        self.pid = popen.pid
        self._lock = threading.Lock()  # the finalizer may kill from another thread

    def poll(self) -> int | None:
        """The exit code (negative: killed by that signal), ``None`` while it runs.

        A leader found exited takes its group with it before it is reaped.
        """
        with self._lock:
            if self.popen.returncode is None and self._exited():
                self._kill_group(signal.SIGKILL)
            return self.popen.poll()

    def _exited(self) -> bool:
        """Whether the leader has exited, without reaping it."""
        try:
            return os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
        except ChildProcessError:
            return True  # already reaped (by Popen itself): nothing left to signal by pid

    def _kill_group(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signum)

    def send_signal(self, signum: int) -> None:
        """Signal the process group, while its leader is unreaped (so never a reused one)."""
        with self._lock:
            if self.popen.returncode is not None:
                return  # reaped: its group was killed first (see ``poll``)
            self._kill_group(signum)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                self.popen.send_signal(signum)

    def kill(self) -> None:
        """SIGKILL the process and its group."""
        self.send_signal(signal.SIGKILL)

    def close(self) -> None:
        """Nothing to release (``poll`` has reaped the process)."""


class LocalKernel:
    """The manager of one local kernel process (see the module docstring).

    Args:
        argv: The command; ``{connection_file}`` in it is replaced by the file's path.
        forked: Launch through the kernel template instead of ``Popen``.
        startup_timeout: Seconds a forked launch may wait on the template.
        ip: The IPC socket prefix (sockets are ``<ip>-<n>``).
        connection_file: Where the connection file is written (a host-only path).
        context: The ZeroMQ context for the control socket and the client.
        key: The signing key (default: a fresh one).
    """

    def __init__(
        self,
        argv: list[str],
        *,
        forked: bool,
        startup_timeout: float,
        ip: str,
        connection_file: str,
        context: zmq.asyncio.Context,
        key: bytes | None = None,
    ) -> None:
        self.argv = list(argv)
        self.forked = forked
        self.startup_timeout = startup_timeout
        self.ip = ip
        self.connection_file = connection_file
        self.context = context
        # b"" is a valid key: an unsigned connection (a gateway may use one)
        self.session = HostSession(
            key=new_key() if key is None else key, signature_scheme="hmac-sha256"
        )
        self.ports: dict[str, int] = {}
        self.process: KernelProcess | None = None
        self._launch: dict[str, Any] = {}
        self._control: zmq.asyncio.Socket | None = None

    # ------------------------------------------------------------------ connection
    def get_connection_info(self) -> dict[str, Any]:
        """The connection info the kernel was given (key as text)."""
        info: dict[str, Any] = {f"{name}_port": port for name, port in self.ports.items()}
        info.update(
            ip=self.ip,
            key=self.session.key.decode("ascii"),
            transport="ipc",
            signature_scheme=self.session.signature_scheme,
            kernel_name="",
        )
        return info

    def _write_connection_file(self) -> None:
        """Number the sockets (once: a restart keeps them) and write the file, owner-only."""
        if not self.ports:
            number = 1
            for name in CHANNELS:
                while os.path.exists(f"{self.ip}-{number}"):
                    number += 1
                self.ports[name] = number
                number += 1
        text = json.dumps(self.get_connection_info())
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW  # never through a link
        fd = os.open(self.connection_file, flags, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)

    def client(self, context: zmq.asyncio.Context | None = None) -> KernelClient:
        """A client for this kernel (its channels not yet started); shares the session."""
        return KernelClient(self.get_connection_info(), self.session, context or self.context)

    # ------------------------------------------------------------------ process
    @property
    def pid(self) -> int | None:
        """The launched process's pid (the jail supervisor's, for a jailed kernel)."""
        return self.process.pid if self.process is not None else None

    async def start_kernel(
        self,
        *,
        env: dict[str, str],
        stdout: int | IO[Any] | None = None,
        stderr: int | IO[Any] | None = None,
    ) -> None:
        """Write the connection file and launch the process (kept for restarts)."""
        self._launch = {"env": env, "stdout": stdout, "stderr": stderr}
        await self._start()

    async def _start(self) -> None:
        self._write_connection_file()
        cmd = [part.replace("{connection_file}", self.connection_file) for part in self.argv]
        env = self._launch["env"]
        if self.forked:
            self.process = await launch_forked(cmd, env, self.startup_timeout)
            return
        popen = subprocess.Popen(
            cmd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._launch["stdout"],
            stderr=self._launch["stderr"],
            start_new_session=True,  # a group of its own: a kill reaches what it started
            close_fds=True,
            cwd=os.path.dirname(self.connection_file) or None,
        )
        self.process = ExecProcess(popen)

    async def is_alive(self) -> bool:
        """Whether the process runs."""
        return self.process is not None and self.process.poll() is None

    async def _wait(self) -> bool:
        """Wait for the process to end, checking after 1, 2, 4 ... ms (at most each 0.1 s).

        Gives up after :data:`EXIT_WAIT_S` (a process stuck in the OS, say): whether it ended.
        """
        delay, deadline = FIRST_EXIT_CHECK_S, time.monotonic() + EXIT_WAIT_S
        while await self.is_alive():
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(delay)
            delay = min(delay * 2, LAST_EXIT_CHECK_S)
        return True

    async def _stop_process(self) -> None:
        process = self.process
        if process is None:
            return
        process.kill()
        await self._wait()
        process.close()
        self.process = None

    async def interrupt_kernel(self) -> None:
        """Send ``interrupt_request`` on the control socket (connected on first use)."""
        if self._control is None:
            self._control = self.client().connect(zmq.DEALER, "control")
        self.session.send(self._control, self.session.msg("interrupt_request", {}))

    async def restart_kernel(self, now: bool = True) -> None:
        """Kill the process and launch it again with the same connection info."""
        del now  # a kernel is always killed: a jailed one gets no grace period
        await self._stop_process()
        self._close_control()
        await self._start()

    async def shutdown_kernel(self, now: bool = True) -> None:
        """Kill the process and release the control socket (the session removes the files)."""
        del now
        await self._stop_process()
        self._close_control()

    def release(self) -> None:
        """Close the control socket and the process handle, killing nothing (idempotent).

        For a kernel that was never shut down (its session was garbage-collected): the
        kill itself goes through the session's finalizer.
        """
        self._close_control()
        if self.process is not None:
            self.process.close()

    def _close_control(self) -> None:
        if self._control is not None:
            self._control.close(linger=0)
            self._control = None
