"""A stateful, sandboxed Jupyter kernel for model-written image code.

:class:`KernelSession` starts a Jupyter kernel (the package's lean kernel, or ipykernel with
``shell="ipython"``) in a private working directory, cut off from the network where the OS
allows it, under resource limits and with a scrubbed environment. The kernel's process is
managed by :class:`~._manager.LocalKernel` and reached through :class:`~._client.KernelClient`
(the Jupyter protocol, without jupyter_client's manager and client classes). Each
operation is written once as a coroutine running on a private I/O loop (see ``_loop.py``);
the sync methods and the ``a``-prefixed async methods are thin facades over it.

Example:
    >>> from PIL import Image
    >>> with KernelSession() as session:
    ...     session.put_image(0, Image.new("RGB", (64, 32), "white"))
    ...     out = session.execute("result = image.rotate(90, expand=True)",
    ...                           image=0, collect=("result",))
    ...     out.result_images[0].size
    (32, 64)
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import subprocess
import sys
import time
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import zmq
import zmq.asyncio
from PIL import Image

from ._cell import POLL_S, quiet_metadata, run_cell
from ._client import MAX_MESSAGE_BYTES, KernelClient
from ._host import KernelHost, cleanup_state
from ._loop import get_loop, on_loop_thread, run_async, run_sync
from ._manager import LocalKernel
from ._pixels import pixel_array, pixel_layout
from .jail import JailBackend, JailPlan, backend_support, plan_jail
from .limits import KernelLimits
from .result import ExecutionError, ExecutionResult
from .sandbox import IsolationPolicy

RUNTIME_PATH = Path(__file__).with_name("_runtime.py")
_ids = itertools.count(1)
StartMode = Literal["auto", "fork", "exec"]
KernelShell = Literal["lean", "ipython"]
IOPUB_PROBE_S = 0.02
"""How long a starting kernel's IOPub may take to show a probe's status before asking again
(doubled for each probe after, up to ``IOPUB_PROBE_MAX_S``)."""
IOPUB_PROBE_MAX_S = 0.25

WARM_KEY = "__cv_warm__"
"""The image key a warm-up uses (and removes)."""


class KernelStartError(RuntimeError):
    """The kernel process could not be started or did not become ready."""


async def _off_loop(cleanup: Callable[[], None]) -> None:
    """Run a blocking cleanup off the kernel I/O loop that every episode shares.

    Cgroup removal retries and folder removal must not stall other episodes' kernels; the
    cleanup runs in place when no worker thread can be had (interpreter shutdown).
    """
    try:
        done = asyncio.get_running_loop().run_in_executor(None, cleanup)
    except RuntimeError:  # the executor is shut down: only scheduling can fail here
        cleanup()
        return
    await done


def _kill_supervisor(state: dict[str, Any]) -> None:
    """SIGKILL the kernel's process (a jailed kernel's supervisor) and what it started.

    Through its pidfd when forked, else as a group kill of this host's own child that
    checks the child is not yet reaped: never a signal to a pid that may have been reused.
    """
    kill = state.get("kill")
    if kill is not None:
        kill()


def _finalize(state: dict[str, Any]) -> None:
    """Last-resort cleanup at garbage collection or interpreter exit.

    Kills the kernel, then releases what the host held of it (sockets on the kernel I/O
    loop, where they live; the process handle and the area's descriptor here), so a
    session dropped without ``close()`` leaves no descriptor behind either.
    """
    _kill_supervisor(state)
    for release in state.pop("releases", []):
        with contextlib.suppress(Exception):
            release()
    cleanup_state(state)


def _on_loop(function: Callable[[], None]) -> Callable[[], None]:
    """``function`` run on the kernel I/O loop (at once when already there)."""

    def call() -> None:
        if on_loop_thread():
            function()
        else:
            get_loop().call_soon_threadsafe(function)

    return call


MAX_QUEUED_MESSAGES = 32
"""Messages queued per channel before further ones are dropped (bounds host memory)."""
_context: zmq.asyncio.Context | None = None


def _client_context() -> zmq.asyncio.Context:
    """One ZeroMQ context for every kernel client, with caps a kernel cannot lift."""
    global _context
    if _context is None:
        _context = zmq.asyncio.Context()
        # per frame (a bigger one drops the connection); the client caps whole messages
        _context.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
        _context.setsockopt(zmq.RCVHWM, MAX_QUEUED_MESSAGES)
    return _context


def _quiet(jailed: bool) -> dict[str, Any]:
    """Jailed kernels write nothing to the host's terminal (``CODEVISION_KERNEL_DEBUG=1``: do)."""
    if not jailed or os.environ.get("CODEVISION_KERNEL_DEBUG") == "1":
        return {}
    return {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}


def _to_array(image: Image.Image | np.ndarray) -> np.ndarray:
    if isinstance(image, np.ndarray):
        return image
    if not isinstance(image, Image.Image):
        raise TypeError(f"expected a PIL image or numpy array, got {type(image).__name__}")
    if image.mode in ("P", "PA", "1", "CMYK", "YCbCr", "LAB", "HSV"):
        image = image.convert("RGBA" if "A" in image.mode else "RGB")
    return np.asarray(image)


class KernelSession:
    """One sandboxed, stateful Python kernel.

    Args:
        limits: Time, memory and output limits (defaults: :class:`KernelLimits`).
        isolation: ``"strict"`` (refuse without the core jail layers), ``"auto"`` (default:
            the best jail available, one warning naming what is missing) or ``"off"`` (a
            plain child process, for trusted code); see :mod:`.jail`.
        jail: ``"auto"`` (with ``start="auto"``: the package's namespace jail, forked from
            the kernel template where that works; else bubblewrap where installed, else the
            namespace jail), ``"bwrap"`` or ``"namespaces"``.
        start: How the kernel process comes to be: ``"fork"`` (forked from this host's
            preloaded kernel template into its own namespace jail: every layer of
            ``jail="namespaces"``, a fraction of the memory and start time), ``"exec"`` (a
            fresh interpreter per kernel) or ``"auto"`` (default: ``"fork"`` where the jail
            is ``"auto"`` or ``"namespaces"``, the namespace jail works here and ``python``
            is this interpreter; else ``"exec"``). Forked kernels share the template's
            imported modules, so ``env`` entries read only at import time (thread counts of
            numpy's BLAS, say) do not apply to them.
        env: Extra environment variables for the kernel (trusted, added after scrubbing).
        python: Interpreter for the kernel (default: this one).
        preamble: Extra code run once after start and after each reset.
        shell: What runs the code: ``"lean"`` (default: the package's own Jupyter kernel,
            plain Python cells without IPython; a forked one starts in milliseconds and
            keeps a few MiB of its own) or ``"ipython"`` (ipykernel: magics, ``!``
            commands and IPython's display system, for ~10x the memory and start time).
    """

    def __init__(
        self,
        *,
        limits: KernelLimits | None = None,
        isolation: IsolationPolicy | str = IsolationPolicy.AUTO,
        jail: JailBackend = "auto",
        start: StartMode = "auto",
        env: dict[str, str] | None = None,
        python: str | None = None,
        preamble: str = "",
        shell: KernelShell = "lean",
    ) -> None:
        if shell not in ("lean", "ipython"):
            raise ValueError(f"shell must be 'lean' or 'ipython', got {shell!r}")
        self.shell = shell
        self.limits = limits or KernelLimits()
        self.policy = IsolationPolicy(isolation)
        self.jail = jail
        if jail not in ("auto", "bwrap", "namespaces"):
            raise ValueError(f"jail must be 'auto', 'bwrap' or 'namespaces', got {jail!r}")
        if start not in ("auto", "fork", "exec"):
            raise ValueError(f"start must be 'auto', 'fork' or 'exec', got {start!r}")
        if start == "fork" and (
            jail == "bwrap"
            or self.policy is IsolationPolicy.OFF
            or (python and os.path.realpath(python) != os.path.realpath(sys.executable))
        ):
            raise ValueError(
                "start='fork' needs the namespace jail (jail='auto' or 'namespaces', isolation "
                "not 'off') and this interpreter (python=None)"
            )
        self.start_mode = start
        self.forked = False
        self.start_phases: dict[str, float] = {}
        self.isolation = "none"
        self.extra_env = dict(env or {})
        self.python = python
        self.user_preamble = preamble
        self.name = f"kernel-{next(_ids)}"
        self.plan: JailPlan | None = None
        self.host: KernelHost | None = None
        self._km: LocalKernel | None = None
        self._kc: KernelClient | None = None
        self._key: bytes | None = None  # the signing key (default: a fresh one per kernel)
        self._lock: asyncio.Lock | None = None
        self._images: dict[str, Image.Image | np.ndarray] = {}
        self._unsent: list[list[str]] = []  # [key, kernel path]: written, not yet loaded
        self._state: dict[str, Any] = {}
        self._finalizer = weakref.finalize(self, _finalize, self._state)
        self._closed = False
        self.restarts = 0
        self.executions = 0
        self.poisoned = False

    # ------------------------------------------------------------------ public sync API
    def start(self) -> KernelSession:
        """Start the kernel (idempotent); returns ``self``."""
        run_sync(self._start())
        return self

    def execute(
        self,
        code: str,
        *,
        timeout: float | None = None,
        image: int | str | None = None,
        collect: Sequence[str] = (),
        collect_first: bool = True,
        register_as: int | str | None = None,
    ) -> ExecutionResult:
        """Run ``code`` in the kernel and return what it produced.

        Args:
            code: Python source.
            timeout: Seconds before the execution is interrupted (default: limits.timeout).
            image: Key of a registered image to bind as ``image``/``img`` and ``draw``
                (an ``ImageDraw`` on it) before the code runs. The binding is the cell's
                own: it shares the registered pixels read-only and PIL copies them on the
                first change, or it is a copy where the cell names a way to write pixels
                behind PIL's back (``load()``, ``.im``, ``readonly``, ``exec``, ...); the
                registered image never changes.
            collect: Variable names whose images are returned (set to ``None`` before the
                code runs when ``image`` is given, so stale values never leak through).
            collect_first: Stop at the first name in ``collect`` that holds an image.
            register_as: Register the first collected image under this key in the kernel.

        Returns:
            An :class:`ExecutionResult`; failures of the code, the time limit or the kernel
            process are reported in it rather than raised.

        Raises:
            TypeError: ``code`` is not a string.
        """
        return run_sync(
            self._execute(code, timeout, image, tuple(collect), collect_first, register_as)
        )

    def put_image(self, key: int | str, image: Image.Image | np.ndarray) -> None:
        """Register an image in the kernel under ``key`` at full resolution.

        The pixels are written into the kernel's folder at once; the kernel loads them with
        its next request (an execute loads them before its cell runs), so handing an image
        over costs no round trip of its own. A load that fails there is reported when the
        image is used.
        """
        run_sync(self._put_image(key, image))

    def drop_image(self, key: int | str) -> None:
        """Forget a registered image."""
        run_sync(self._drop_image(key))

    def reset(self) -> None:
        """Clear user variables and registered images; keep the kernel process."""
        run_sync(self._reset())

    def restart(self) -> None:
        """Restart the kernel process (state is lost, registered images are restored)."""
        run_sync(self._restart())

    def close(self) -> None:
        """Stop the kernel and remove its working directory (idempotent)."""
        if self._closed:
            return
        try:
            run_sync(self._close())
        finally:
            self._finalizer()

    def is_alive(self) -> bool:
        """Whether the kernel process is running."""
        return run_sync(self._is_alive())

    # ----------------------------------------------------------------- public async API
    async def astart(self) -> KernelSession:
        """Async :meth:`start`."""
        await run_async(self._start())
        return self

    async def aexecute(
        self,
        code: str,
        *,
        timeout: float | None = None,
        image: int | str | None = None,
        collect: Sequence[str] = (),
        collect_first: bool = True,
        register_as: int | str | None = None,
    ) -> ExecutionResult:
        """Async :meth:`execute`."""
        return await run_async(
            self._execute(code, timeout, image, tuple(collect), collect_first, register_as)
        )

    async def aput_image(self, key: int | str, image: Image.Image | np.ndarray) -> None:
        """Async :meth:`put_image`."""
        await run_async(self._put_image(key, image))

    async def adrop_image(self, key: int | str) -> None:
        """Async :meth:`drop_image`."""
        await run_async(self._drop_image(key))

    async def areset(self) -> None:
        """Async :meth:`reset`."""
        await run_async(self._reset())

    async def arestart(self) -> None:
        """Async :meth:`restart`."""
        await run_async(self._restart())

    async def aclose(self) -> None:
        """Async :meth:`close`."""
        if self._closed:
            return
        try:
            await run_async(self._close())
        finally:
            self._finalizer()

    async def ais_alive(self) -> bool:
        """Async :meth:`is_alive`."""
        return await run_async(self._is_alive())

    def __enter__(self) -> KernelSession:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> KernelSession:
        return await self.astart()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    @property
    def pid(self) -> int | None:
        """The kernel's process id, while it runs."""
        return self._state.get("pid")

    @property
    def started(self) -> bool:
        """Whether the kernel has been started and not closed."""
        return self._km is not None and not self._closed

    def __repr__(self) -> str:
        status = "closed" if self._closed else ("running" if self._km else "new")
        how = ", forked" if self.forked else ""
        return f"KernelSession({self.name}, {status}{how}, isolation={self.isolation!r})"

    # -------------------------------------------------------------------- internals
    async def _start(self) -> None:
        if self._closed:
            raise RuntimeError(f"{self.name} is closed")
        if self._km is not None:
            return
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._km is None:
                await self._launch()

    def _fork_wanted(self) -> bool:
        """Whether the next launch forks from the kernel template (see ``start``)."""
        if self.start_mode != "auto":
            return self.start_mode == "fork"
        same_python = not self.python or (
            os.path.realpath(self.python) == os.path.realpath(sys.executable)
        )
        return (
            self.jail in ("auto", "namespaces")
            and self.policy is not IsolationPolicy.OFF
            and same_python
            and backend_support("namespaces") is None
        )

    async def _launch(self) -> None:
        forked = self._fork_wanted()
        if forked and (reason := backend_support("namespaces")) is not None:
            raise KernelStartError(f"start='fork' needs the namespace jail: {reason}")
        self.plan = plan_jail(self.policy, "namespaces" if forked else self.jail)
        self.forked = forked and self.plan.backend == "namespaces"
        host = KernelHost(
            self.plan,
            self.limits,
            name=self.name,
            python=self.python,
            extra_env=self.extra_env,
            state=self._state,
            shell=self.shell,
        )
        self.host = host
        try:
            env = host.prepare_launch()
            km = LocalKernel(
                host.command(),
                forked=self.forked,
                startup_timeout=self.limits.startup_timeout,
                ip=host.ipc_prefix,
                connection_file=host.connection_file,
                context=_client_context(),  # shared: closing one never blocks on a term()
                key=self._key,
            )
            self._km = km
            await self._boot(lambda: km.start_kernel(env=env, **_quiet(host.jailed)))
        except Exception as exc:
            await self._kill()
            await _off_loop(host.cleanup)
            self._km = self._kc = None
            if isinstance(exc, KernelStartError):
                raise
            raise KernelStartError(f"kernel failed to start: {exc}") from exc

    async def _boot(self, launch: Any) -> None:
        """(Re)launch the kernel process, follow its jail, connect, run the preamble.

        ``start_phases`` records how long each step took (ms).
        """
        assert self.host is not None and self._km is not None
        phases: dict[str, float] = {}
        began = mark = time.perf_counter()

        def lap(name: str) -> None:
            nonlocal mark
            now = time.perf_counter()
            phases[name] = (now - mark) * 1000
            mark = now

        self.host.forget_jail()
        await launch()
        lap("launch")
        process = self._km.process
        self._state["pid"] = process.pid if process is not None else None
        # by pidfd (forked) or by a group kill that checks its leader is unreaped (exec):
        # never a signal to a pid that may have been reused
        self._state["kill"] = process.kill if process is not None else None
        await self.host.follow_jail(self._is_alive, self.limits.startup_timeout)
        lap("jail")
        ports = list(self._km.ports.values())  # every socket the kernel binds
        await self.host.pin_sockets(ports, self._is_alive, self.limits.startup_timeout)
        lap("sockets")
        if self._kc is None:
            self._kc = self._km.client()
            # liveness is the process's; interrupts go through the manager's own control
            # socket, so the client has only the shell and IOPub channels
            self._kc.start_channels()
        self._state["releases"] = [
            _on_loop(self._kc.stop_channels),
            _on_loop(self._km.release),
            self.host.close_files,
        ]
        # The preamble is queued right behind the first kernel_info: the kernel runs it as
        # soon as it has answered, with no round trip back to the host in between.
        probe = self._kc.kernel_info()
        preamble = self._send_preamble()
        kept: dict[str, Any] = {preamble: None}  # its reply, if a second probe meets it
        try:
            await self._wait_ready(probe, kept)
        except RuntimeError as exc:
            detail = self.host.failure_detail() if self.host.jailed else ""
            raise KernelStartError(f"kernel failed to start: {exc} {detail}".strip()) from exc
        lap("kernel_info")
        self.host.read_layers()
        self.isolation = self.host.isolation
        await self._preamble_done(preamble, kept[preamble])
        lap("preamble")
        phases["total"] = (mark - began) * 1000
        self.start_phases = phases

    async def _wait_ready(self, msg_id: str, kept: dict[str, Any] | None = None) -> None:
        """Wait until the kernel answers ``kernel_info`` and its IOPub reaches this client.

        ``msg_id`` is the first request, already sent; replies to the requests in ``kept``
        (the preamble, queued behind it) that a second probe's wait meets are stored there
        for their own waiters (see :meth:`_reply_seen`). The proof that IOPub is live is a
        message published for one of the probes (its ``status``): one sent before the
        subscription took hold is lost, so ask again, after 20 ms, then 40, 80 ... (the
        status of a live subscription is queued before the reply it precedes). A late
        status of an earlier probe counts too. jupyter_client's ``wait_for_ready`` instead
        waits for IOPub to stay quiet for 0.2 s, on every start.
        """
        deadline = time.monotonic() + self.limits.startup_timeout
        probes, wait = {msg_id}, IOPUB_PROBE_S
        assert self._kc is not None
        while deadline - time.monotonic() > 0:
            if not await self._reply_seen(self._kc.get_shell_msg, probes, deadline, 1.0, kept):
                probes.add(self._kc.kernel_info())
                continue
            if await self._reply_seen(self._kc.get_iopub_msg, probes, deadline, wait):
                return
            probes.add(self._kc.kernel_info())
            wait = min(wait * 2, IOPUB_PROBE_MAX_S)
        raise RuntimeError(f"the kernel did not answer in {self.limits.startup_timeout:g} s")

    async def _reply_seen(
        self,
        get: Any,
        msg_ids: str | set[str],
        deadline: float,
        wait: float,
        kept: dict[str, Any] | None = None,
    ) -> bool:
        """Whether ``get`` yields a message for a request in ``msg_ids`` within ``wait`` s.

        The reply to a request named in ``kept``, met on the way, is stored there (its
        content under the request's id) instead of being dropped.
        """
        wanted = {msg_ids} if isinstance(msg_ids, str) else msg_ids
        until = min(deadline, time.monotonic() + wait)
        while (remaining := until - time.monotonic()) > 0:
            try:
                msg = await get(timeout=min(remaining, POLL_S))
            except Exception:  # queue.Empty
                if not await self._is_alive():
                    raise RuntimeError("the kernel died before it was ready") from None
                continue
            parent = msg.get("parent_header", {}).get("msg_id")
            if parent in wanted:
                return True
            if kept is not None and parent in kept and msg.get("msg_type") == "execute_reply":
                kept[parent] = msg["content"]
        return False

    def _read_pixels(self, where: dict[str, Any]) -> np.ndarray:
        """Read one result image from the kernel's pixel buffer, within the limits.

        Everything the kernel says about the image is checked first: a known mode, a size
        within ``max_result_pixels``, a length that matches; the file is always the
        kernel's own ``px/out.pixels``, opened without following anything. The pixels are
        read straight into a fresh array (the host never maps a file the kernel could
        truncate), which the image codec takes as it is: no PIL copy on the way.
        """
        assert self.host is not None and self.host.files is not None
        mode, size, length, offset = pixel_layout(where, self.limits.max_result_pixels)
        buffer = np.empty(length, dtype=np.uint8)
        got = self.host.files.read_into("px/out.pixels", offset, buffer)
        if got != length:
            raise ValueError(f"the pixel buffer ended early ({got} of {length} bytes)")
        return pixel_array(buffer, mode, size)

    @property
    def workdir(self) -> Path | None:
        """The kernel's working directory, as the kernel sees it (inside its jail)."""
        return self.host.workdir if self.host else None

    @property
    def transfer_dir(self) -> Path | None:
        """Where pixels move between host and kernel, as the kernel sees it."""
        return self.host.transfer_dir if self.host else None

    @property
    def root(self) -> Path | None:
        """The kernel's host-side folder (connection file, jail link); removed on close."""
        return self.host.dir if self.host else None

    def _send_preamble(self) -> str:
        """Send the preamble (the runtime, the usual imports, the user's own); its msg_id."""
        code = "\n".join(
            [
                "import importlib.util as _cv_util, sys as _cv_sys",
                "_cv_mod = _cv_sys.modules.get('codevision_kernel_runtime')",  # preloaded
                "if _cv_mod is None:",
                "    _cv_spec = _cv_util.spec_from_file_location('codevision_kernel_runtime', "
                f"{self.host.kernel_lib_file(RUNTIME_PATH.name)!r})",
                "    _cv_mod = _cv_util.module_from_spec(_cv_spec)",
                "    _cv_sys.modules[_cv_spec.name] = _cv_mod",
                "    _cv_spec.loader.exec_module(_cv_mod)",
                "    del _cv_spec",
                f"_cv_mod.install(get_ipython(), {str(self.transfer_dir)!r}, "
                f"{self.limits.max_output_chars}, {self.limits.max_result_pixels})",
                "del _cv_util, _cv_sys, _cv_mod",
                "import math",
                "import numpy as np",
                "import cv2",
                "from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont, ImageOps",
                self.user_preamble,
                "__cv_runtime__.snapshot_baseline()",
            ]
        )
        return self._kc.execute(code, silent=True, store_history=False, allow_stdin=False)

    async def _preamble_done(self, msg_id: str, reply: dict[str, Any] | None = None) -> None:
        """Wait for the preamble's reply (unless it came already); a failure is a start error."""
        if reply is None:
            reply = await self._reply_to(msg_id, self.limits.startup_timeout)
        if reply.get("status") != "ok":
            raise KernelStartError(
                f"kernel preamble failed: {reply.get('ename')}: {reply.get('evalue')}"
            )

    async def _request(
        self, code: str, *, silent: bool = False, timeout: float | None = None
    ) -> dict[str, Any]:
        """Send a helper request and wait for its reply content (no output capture)."""
        if self._unsent:  # staged images first: a silent request does not load them
            await self._flush_unsent()
        msg_id = self._kc.execute(
            code,
            silent=silent,
            store_history=False,
            allow_stdin=False,
            metadata=quiet_metadata(),
        )
        return await self._reply_to(msg_id, timeout or self.limits.startup_timeout)

    async def _reply_to(self, msg_id: str, timeout: float) -> dict[str, Any]:
        """The content of the shell reply to request ``msg_id``."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{self.name}: no reply to an internal request")
            try:
                msg = await self._kc.get_shell_msg(timeout=min(remaining, POLL_S))
            except Exception:  # queue.Empty
                if not await self._is_alive():
                    raise KernelStartError(f"{self.name}: the kernel process died") from None
                continue
            if msg["parent_header"].get("msg_id") == msg_id:
                return msg["content"]

    async def _warm(self) -> None:
        """Pay a fresh kernel's first-use costs (an image load, a bind, a save) up front.

        A pool calls this after starting a kernel, so the first episode on it does not wait
        for them. Silent: no execution count, no names and no image are left behind.
        """
        await self._send_image(WARM_KEY, np.zeros((2, 2, 3), dtype=np.uint8))
        code = f"getattr(__cv_runtime__, 'warm', __cv_runtime__.drop)({WARM_KEY!r})"
        reply = await self._request(code, silent=True)
        if reply.get("status") != "ok":
            raise KernelStartError(f"{self.name}: warm-up failed: {reply.get('evalue')}")

    async def _ensure_alive(self, result: ExecutionResult) -> None:
        await self._start()
        if not await self._is_alive():
            await self._restart()
            result.restarted = True

    async def _execute(
        self,
        code: Any,
        timeout: float | None,
        image: int | str | None,
        collect: tuple[str, ...],
        collect_first: bool,
        register_as: int | str | None,
    ) -> ExecutionResult:
        if not isinstance(code, str):
            raise TypeError(f"code must be a str, got {type(code).__name__}")
        result = ExecutionResult(isolation=self.isolation)
        if not code.strip():
            result.error = ExecutionError("CodeRejected", "the code is empty")
            return result
        if len(code) > self.limits.max_code_chars:
            result.error = ExecutionError(
                "CodeRejected",
                f"the code has {len(code)} characters; the limit is {self.limits.max_code_chars}",
            )
            return result
        await self._start()
        assert self._lock is not None
        async with self._lock:
            await self._ensure_alive(result)
            result.isolation = self.isolation
            self.executions += 1
            return await run_cell(
                self,
                code,
                result,
                timeout or self.limits.timeout,
                image,
                collect,
                collect_first,
                register_as,
            )

    async def _put_image(self, key: int | str, image: Image.Image | np.ndarray) -> None:
        array = _to_array(image)
        await self._start()
        assert self._lock is not None
        async with self._lock:
            if not await self._is_alive():
                await self._restart()
            await self._stage_image(str(key), array)
            self._images[str(key)] = image

    async def _stage_image(self, key: str, array: np.ndarray) -> None:
        """Write the pixels now; the kernel loads them with the next request it gets.

        An execute carries the pending loads in its metadata (the kernel loads them before
        the cell), which saves a round trip per image; any other request sends them first.
        """
        # In order: a key staged twice is loaded twice and the last wins; every load
        # removes its file, so nothing staged is left behind in the kernel's folder.
        self._unsent.append([key, str(await self._write_pixels(key, array))])

    def _take_unsent(self) -> list[list[str]]:
        """The staged loads, for the execute request about to be sent."""
        unsent, self._unsent = self._unsent, []
        return unsent

    async def _flush_unsent(self) -> None:
        for key, path in self._take_unsent():
            await self._load(key, path)

    async def _send_image(self, key: str, array: np.ndarray) -> None:
        await self._load(key, str(await self._write_pixels(key, array)))

    async def _write_pixels(self, key: str, array: np.ndarray) -> Path:
        """Write ``array`` into the kernel's transfer folder; its path as the kernel sees it."""
        assert self.host is not None and self.host.files is not None
        name = f"px/in-{next(_ids)}-{time.monotonic_ns()}.npy"
        files = self.host.files

        def write() -> None:
            with files.create(name) as handle:
                np.save(handle, array, allow_pickle=False)

        try:
            await asyncio.to_thread(write)
        except OSError as exc:
            raise ValueError(f"could not hand image {key!r} to the kernel: {exc}") from exc
        return self.host.area / name

    async def _load(self, key: str, path: str) -> None:
        reply = await self._request(f"__cv_runtime__.load({key!r}, {path!r})", silent=True)
        if reply.get("status") != "ok":
            raise ValueError(
                f"could not register image {key!r}: {reply.get('ename')}: {reply.get('evalue')}"
            )

    async def _drop_image(self, key: int | str) -> None:
        self._images.pop(str(key), None)
        if self._km is not None:
            assert self._lock is not None
            async with self._lock:
                await self._request(f"__cv_runtime__.drop({str(key)!r})", silent=True)

    async def _reset(self) -> None:
        await self._start()
        assert self._lock is not None
        async with self._lock:
            self._images.clear()
            self._unsent.clear()
            if not await self._is_alive():
                await self._restart()
                return
            reply = await self._request("__cv_runtime__.reset()", silent=True, timeout=10)
            if reply.get("status") != "ok":
                self.poisoned = True
                raise RuntimeError(f"{self.name}: reset failed: {reply.get('evalue')}")

    async def _restart(self) -> None:
        assert self._km is not None and self.host is not None
        self.restarts += 1
        self.host.kill_jail()
        self._unsent.clear()  # every image is sent again below
        await self._boot(lambda: self._km.restart_kernel(now=True))
        for key, image in list(self._images.items()):
            await self._send_image(key, _to_array(image))

    async def _is_alive(self) -> bool:
        return self._km is not None and bool(await self._km.is_alive())

    def _exit_detail(self) -> str:
        process = self._km.process if self._km else None
        code = process.poll() if process is not None else None
        extra = self.host.death_detail() if self.host else ""
        if code is None:
            return "exit status unknown" + extra
        if code < 0:
            with contextlib.suppress(ValueError):
                return f"killed by signal {signal.Signals(-code).name}{extra}"
        return f"exit code {code}{extra}"

    async def _kill(self) -> None:
        if self._kc is not None:
            with contextlib.suppress(Exception):
                self._kc.stop_channels()
        if self._km is not None:
            with contextlib.suppress(Exception):
                await self._km.shutdown_kernel(now=True)
        _kill_supervisor(self._state)
        self._state["pid"] = self._state["kill"] = None
        if self.host is not None:
            self.host.kill_jail()

    async def _close(self) -> None:
        self._closed = True
        await self._kill()
        if self.host is not None:
            await _off_loop(self.host.cleanup)
        self._km = None
        self._kc = None
        self._images.clear()
        self._unsent.clear()
