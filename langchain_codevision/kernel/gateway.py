r"""Remote kernels through Jupyter Kernel Gateway, behind the local session interface.

:class:`GatewayKernelSession` is a :class:`~.session.KernelSession` whose kernel lives
behind a Kernel Gateway (or Enterprise Gateway): the kernel is created over the REST API,
spoken to over the gateway's websocket (protocol ``v1.kernel.websocket.jupyter.org``), and
runs the same kernel-side runtime as a local kernel, so ``execute`` returns the same
:class:`~.result.ExecutionResult` under the same limits. Pixels move both ways as raw
binary buffers of comm messages, never as PNG. A dropped websocket reconnects (the kernel
and its variables survive); a time limit interrupts over REST and then restarts; a kernel
the gateway lost is restarted, or re-created, with its registered images.

Pick it with a kernel spec: ``KernelPool(kernel="gateway+http://host:8888")`` or
``make_session("gateway+https://host/base", token=...)``. The token comes from ``token=``,
else ``CODEVISION_GATEWAY_TOKEN``, else ``KG_AUTH_TOKEN``.

Example:
    >>> with GatewayKernelSession("http://127.0.0.1:8888", token="secret") as kernel:
    ...     kernel.execute("x = 6 * 7; print(x)").stdout
    '42\\n'
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import time
import urllib.request
import uuid
import weakref
from typing import Any

import numpy as np

from ._cell import POLL_S, quiet_metadata
from ._gateway_pixels import PixelInbox
from ._gateway_preamble import ISOLATION_EXPRESSION, literal_text, remote_preamble
from ._gateway_rest import GatewayAuthError, GatewayError, GatewayRest
from ._gateway_wire import GatewayChannels
from .limits import KernelLimits
from .sandbox import IsolationPolicy
from .session import KernelSession, KernelStartError, _to_array

__all__ = [
    "GATEWAY_PREFIX",
    "GatewayAuthError",
    "GatewayError",
    "GatewayKernelSession",
    "gateway_url",
]

GATEWAY_PREFIX = "gateway+"
TOKEN_ENV = ("CODEVISION_GATEWAY_TOKEN", "KG_AUTH_TOKEN")
PIXEL_COMM = "codevision.pixels"
ALIVE_CHECK_S = 2.0
"""Least seconds between two REST checks that the gateway still has the kernel."""
MAX_FRAME_BYTES = 64 * 1024**2
IOPUB_PROBE_S = 0.25
"""Seconds to wait for IOPub before asking the kernel for its info again."""
_ids = itertools.count(1)


def gateway_url(spec: str) -> str:
    """The gateway's HTTP(S) base URL of a ``gateway+http(s)://...`` kernel spec."""
    url = spec[len(GATEWAY_PREFIX) :] if spec.startswith(GATEWAY_PREFIX) else spec
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"a gateway kernel spec is gateway+http(s)://host:port, got {spec!r}")
    return url.rstrip("/")


def _delete_at_exit(state: dict[str, Any]) -> None:
    """Last resort at garbage collection or exit: delete a kernel never closed."""
    kernel_id = state.get("kernel_id")
    if not kernel_id:
        return
    state["kernel_id"] = None
    request = urllib.request.Request(
        f"{state['url']}/api/kernels/{kernel_id}", method="DELETE", headers=state["headers"]
    )
    with contextlib.suppress(Exception):
        urllib.request.urlopen(request, timeout=2).close()


class _RemoteKernel:
    """What the cell runner asks of a kernel manager, over the gateway's REST API."""

    def __init__(self, rest: GatewayRest, kernel_id: str) -> None:
        self.rest = rest
        self.kernel_id = kernel_id

    async def interrupt_kernel(self) -> None:
        """Interrupt the cell; a failure leaves the time limit to the restart that follows."""
        with contextlib.suppress(GatewayError):
            await self.rest.interrupt(self.kernel_id)


class GatewayKernelSession(KernelSession):
    """One stateful kernel on a Jupyter Kernel Gateway (same API as :class:`KernelSession`).

    Args:
        url: The gateway's base URL, ``http(s)://host:port[/base]`` (a ``gateway+`` prefix
            is accepted).
        token: The gateway's auth token (default: ``CODEVISION_GATEWAY_TOKEN``, then
            ``KG_AUTH_TOKEN``; none sends no token).
        kernel_name: The gateway kernelspec to start (default: the gateway's default, e.g.
            ``codevision-jailed``; see :mod:`.gateway_kernel`).
        limits: Time, output and image limits applied by this client; the gateway host
            enforces memory, CPU, process and disk limits (see ``docs/remote-kernels.md``).
        isolation: ``"strict"`` refuses a kernel that reports no jail layers; ``"auto"``
            and ``"off"`` accept any.
        env: Environment for the kernel (the gateway accepts ``KERNEL_*`` names and its
            ``env_whitelist``). ``KERNEL_USERNAME``, the user Enterprise Gateway starts the
            kernel for, comes from the environment of this process when ``env`` has none.
        preamble: Extra code run once after start and after each reset.
        request_timeout: Seconds one REST call may take.
        reconnect_timeout: Seconds a dropped websocket is retried before the kernel counts
            as lost (it is then restarted by the next call).
        quick_ack: ACK the gateway's packets at once (Linux ``TCP_QUICKACK``): a stock
            gateway's sockets run Nagle's algorithm, which with delayed ACKs costs ~40 ms
            per round trip (see ``docs/remote-kernels.md``).
    """

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        kernel_name: str | None = None,
        limits: KernelLimits | None = None,
        isolation: IsolationPolicy | str = IsolationPolicy.AUTO,
        env: dict[str, str] | None = None,
        preamble: str = "",
        request_timeout: float = 10.0,
        reconnect_timeout: float = 10.0,
        quick_ack: bool = True,
    ) -> None:
        env = dict(env or {})
        if "KERNEL_USERNAME" not in env and os.environ.get("KERNEL_USERNAME"):
            env["KERNEL_USERNAME"] = os.environ["KERNEL_USERNAME"]  # as Jupyter's own client
        super().__init__(limits=limits, isolation=isolation, env=env, preamble=preamble)
        self.url = gateway_url(url)
        self.ws_url = "ws" + self.url[len("http") :]
        if token is None:
            token = next((os.environ[name] for name in TOKEN_ENV if os.environ.get(name)), None)
        self.headers = {"Authorization": f"token {token}"} if token else {}
        self.kernel_name = kernel_name
        self.request_timeout = request_timeout
        self.reconnect_timeout = reconnect_timeout
        self.quick_ack = quick_ack
        self.name = f"gateway-kernel-{next(_ids)}"
        self.kernel_id: str | None = None
        self._rest: GatewayRest | None = None
        self._comm_id = ""
        self._session_id = ""
        self._dead: str | None = None
        self._iopub_live: asyncio.Event | None = None
        self._checked = 0.0
        self._pixels = PixelInbox(self.limits)
        self._puts: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.stats = {"pixel_bytes_in": 0, "pixel_bytes_out": 0}
        self._finalizer.detach()
        self._remote = {"url": self.url, "headers": self.headers, "kernel_id": None}
        self._finalizer = weakref.finalize(self, _delete_at_exit, self._remote)

    def __repr__(self) -> str:
        status = "closed" if self._closed else ("running" if self._km else "new")
        return f"GatewayKernelSession({self.url}, {self.kernel_id or '-'}, {status})"

    @property
    def channels(self) -> GatewayChannels | None:
        """The websocket to the kernel, while connected."""
        return self._kc

    # ------------------------------------------------------------------ start and stop
    async def _launch(self) -> None:
        self._rest = GatewayRest(self.url, self.headers, self.request_timeout)
        try:
            await self._create()
            await self._connect()
        except Exception as exc:
            await self._kill()
            self._km = self._kc = None
            if isinstance(exc, KernelStartError):
                raise
            raise KernelStartError(f"remote kernel failed to start: {exc}") from exc

    async def _create(self) -> None:
        assert self._rest is not None
        model = await self._rest.create(self.kernel_name, self.extra_env)
        self.kernel_id = self._remote["kernel_id"] = model["id"]
        self._km = _RemoteKernel(self._rest, model["id"])

    async def _connect(self) -> None:
        """Open a websocket, wait for the kernel, run the preamble."""
        self._dead = None
        self._pixels.clear()
        self._session_id = uuid.uuid4().hex
        self._iopub_live = asyncio.Event()
        await self._open_channels()
        await self._wait_ready()
        await self._run_preamble()

    async def _reopen(self) -> bool:
        """A websocket lost past its retries: reopen it when the kernel is still there.

        The same session id makes the gateway replay what the kernel sent meanwhile.
        """
        self._checked = time.monotonic()
        try:
            model = await self._rest.get(self.kernel_id or "") if self._rest else None
            if model is None or model.get("execution_state") == "dead":
                return False
            await self._kc.close()
            await self._open_channels()
        except Exception:
            return False
        return True

    async def _open_channels(self) -> None:
        channels = GatewayChannels(
            f"{self.ws_url}/api/kernels/{self.kernel_id}/channels?session_id={self._session_id}",
            self.headers,
            open_timeout=self.limits.startup_timeout,  # the gateway waits for the kernel
            reconnect_timeout=self.reconnect_timeout,
            max_frame_bytes=MAX_FRAME_BYTES,
            on_message=self._on_message,
            quick_ack=self.quick_ack,
        )
        self._kc = channels
        try:
            await channels.open()
        except Exception as exc:
            status = getattr(getattr(exc, "response", None), "status_code", None)
            if status in (401, 403):
                raise GatewayAuthError(
                    f"the gateway at {self.url} refused the token on its websocket", status
                ) from exc
            raise KernelStartError(f"no websocket to the kernel at {self.url}: {exc}") from exc

    async def _wait_ready(self) -> None:
        """Wait until the kernel answers on shell and its IOPub reaches this websocket.

        A gateway skips its own IOPub check (the "nudge") when it still thinks the kernel
        busy, as it does right after restarting one stuck in a loop; what the kernel
        publishes before the subscription is live is lost, a pixel reply included. So keep
        asking for kernel info until some IOPub message arrives, as the nudge would.
        """
        assert self._iopub_live is not None
        deadline = time.monotonic() + self.limits.startup_timeout
        answered = False
        while time.monotonic() < deadline:
            msg = self._kc.session.msg("kernel_info_request", {})
            self._kc.send("shell", msg)
            wait = min(1.0, max(deadline - time.monotonic(), 0.0))
            if not answered:
                answered = await self._reply_to(msg, wait) is not None
            if answered:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._iopub_live.wait(), min(IOPUB_PROBE_S, wait))
                if self._iopub_live.is_set():
                    return
            if self._dead:
                raise KernelStartError(f"the remote kernel died while starting ({self._dead})")
        raise KernelStartError(
            f"the remote kernel did not answer in {self.limits.startup_timeout} s"
        )

    async def _reply_to(self, msg: dict[str, Any], timeout: float) -> dict[str, Any] | None:
        """The shell reply to ``msg`` within ``timeout`` seconds, else ``None``."""
        msg_id = msg["header"]["msg_id"]
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                reply = await self._kc.get_shell_msg(timeout=min(remaining, POLL_S))
            except asyncio.TimeoutError:
                continue
            if reply["parent_header"].get("msg_id") == msg_id:
                return reply["content"]
        return None

    async def _run_preamble(self) -> None:
        code = remote_preamble(self.limits, self.user_preamble)
        reply = await self._request(code, silent=True, expressions={"iso": ISOLATION_EXPRESSION})
        if reply.get("status") != "ok":
            raise KernelStartError(
                f"kernel preamble failed: {reply.get('ename')}: {reply.get('evalue')}"
            )
        self.isolation = literal_text((reply.get("user_expressions") or {}).get("iso")) or "none"
        if self.policy is IsolationPolicy.STRICT and self.isolation == "none":
            raise KernelStartError(
                "isolation='strict' but the remote kernel reports no jail: start the gateway "
                "with --KernelGatewayApp.default_kernel_name=codevision-jailed"
            )
        self._comm_id = uuid.uuid4().hex
        opener = {"comm_id": self._comm_id, "target_name": PIXEL_COMM, "data": {}}
        self._kc.send("shell", self._kc.session.msg("comm_open", opener))

    async def _kill(self) -> None:
        if self._kc is not None:
            await self._kc.close()
        if self._rest is not None and self.kernel_id is not None:
            with contextlib.suppress(Exception):
                await self._rest.delete(self.kernel_id)
            self._remote["kernel_id"] = None

    async def _close(self) -> None:
        self._closed = True
        await self._kill()
        if self._rest is not None:
            with contextlib.suppress(Exception):
                await self._rest.aclose()
        self._km = None
        self._kc = None
        self._images.clear()
        for future in self._puts.values():
            future.cancel()

    async def _restart(self) -> None:
        assert self._rest is not None and self.kernel_id is not None
        self.restarts += 1
        if self._kc is not None:
            await self._kc.close()
        try:
            await self._rest.restart(self.kernel_id)
        except GatewayAuthError:
            raise
        except GatewayError:
            # Lost, or the gateway's own auto-restart got there first: a fresh kernel.
            with contextlib.suppress(GatewayError):
                await self._rest.delete(self.kernel_id)
            await self._create()
        await self._connect()
        for key, image in list(self._images.items()):
            await self._send_image(key, _to_array(image))

    async def _is_alive(self) -> bool:
        if self._km is None or self._kc is None or self._dead:
            return False
        if not self._kc.usable:
            return await self._reopen()
        if time.monotonic() - self._checked < ALIVE_CHECK_S or self._rest is None:
            return True
        self._checked = time.monotonic()
        try:
            model = await self._rest.get(self.kernel_id or "")
        except GatewayError:
            return True  # the gateway is slow to answer; the websocket decides
        if model is None or model.get("execution_state") == "dead":
            self._dead = "the gateway no longer has the kernel"
            return False
        return True

    def _exit_detail(self) -> str:
        lost = self._kc.lost if self._kc is not None else None
        return self._dead or (f"the websocket was lost: {lost}" if lost else "exit status unknown")

    # ------------------------------------------------------------------ requests
    async def _request(
        self,
        code: str,
        *,
        silent: bool = False,
        timeout: float | None = None,
        expressions: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Send a helper request and wait for its reply content (no output capture)."""
        content = {
            "code": code,
            "silent": silent,
            "store_history": False,
            "user_expressions": expressions or {},
            "allow_stdin": False,
            "stop_on_error": False,
        }
        msg = self._kc.session.msg("execute_request", content, metadata=quiet_metadata())
        self._kc.send("shell", msg)
        deadline = time.monotonic() + (timeout or self.limits.startup_timeout)
        while time.monotonic() < deadline:
            reply = await self._reply_to(msg, min(deadline - time.monotonic(), 1.0))
            if reply is not None:
                return reply
            if not await self._is_alive():
                raise KernelStartError(f"{self.name}: {self._exit_detail()}")
        raise TimeoutError(f"{self.name}: no reply to an internal request")

    def _on_message(self, channel: str, msg: dict[str, Any]) -> bool:
        """Handle gateway status and pixel messages before the queues see them."""
        if channel != "iopub":
            return False
        if self._iopub_live is not None:
            self._iopub_live.set()
        kind, content = msg["msg_type"], msg["content"]
        if kind == "status" and not msg["parent_header"]:
            state = content.get("execution_state")
            if state in ("restarting", "dead"):
                self._dead = f"the gateway reported the kernel {state}"
            return state in ("restarting", "dead")
        if kind != "comm_msg" or content.get("comm_id") != self._comm_id:
            return False
        data = content.get("data")
        parent = msg["parent_header"].get("msg_id")
        if not isinstance(data, dict):
            return True
        if data.get("op") == "pixels":
            self.stats["pixel_bytes_out"] += self._pixels.take(
                parent, data.get("base"), msg["buffers"]
            )
        elif data.get("op") == "put" and parent in self._puts:
            future = self._puts.pop(parent)
            if not future.done():
                future.set_result(data)
        return True

    def _read_pixels(self, where: dict[str, Any]) -> np.ndarray:
        """One result image from the pixels the kernel sent, checked like a local one."""
        return self._pixels.read(where)

    async def _stage_image(self, key: str, array: np.ndarray) -> None:
        await self._send_image(key, array)  # over the comm at once: its reply is the check

    async def _send_image(self, key: str, array: np.ndarray) -> None:
        array = np.ascontiguousarray(array)
        if array.dtype.hasobject:
            raise ValueError(f"could not register image {key!r}: an object array")
        data = {"op": "put", "key": key, "shape": list(array.shape), "dtype": array.dtype.str}
        msg = self._kc.session.msg("comm_msg", {"comm_id": self._comm_id, "data": data})
        msg["buffers"] = [memoryview(array).cast("B")]
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._puts[msg["header"]["msg_id"]] = future
        self._kc.send("shell", msg)
        try:
            reply = await asyncio.wait_for(future, self.limits.startup_timeout)
        except asyncio.TimeoutError:
            raise ValueError(
                f"could not register image {key!r}: the kernel did not answer"
            ) from None
        finally:
            self._puts.pop(msg["header"]["msg_id"], None)
        if not reply.get("ok"):
            raise ValueError(f"could not register image {key!r}: {reply.get('error')}")
        self.stats["pixel_bytes_in"] += array.nbytes
