"""Kernel template: an idle, preloaded interpreter that forks jailed kernels on request.

Run by path (``python _template.py``) by the host's :mod:`._forkserver`, with the jailed
kernels' own scrubbed environment plus ``CODEVISION_TEMPLATE`` (``{"parent_pid": int,
"control_fd": int, "shell": "lean" | "ipython"}``); it imports nothing from the package. It
imports what every kernel of its shell needs (numpy, PIL, cv2, matplotlib, the lean kernel,
the kernel-side runtime; ipykernel and IPython only for ``"ipython"``: one template per
shell), freezes the heap for the garbage collector, and then only waits on its control socket, so
every kernel forked from it shares those pages copy-on-write instead of importing them
again.

What it holds: no secret (it never reads a request; the forked child does), no thread, no
ZeroMQ context, and no descriptor but stdio, its control socket (one end of a socketpair:
no path, no name, nothing a kernel could reach), the pidfds of its children and of itself,
its own PID namespace, the host folders of the inits it forked and its end of the spare's
socketpair (below). It runs in
its own mount namespace with an empty ``/run``, so nothing it imports writes to the host's.
Modules that act on the shell that imports them (pyplot and matplotlib's inline backend)
are not preloaded: each kernel imports those itself.

Each request is one byte, a number and two descriptors: a memfd holding the supervisor
configuration of one kernel and the path of its connection file, and the kernel's host
folder (where the template records the exit of a jail's init it forked, below). The child
that serves it is forked ahead (the *spare*, :class:`Spare`: right after each reply, so a
fork of this big address space, about 3 ms, is off the next request's path) and given the
memfd; without a spare the template forks one on the spot. The child closes every inherited
descriptor first and reads the request. From a root template (:class:`PidNamespaces`) the
child is PID 1 of a new PID namespace and becomes the jail's init itself
(``_supervisor.become_init``); otherwise it is exactly the namespaces backend's supervisor
(``_supervisor.supervise``), which forks the init. The init joins the kernel's cgroups,
builds the jail (per-kernel uid, user/mount/net/IPC/UTS/cgroup namespaces, new root, no
capability left, no_new_privs) and forks the kernel, which applies the launcher's layers
(``_launch.main``: Landlock, seccomp, rlimits, ``layers.json``) and starts the kernel (lean,
or ipykernel) in process. The template answers with the request's number, the child's pid, a
pidfd of it and whether it is the init (or, where the fork failed, its errno); when an init
it forked exits, it writes the wait status into ``jail.exit`` of the kernel's folder, as a
supervisor does for its init.

Both the template and each child die with their parent (``PR_SET_PDEATHSIG``), so a dead
host or a dead template leaves no kernel behind; the host starts a new template on the
next request.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import importlib.util
import json
import os
import resource
import select
import signal
import socket
import sys
import time

import _jailsys as sysc
import _launch
import _lean_kernel  # noqa: F401 - preloaded: the default kernel every child runs
import _supervisor
from _template_wire import REPLY, REQUEST, REQUEST_TAG

HERE = os.path.dirname(os.path.abspath(__file__))
PRELOAD = (
    "math",
    "numpy",
    "numpy.random",
    "PIL.Image",
    "PIL.ImageDraw",
    "PIL.ImageEnhance",
    "PIL.ImageFilter",
    "PIL.ImageFont",
    "PIL.ImageOps",
    "cv2",
    "matplotlib",
    "matplotlib.font_manager",  # its font cache, built once here instead of in every kernel
    "_lean_figures",  # the lean kernel's matplotlib backend (Agg; it acts on no shell)
    "zmq",
    "encodings.idna",
    "faulthandler",
    "ast",
    "mmap",
    "shutil",
    "sqlite3",
)
"""What every kernel imports (the lean kernel itself is imported above)."""
IPYTHON_PRELOAD = (
    "ipykernel.kernelapp",
    "ipykernel.ipkernel",
    "ipykernel.zmqshell",
    "ipykernel.iostream",
    "ipykernel.heartbeat",
    "ipykernel.comm",
    "ipykernel.debugger",
    "IPython.core.interactiveshell",
    "IPython.core.history",
    "IPython.core.completer",
    "IPython.display",
    "jupyter_client.session",
    "zmq.eventloop.zmqstream",
    "tornado.ioloop",
    "tornado.gen",
    "tornado.locks",
    "tornado.queues",
)
"""What ipykernel kernels import besides: only the template for ``shell="ipython"`` has it.

It is a third of the lean template's memory (26 of 72 MiB of heap), and every fork copies
the page tables of all of it.
"""
RUNTIME_MODULE = "codevision_kernel_runtime"
MAX_FD = 1 << 20
MAX_LOST_SPARES = 3
"""Spares that may die unused before the template stops forking them ahead."""


def _private_run() -> None:
    """Give the template its own, empty ``/run`` (a tmpfs in a private mount namespace).

    Its environment is a jailed kernel's (``HOME`` below ``/run/cv``), so a module that
    writes below ``HOME`` while it is imported here writes into this tmpfs, never onto the
    host. Every kernel builds its own root anyway; the supervisors forked from here still
    reach the host paths they need (cgroups, the kernel folder), which lie elsewhere.
    """
    if os.getuid() != 0:
        return  # without root the template cannot write below /run at all
    sysc.unshare(sysc.CLONE_NEWNS)
    sysc.mount(None, "/", None, sysc.MS_REC | sysc.MS_PRIVATE)
    options = "size=1m,mode=0755"
    sysc.mount("tmpfs", "/run", "tmpfs", sysc.MS_NOSUID | sysc.MS_NODEV | sysc.MS_NOEXEC, options)


def _preload(shell: str) -> None:
    for name in (*PRELOAD, *(IPYTHON_PRELOAD if shell == "ipython" else ())):
        try:
            __import__(name)
        except Exception:  # a kernel without it imports it (or fails) itself
            continue
    # The kernel-side runtime, under the name the session preamble looks for first.
    spec = importlib.util.spec_from_file_location(RUNTIME_MODULE, os.path.join(HERE, "_runtime.py"))
    if spec is not None and spec.loader is not None:
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except Exception:
            pass
        else:
            sys.modules[RUNTIME_MODULE] = module
    image = sys.modules.get("PIL.Image")
    if image is not None:
        image.init()  # every kernel would import the format plugins on its first image


def _child(
    control: socket.socket, request_fd: int, template_pid: int, template_fd: int | None
) -> None:
    """A child forked for a request: drop what it inherited, then serve it (see ``Spare``)."""
    control.detach()  # its number is closed below; no object may close a reused number later
    sysc.prctl(sysc.PR_SET_PDEATHSIG, signal.SIGKILL)
    if template_fd is not None and select.select([template_fd], [], [], 0)[0]:
        os._exit(1)  # the template died before this child asked to die with it
    _supervise_request(request_fd, template_pid, template_fd)


def _supervise_request(request_fd: int, template_pid: int, template_fd: int | None = None) -> None:
    """Read the request from ``request_fd`` and be this kernel's jail supervisor.

    With ``template_fd`` (a pidfd of the template), this process is PID 1 of a PID
    namespace of its own, and becomes the jail's init instead (``become_init``).
    """
    _keep_only(request_fd, template_fd)  # as 3 and 4: not the control socket, other pidfds
    raw, offset = b"", 0
    while chunk := os.pread(3, 1 << 16, offset):
        raw, offset = raw + chunk, offset + len(chunk)
    os.close(3)
    request = json.loads(raw)
    config = request["config"]
    if template_fd is not None:
        _supervisor.become_init(config, request["connection_file"], _start_kernel, 4)
        os._exit(_supervisor.EXIT_SETUP_FAILED)  # become_init never returns
    sysc.set_name("cv-supervisor")
    status, _ = _supervisor.supervise(
        config, request["connection_file"], parent_pid=template_pid, launch=_start_kernel
    )
    _supervisor._publish(os.path.join(config["host_dir"], "jail.exit"), str(status))
    _supervisor._mirror(status, True)


def _keep_only(*fds: int | None) -> None:
    """Renumber ``fds`` (those not None) as 3, 4, ... and close every other descriptor >= 3."""
    wanted = [fd for fd in fds if fd is not None]
    floor = 3 + len(wanted)  # copies above the numbers they move to: none overwrites another
    kept = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, floor) for fd in wanted]
    for number, fd in enumerate(kept, start=3):
        os.dup2(fd, number, inheritable=False)
    os.closerange(3 + len(kept), MAX_FD)


class Spare:
    """A child forked ahead of the next request: the fork is off that request's path.

    It holds nothing but its end of a socketpair (no path, no name) on which the template
    hands it the next request's memfd; until then it only waits. The template's end closing
    (the template gone, or the spare retired) ends it, and so does the template's death
    (``PR_SET_PDEATHSIG``).

    With ``namespaces`` (a root template's :class:`PidNamespaces`) the spare is forked as
    PID 1 of a new PID namespace and becomes the jail's init itself, so a kernel costs two
    forks of this address space (init, kernel) instead of three (supervisor, init, kernel).
    """

    def __init__(
        self,
        control: socket.socket,
        template_pid: int,
        namespaces: PidNamespaces | None = None,
    ) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            pid = namespaces.fork() if namespaces is not None else os.fork()
        except OSError:
            ours.close()
            theirs.close()
            raise
        if pid == 0:
            try:
                control.detach()
                ours.detach()  # closed below with the rest: no object may close it later
                sysc.set_name("cv-spare")
                template_fd = namespaces.template_fd if namespaces is not None else None
                _wait_as_spare(theirs.detach(), template_pid, template_fd)
            finally:
                os._exit(_supervisor.EXIT_SETUP_FAILED)
        theirs.close()
        self.pid = pid
        self.channel = ours
        try:
            self.pidfd = _pidfd_or_kill(pid)
        except OSError:
            ours.close()
            raise
        self.is_init = namespaces is not None

    def hand(self, request_fd: int) -> bool:
        """Give the spare a request (it becomes that kernel's supervisor); False if it is gone."""
        try:
            socket.send_fds(self.channel, [b"F"], [request_fd])
            return True
        except OSError:
            return False
        finally:
            self.channel.close()

    def retire(self) -> None:
        """Close the channel (the spare exits) and reap it."""
        self.channel.close()
        os.waitpid(self.pid, 0)
        os.close(self.pidfd)


def _pidfd_or_kill(pid: int) -> int:
    """A pidfd of ``pid``, a child just forked; if none can be had, the child is ended.

    The child is not reaped yet, so its pid is still its own until the ``waitpid`` here.
    """
    try:
        return os.pidfd_open(pid)
    except OSError:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise


def _wait_as_spare(channel_fd: int, template_pid: int, template_fd: int | None) -> None:
    """The spare's side: drop what it inherited, wait for a request, then supervise it.

    A spare in a PID namespace of its own sees no parent (``getppid()`` is 0 there); it
    holds ``template_fd``, a pidfd of the template, instead.
    """
    sysc.prctl(sysc.PR_SET_PDEATHSIG, signal.SIGKILL)
    if template_fd is None and os.getppid() != template_pid:
        os._exit(1)
    if template_fd is not None and select.select([template_fd], [], [], 0)[0]:
        os._exit(1)  # the template died before this spare asked to die with it
    _keep_only(channel_fd, template_fd)  # as 3 and 4: not the control socket, other pidfds
    template_fd = None if template_fd is None else 4
    channel = socket.socket(fileno=3)
    try:
        message, fds, _, _ = socket.recv_fds(channel, 16, 1)
    except OSError:
        os._exit(0)
    channel.detach()
    os.close(3)
    if message != b"F" or len(fds) != 1:
        os._exit(0)  # the template retired this spare
    _supervise_request(fds[0], template_pid, template_fd)


class PidNamespaces:
    """Forks of a root template into new PID namespaces (each child its namespace's PID 1).

    ``unshare(CLONE_NEWPID)`` changes the PID namespace of the caller's *next* children
    only; right after the fork the template joins its own again (``setns``) and checks that
    it did, so nothing else it forks ever lands in a kernel's namespace. ``template_fd`` is
    a pidfd of the template, which its spares inherit (see :func:`_wait_as_spare`).
    """

    def __init__(self) -> None:
        self.own = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
        self.template_fd = os.pidfd_open(os.getpid())

    @classmethod
    def available(cls) -> PidNamespaces | None:
        """One for a root template where new PID namespaces can be made; else None."""
        if os.getuid() != 0:
            return None
        try:
            namespaces = cls()
            sysc.unshare(sysc.CLONE_NEWPID)  # a container's seccomp profile may deny it
        except OSError:
            return None
        namespaces._restore()
        return namespaces

    def fork(self) -> int:
        """``os.fork()``, the child as PID 1 of a new PID namespace."""
        sysc.unshare(sysc.CLONE_NEWPID)
        pid = -1
        try:
            pid = os.fork()
        finally:
            if pid != 0:  # the template, whether the fork worked or not
                self._restore()
        return pid

    def _restore(self) -> None:
        """Join the template's own PID namespace again for its next children, or die."""
        try:
            sysc.setns(self.own, sysc.CLONE_NEWPID)
            restored = os.readlink("/proc/self/ns/pid_for_children") == os.readlink(
                "/proc/self/ns/pid"
            )
        except OSError:
            restored = False
        if not restored:  # a later fork would land in a kernel's namespace: stop instead
            os._exit(1)


def _start_kernel(config: dict) -> None:
    """In the jail's kernel process, with every layer but the launcher's in force: start it."""
    os.closerange(3, MAX_FD)  # what execve would close: everything here is close-on-exec
    if _HOST_OPEN_FILES is not None:  # the template's raised limit is not the kernel's
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, _HOST_OPEN_FILES)
    os.environ.clear()
    os.environ.update(config["kernel_env"])
    sys.argv = list(config["kernel_argv"][1:])
    import tempfile

    tempfile.tempdir = None
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed()  # not the template's state: each kernel draws its own
    gc.enable()
    try:
        _launch.main(sys.argv[1:])
    except SystemExit as exc:
        code = exc.code
        os._exit(code if isinstance(code, int) else (0 if code is None else 1))
    os._exit(0)


_HOST_OPEN_FILES: tuple[int, int] | None = None
"""The limit on open files the template started with, before it raised its own."""


class _Server:
    """The template's loop: fork (or hand to the spare) per request, reap what exits."""

    def __init__(self, control: socket.socket) -> None:
        self.control = control
        self.template_pid = os.getpid()
        self.children: dict[int, int] = {}  # pidfd -> pid, reaped once its pidfd fires
        self.poller = select.poll()
        self.poller.register(control.fileno(), select.POLLIN)
        self.spare: Spare | None = None
        self.lost_spares = 0
        self.namespaces = PidNamespaces.available()
        self.exit_dirs: dict[int, int] = {}  # pidfd -> host folder of an init forked here

    def serve(self) -> None:
        """Until the host goes away (its end of the control socket closes)."""
        try:
            while True:
                if self.spare is None and self.lost_spares < MAX_LOST_SPARES:
                    self._fork_spare()  # after each reply
                for fd, _ in self.poller.poll():
                    if fd != self.control.fileno():
                        self._reap(fd)
                    elif not self._answer():
                        return
        finally:
            if self.spare is not None:
                self.spare.channel.close()  # it exits; the template is on its way out too

    def _fork_spare(self) -> None:
        try:
            self.spare = Spare(self.control, self.template_pid, self.namespaces)
        except OSError:  # out of processes, say: requests fork on the spot meanwhile
            self.lost_spares += 1
            return
        self.poller.register(self.spare.pidfd, select.POLLIN)

    def _reap(self, pidfd: int) -> None:
        self.poller.unregister(pidfd)
        if self.spare is not None and pidfd == self.spare.pidfd:  # it died unused
            self.spare.retire()
            self.spare = None
            self.lost_spares += 1
            return
        pid = self.children.pop(pidfd)
        _, status = os.waitpid(pid, 0)
        os.close(pidfd)
        exit_dir = self.exit_dirs.pop(pidfd, None)
        if exit_dir is not None:  # a jail's init: no supervisor recorded how it ended
            with contextlib.suppress(OSError):
                _supervisor.publish_at(exit_dir, "jail.exit", f"{status} {pid}")
            os.close(exit_dir)

    def _answer(self) -> bool:
        """Serve one request; False once the host is gone.

        A fork that fails (out of processes or memory, say) fails that request alone: the
        reply carries the error, and the template goes on serving.
        """
        try:
            message, fds, _, _ = socket.recv_fds(self.control, 16, 2)
        except OSError:
            return False
        if not message:
            return False
        if len(message) != REQUEST.size or message[:1] != REQUEST_TAG or len(fds) != 2:
            for extra in fds:
                os.close(extra)
            return True
        _, number = REQUEST.unpack(message)
        request_fd, host_dir_fd = fds
        started = time.perf_counter()
        try:
            pid, pidfd, is_init = self._supervisor_for(request_fd)
        except OSError as exc:
            os.close(request_fd)
            os.close(host_dir_fd)
            return self._reply(REPLY.pack(-1, 0.0, 0, number, exc.errno or 0), [])
        os.close(request_fd)
        self.children[pidfd] = pid
        if is_init:
            self.exit_dirs[pidfd] = host_dir_fd
        else:
            os.close(host_dir_fd)
        reply = REPLY.pack(pid, time.perf_counter() - started, int(is_init), number, 0)
        return self._reply(reply, [pidfd])

    def _reply(self, reply: bytes, fds: list[int]) -> bool:
        try:
            socket.send_fds(self.control, [reply], fds)
        except OSError:
            return False
        return True

    def _supervisor_for(self, request_fd: int) -> tuple[int, int, bool]:
        """The pid and pidfd of the child that takes this request, and whether it is an init.

        The child is the spare if there is one. An init (from a root template) builds the
        jail itself; otherwise the child is the jail's supervisor.
        """
        spare, self.spare = self.spare, None
        if spare is not None:
            if spare.hand(request_fd):
                return spare.pid, spare.pidfd, spare.is_init
            self.children[spare.pidfd] = spare.pid  # it died meanwhile: reaped as a child
        namespaces = self.namespaces
        pid = namespaces.fork() if namespaces is not None else os.fork()
        if pid == 0:
            try:
                template_fd = namespaces.template_fd if namespaces is not None else None
                _child(self.control, request_fd, self.template_pid, template_fd)
            finally:
                os._exit(_supervisor.EXIT_SETUP_FAILED)
        pidfd = _pidfd_or_kill(pid)
        self.poller.register(pidfd, select.POLLIN)
        return pid, pidfd, namespaces is not None


def _open_files_for_many_kernels() -> None:
    """Raise the soft limit on open files to the hard one.

    The template holds two descriptors per live kernel (a pidfd, and an init's host
    folder), so the usual soft limit of 1024 would cap a host at about 500 kernels. Every
    kernel sets its own limit (``KernelLimits.open_files``) before any user code runs, and
    one with no limit of its own gets the host's soft limit back (:func:`_start_kernel`).
    """
    global _HOST_OPEN_FILES
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    _HOST_OPEN_FILES = (soft, hard)
    if soft != hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main() -> None:
    """Preload, freeze, then fork kernels until the host goes away."""
    settings = json.loads(os.environ.pop("CODEVISION_TEMPLATE"))
    sysc.prctl(sysc.PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != settings["parent_pid"]:
        os._exit(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # no KeyboardInterrupt in mid-fork, ever
    control = socket.socket(fileno=int(settings["control_fd"]))
    sysc.set_name("cv-template")
    _private_run()
    _open_files_for_many_kernels()
    gc.disable()
    _preload(settings.get("shell", "lean"))
    if sys.path and os.path.abspath(sys.path[0]) == HERE:
        del sys.path[0]  # the kernels must not see this folder first on their path
    gc.collect()
    gc.freeze()  # the preloaded heap stays shared: no collection writes to its pages
    _Server(control).serve()


if __name__ == "__main__":
    main()
