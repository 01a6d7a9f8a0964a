"""Host side of the kernel template: fresh jailed kernels forked from a preloaded process.

A cold kernel is a new interpreter that imports numpy, PIL, cv2 and its kernel (about half a
second, and ~40 MiB of private pages each). The template (``_template.py``, one per host
process, started on first use) has imported them once; each kernel is forked from it, in
its own jail, and shares those pages copy-on-write. The template forks each kernel's first
process ahead of its request (a spare, waiting), so a start does not wait on that fork: the
jail's supervisor, or from a root template the jail's init itself.

* :class:`Template`: starts the template process, sends it requests over one end of a
  socketpair, restarts it when it has died.
* :class:`ForkedProcess`: what the host holds of one forked kernel's supervisor (or init): a
  pidfd (signals never reach a reused pid) and its exit status.
* :func:`launch_forked`: what the kernel manager (``_manager.py``) calls instead of
  ``Popen`` of the supervisor's command.

The template never sees a kernel's secrets: a request is a memfd the forked child reads.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ._template_wire import REPLY, REQUEST, REQUEST_TAG
from .jail import JAIL_DIR, KERNEL_LIB
from .sandbox import scrub_environment

__all__ = ["ForkedProcess", "Template", "TemplateGone", "launch_forked", "template"]

TEMPLATE = KERNEL_LIB / "_template.py"
EXIT_RECORD_WAIT_S = 2.0
"""How long a dead jail init's exit may take to be recorded by its template (its parent)."""

_lock = threading.Lock()
_templates: dict[tuple[str, str], Template] = {}


def template_env() -> dict[str, str]:
    """The template's environment: exactly a jailed kernel's, before its per-kernel extras."""
    env = scrub_environment(workdir=f"{JAIL_DIR}/work")
    env["TMPDIR"] = "/tmp"
    return env


class TemplateGone(RuntimeError):
    """The template process is not running (it is started again on the next request)."""


class ForkedProcess:
    """A forked kernel's supervisor, seen from the host (``subprocess.Popen``-like).

    From a root template this is the jail's init itself (there is no supervisor process,
    see ``_template.Spare``); its parent, the template, records its exit, and
    ``recorder_alive`` says whether that template still runs.
    """

    def __init__(
        self,
        pid: int,
        pidfd: int,
        host_dir: Path,
        fork_s: float,
        recorder_alive: Callable[[], bool] | None = None,
    ) -> None:
        self.pid = pid
        self.pidfd = pidfd
        self.host_dir = host_dir
        self.fork_s = fork_s
        self.recorder_alive = recorder_alive
        self.returncode: int | None = None
        self._record_deadline: float | None = None

    def poll(self) -> int | None:
        """The exit code (negative: killed by that signal), ``None`` while it runs.

        An init's exit counts once its template has recorded it (within a few ms of its
        end), or once that template is gone or :data:`EXIT_RECORD_WAIT_S` has passed;
        until then this says it runs, so no caller ever waits here.
        """
        if self.returncode is None and self.pidfd >= 0:
            poller = select.poll()  # not select(): a busy host has descriptors past 1024
            poller.register(self.pidfd, select.POLLIN)
            if poller.poll(0) and self._recorded():
                self.returncode = self._exit_code()
        elif self.returncode is None:
            self.returncode = -signal.SIGKILL
        return self.returncode

    def _recorded(self) -> bool:
        """Whether the exit is recorded, or will not be (for an ended process).

        A record of another init (a previous jail in the same folder, written after the
        folder was cleared for this one) does not count.
        """
        if self.recorder_alive is None or self._record_pid() == self.pid:
            return True
        if not self.recorder_alive():
            return True
        if self._record_deadline is None:
            self._record_deadline = time.monotonic() + EXIT_RECORD_WAIT_S
        return time.monotonic() > self._record_deadline

    def _record_pid(self) -> int | None:
        """The pid a template's ``jail.exit`` names (None: no such record yet)."""
        with contextlib.suppress(OSError, ValueError, IndexError):
            return int((self.host_dir / "jail.exit").read_text().split()[1])
        return None

    def _exit_code(self) -> int:
        """The kernel's exit, as its supervisor recorded it (SIGKILL if it could not).

        A template writes the init's pid after its status: a record of another process (a
        previous jail in the same folder) does not count.
        """
        with contextlib.suppress(OSError, ValueError):
            fields = (self.host_dir / "jail.exit").read_text().split()  # the jail init's
            if len(fields) > 1 and int(fields[1]) != self.pid:
                return -signal.SIGKILL
            code = os.waitstatus_to_exitcode(int(fields[0]))
            if 128 < code < 128 + signal.NSIG:
                return 128 - code  # 128 + n from the jail's init: the kernel got signal n
            return code
        return -signal.SIGKILL

    def send_signal(self, signum: int) -> None:
        """Signal the supervisor through its pidfd (nothing happens once it is gone).

        A jail's init takes from the host only SIGKILL and SIGSTOP (it installs no
        handler), so ``SIGTERM`` and ``SIGHUP`` are sent to it as SIGKILL, as a supervisor
        forwards them; other signals are dropped, as a supervisor drops ``SIGINT``.
        """
        if self.recorder_alive is not None and signum in (signal.SIGTERM, signal.SIGHUP):
            signum = signal.SIGKILL
        if self.pidfd >= 0:
            with contextlib.suppress(ProcessLookupError, OSError):
                signal.pidfd_send_signal(self.pidfd, signum)

    def kill(self) -> None:
        """SIGKILL the supervisor (the jail dies with it)."""
        self.send_signal(signal.SIGKILL)

    def close(self) -> None:
        """Release the pidfd (idempotent)."""
        if self.pidfd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.pidfd)
            self.pidfd = -1


class Template:
    """One template process (see the module docstring); thread-safe."""

    def __init__(
        self, python: str | None = None, *, shell: str = "lean", quiet: bool = True
    ) -> None:
        self.python = python or sys.executable
        self.shell = shell
        self.quiet = quiet
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self._requests = 0  # numbers each request, so a late reply is told apart
        self._socket: socket.socket | None = None
        self._lock = threading.Lock()

    @property
    def pid(self) -> int | None:
        """The template's pid while it runs."""
        return self.process.pid if self.alive else None

    @property
    def alive(self) -> bool:
        """Whether the template process runs."""
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        """Start the template process unless it runs (call from a long-lived thread).

        It dies with the thread that starts it (``PR_SET_PDEATHSIG``): the kernel I/O
        thread, which lives as long as the host process.
        """
        if self.alive:
            return  # without the lock: a fork in flight holds it, and this is the I/O loop
        with self._lock:
            if not self.alive:
                self._start()

    def _start(self) -> None:
        self._stop()
        host, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = template_env()
        env["CODEVISION_TEMPLATE"] = json.dumps(
            {"parent_pid": os.getpid(), "control_fd": child.fileno(), "shell": self.shell}
        )
        output = subprocess.DEVNULL if self.quiet else None
        try:
            self.process = subprocess.Popen(
                [self.python, str(TEMPLATE)],
                env=env,
                pass_fds=(child.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=output,
                start_new_session=True,
                cwd="/",
            )
        finally:
            child.close()
        self._socket = host
        self.starts += 1

    def fork(self, request: dict[str, Any], host_dir: Path, timeout: float) -> ForkedProcess:
        """Fork one kernel for ``request``.

        Raises:
            TemplateGone: the template is not running (or died while asked); start it.
        """
        payload = json.dumps(request).encode()
        with self._lock:
            if not self.alive or self._socket is None:
                raise TemplateGone("the kernel template is not running")
            try:
                return self._exchange(self._socket, payload, host_dir, timeout)
            except (OSError, EOFError) as exc:
                if isinstance(exc, (BrokenPipeError, ConnectionResetError, EOFError)):
                    self._wait_gone()  # its end closed: it is on its way out
                if self.alive:
                    raise
                raise TemplateGone(f"the kernel template died: {exc}") from exc

    def _wait_gone(self, timeout: float = 2.0) -> None:
        """Wait a little for a template whose end of the socket closed to be gone."""
        if self.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=timeout)

    def _exchange(
        self, control: socket.socket, payload: bytes, host_dir: Path, timeout: float
    ) -> ForkedProcess:
        """Send one request and wait for its reply.

        Each request has a number the reply repeats. A reply to an earlier request (one
        whose wait timed out: the template answered late) is not this one's: the child it
        names has no host any more, so it is killed, and the wait goes on.
        """
        memfd = os.memfd_create("codevision-kernel-request", os.MFD_CLOEXEC)
        folder = os.open(host_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self._requests += 1
        number = self._requests
        try:
            os.write(memfd, payload)
            control.settimeout(timeout)
            message = REQUEST.pack(REQUEST_TAG, number)
            socket.send_fds(control, [message], [memfd, folder])  # where an init's exit goes
            control.settimeout(0.2)
            deadline = time.monotonic() + timeout
            while True:
                try:
                    reply, fds, _, _ = socket.recv_fds(control, REPLY.size, 1)
                except TimeoutError:
                    if not self.alive or time.monotonic() > deadline:
                        raise
                    continue
                if len(reply) != REPLY.size or len(fds) > 1:
                    _close_all(fds)
                    raise EOFError("the kernel template did not answer")
                pid, fork_s, is_init, answered, errno = REPLY.unpack(reply)
                if answered == number:
                    break
                _end_orphan(fds)  # the late reply to a request that timed out
        finally:
            os.close(memfd)
            os.close(folder)
        if errno or len(fds) != 1:
            _close_all(fds)
            raise OSError(
                errno,
                f"the kernel template could not fork a kernel: "
                f"{os.strerror(errno) if errno else 'no process'}",
            )
        process = self.process  # the template that forked it: one started later never records it
        recorder = (lambda: process is not None and process.poll() is None) if is_init else None
        return ForkedProcess(pid, fds[0], host_dir, fork_s, recorder)

    def _stop(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        if self.process is not None:
            with contextlib.suppress(OSError):
                self.process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=5)
            self.process = None

    def stop(self) -> None:
        """Stop the template (its kernels die with it)."""
        with self._lock:
            self._stop()


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        os.close(fd)


def _end_orphan(fds: list[int]) -> None:
    """Kill the child a stale reply names (through its pidfd) and close that pidfd."""
    for fd in fds:
        with contextlib.suppress(OSError):
            signal.pidfd_send_signal(fd, signal.SIGKILL)
        os.close(fd)


def template(python: str | None = None, shell: str = "lean") -> Template:
    """This host process's template for ``python`` and ``shell`` (made on first use, not started).

    There is one per kernel shell: the lean kernel's preloads no IPython, so it is a third
    smaller and its forks are cheaper.
    """
    key = (python or sys.executable, shell)
    with _lock:
        if key not in _templates:
            quiet = os.environ.get("CODEVISION_KERNEL_DEBUG") != "1"
            _templates[key] = Template(key[0], shell=shell, quiet=quiet)
        return _templates[key]


@atexit.register
def _stop_templates() -> None:
    for each in list(_templates.values()):
        each.stop()


async def launch_forked(cmd: list[str], env: dict[str, str], timeout: float) -> ForkedProcess:
    """Ask the template for a kernel; the answer holds its supervisor's pidfd.

    ``cmd`` is the jail supervisor's command (its last argument the connection file) and
    ``env`` its configuration, exactly as for a supervisor started by ``Popen``. A template
    that died is started again, once.
    """
    config = json.loads(env["CODEVISION_JAIL"])
    request = {"config": config, "connection_file": cmd[-1]}
    shell = json.loads(config["kernel_env"]["CODEVISION_KERNEL_CONFIG"]).get("shell")
    chosen = template(shell=shell or "lean")
    for attempt in (1, 2):
        chosen.start()  # on this (the kernel I/O) thread, which outlives every kernel
        try:
            return await asyncio.to_thread(chosen.fork, request, Path(config["host_dir"]), timeout)
        except TemplateGone:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")  # pragma: no cover
