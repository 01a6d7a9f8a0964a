"""The Jupyter websocket protocol ``v1.kernel.websocket.jupyter.org``, client side.

A gateway forwards this protocol's frames to the kernel's ZeroMQ sockets without parsing
them, so binary buffers (raw pixels) travel as they are. One frame::

    n (uint64 LE) | n offsets (uint64 LE) | channel | header | parent | metadata | content
    | buffer 1 | buffer 2 ...

:class:`GatewayChannels` keeps one websocket to one kernel: a reader task sorts incoming
messages into bounded per-channel queues, a dropped connection is re-opened with the same
session id (the gateway replays what the kernel sent meanwhile), and every wait is bounded.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import socket
import time
from collections.abc import Callable
from typing import Any

from jupyter_client.session import Session

__all__ = ["PROTOCOL", "GatewayChannels", "pack_frame", "unpack_frame"]

PROTOCOL = "v1.kernel.websocket.jupyter.org"
CHANNELS = ("shell", "iopub", "stdin", "control")
MAX_QUEUED = 256
"""Messages queued per channel before further ones are dropped (bounds client memory)."""


def pack_frame(channel: str, parts: list[Any]) -> bytes:
    """One websocket frame from the channel name and the message parts."""
    name = channel.encode()
    offsets = [8 * (len(parts) + 3)]
    offsets.append(offsets[-1] + len(name))
    for part in parts:
        offsets.append(offsets[-1] + len(part))
    head = len(offsets).to_bytes(8, "little") + b"".join(o.to_bytes(8, "little") for o in offsets)
    return b"".join([head, name, *parts])


def unpack_frame(frame: bytes) -> tuple[str, list[bytes]]:
    """``(channel, parts)`` of one frame; raises ``ValueError`` on a malformed one."""
    view = memoryview(frame)
    if len(view) < 8:
        raise ValueError("frame too short")
    count = int.from_bytes(view[:8], "little")
    if not 3 <= count <= 4096 or len(view) < 8 * (count + 1):
        raise ValueError("bad offset count")
    offsets = [int.from_bytes(view[8 * (i + 1) : 8 * (i + 2)], "little") for i in range(count)]
    if offsets != sorted(offsets) or offsets[-1] > len(view):
        raise ValueError("bad offsets")
    channel = bytes(view[offsets[0] : offsets[1]]).decode()
    return channel, [bytes(view[offsets[i] : offsets[i + 1]]) for i in range(1, count - 1)]


def _decode(parts: list[bytes]) -> dict[str, Any]:
    """A message dict (header, parent_header, metadata, content, buffers) from its parts."""
    if len(parts) < 4:
        raise ValueError("a message needs four JSON parts")
    header, parent, metadata, content = (json.loads(part) for part in parts[:4])
    if not all(isinstance(p, dict) for p in (header, parent, metadata, content)):
        raise ValueError("message parts must be objects")
    return {
        "header": header,
        "parent_header": parent,
        "metadata": metadata,
        "content": content,
        "buffers": parts[4:],
        "msg_id": header.get("msg_id"),
        "msg_type": header.get("msg_type"),
    }


class _Sender:
    """``channel.send(msg)`` for one channel, as jupyter_client's channels offer."""

    def __init__(self, owner: GatewayChannels, channel: str) -> None:
        self.owner = owner
        self.channel = channel

    def send(self, msg: dict[str, Any]) -> None:
        self.owner.send(self.channel, msg)


class GatewayChannels:
    """One kernel's websocket: bounded queues per channel, reconnect, quick ACKs.

    Args:
        url: ``ws://`` or ``wss://`` URL of ``/api/kernels/<id>/channels``.
        headers: HTTP headers for the handshake (the token).
        open_timeout: Seconds one connection attempt may take.
        reconnect_timeout: Seconds a dropped connection is retried before the kernel is
            reported lost.
        max_frame_bytes: Largest frame accepted from the gateway.
        on_message: Called with each decoded message first; returning ``True`` consumes it.
        quick_ack: ACK every packet at once (see :func:`_quick_ack`).
    """

    def __init__(
        self,
        url: str,
        headers: dict[str, str],
        *,
        open_timeout: float,
        reconnect_timeout: float,
        max_frame_bytes: int,
        on_message: Callable[[str, dict[str, Any]], bool] | None = None,
        quick_ack: bool = True,
    ) -> None:
        self.url = url
        self.headers = headers
        self.open_timeout = open_timeout
        self.reconnect_timeout = reconnect_timeout
        self.max_frame_bytes = max_frame_bytes
        self.on_message = on_message
        self.quick_ack = quick_ack
        # The gateway signs what it forwards; this key only keeps the session from warning.
        self.session = Session(key=os.urandom(16), username="codevision")
        self.queues = {name: asyncio.Queue(MAX_QUEUED) for name in CHANNELS}
        self.shell_channel = _Sender(self, "shell")
        self.control_channel = _Sender(self, "control")
        self.dropped = 0
        self.active: collections.deque[str] = collections.deque(maxlen=16)
        self.reconnects = 0
        self.lost: str | None = None
        self._ws: Any = None
        self._connected = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None
        self._closing = False
        self._outbox: asyncio.Queue[bytes] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ lifecycle
    async def open(self) -> None:
        """Connect (raises what the handshake raised) and start the reader."""
        self._ws = await self._connect()
        self._connected.set()
        self._reader = asyncio.ensure_future(self._read_forever())
        self._writer = asyncio.ensure_future(self._write_forever())

    async def _connect(self) -> Any:
        from websockets.asyncio.client import connect

        ws = await connect(
            self.url,
            additional_headers=self.headers,
            subprotocols=[PROTOCOL],  # type: ignore[list-item]
            max_size=self.max_frame_bytes,
            open_timeout=self.open_timeout,
            close_timeout=2,
            compression=None,
            ping_interval=20,
            ping_timeout=20,
        )
        if ws.subprotocol != PROTOCOL:
            await ws.close()
            raise ConnectionError(f"the gateway does not speak {PROTOCOL}")
        if self.quick_ack:
            _quick_ack(ws)
        return ws

    async def close(self) -> None:
        """Close the websocket and stop the reader (idempotent)."""
        self._closing = True
        for task in (self._reader, self._writer):
            if task is not None:
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._ws.close(), 3)
        self._ws = None
        self._connected.clear()

    async def drop(self) -> None:
        """Close the current connection as a network fault would (it reconnects)."""
        if self._ws is not None:
            with contextlib.suppress(Exception):
                self._ws.transport.abort()

    # ------------------------------------------------------------------ sending
    def send(self, channel: str, msg: dict[str, Any]) -> None:
        """Queue ``msg`` (a :meth:`Session.msg` dict) for ``channel``; never blocks."""
        pack = self.session.pack
        parts = [pack(msg["header"]), pack(msg["parent_header"]), pack(msg["metadata"])]
        parts.append(pack(msg["content"]))
        parts.extend(msg.get("buffers") or ())
        self.active.append(msg["header"]["msg_id"])
        self._outbox.put_nowait(pack_frame(channel, parts))

    async def _write_forever(self) -> None:
        """Send queued frames in order; a frame that failed waits for the reconnect."""
        frame: bytes | None = None
        while not self._closing:
            if frame is None:
                frame = await self._outbox.get()
            await self._connected.wait()
            ws = self._ws
            try:
                await ws.send(frame)
                frame = None
            except Exception:
                # The reader reconnects; the frame goes again on the next connection.
                while self._ws is ws and not self._closing:
                    await asyncio.sleep(0.02)

    # ------------------------------------------------------------------ receiving
    async def get(self, channel: str, timeout: float) -> dict[str, Any]:
        """The next message on ``channel``; raises ``TimeoutError`` after ``timeout``."""
        return await asyncio.wait_for(self.queues[channel].get(), timeout)

    async def get_iopub_msg(self, timeout: float) -> dict[str, Any]:
        """jupyter_client's name for :meth:`get` on iopub."""
        return await self.get("iopub", timeout)

    async def get_shell_msg(self, timeout: float) -> dict[str, Any]:
        """jupyter_client's name for :meth:`get` on shell."""
        return await self.get("shell", timeout)

    def clear(self) -> None:
        """Drop every queued message (before a new request)."""
        for queue in self.queues.values():
            while not queue.empty():
                queue.get_nowait()

    async def _read_forever(self) -> None:
        while not self._closing:
            ws = self._ws
            try:
                async for frame in ws:
                    if self.quick_ack:
                        _quick_ack(ws)
                    if isinstance(frame, bytes):
                        self._dispatch(frame)
            except Exception:
                pass  # a closed or broken connection: reconnect below
            if self._closing:
                return
            self._connected.clear()
            if not await self._reconnect():
                return

    def _dispatch(self, frame: bytes) -> None:
        try:
            channel, parts = unpack_frame(frame)
            msg = _decode(parts)
        except (ValueError, UnicodeDecodeError):
            self.dropped += 1
            return
        if self.on_message is not None and self.on_message(channel, msg):
            return
        if msg["parent_header"].get("msg_id") not in self.active:
            return  # a reply to nothing asked lately: stale or forged
        queue = self.queues.get(channel)
        if queue is None or queue.full():
            self.dropped += 1
            return
        queue.put_nowait(msg)

    async def _reconnect(self) -> bool:
        deadline = time.monotonic() + self.reconnect_timeout
        delay = 0.05
        while time.monotonic() < deadline and not self._closing:
            try:
                self._ws = await asyncio.wait_for(
                    self._connect(), max(deadline - time.monotonic(), 0.1)
                )
            except Exception as exc:
                self.lost = f"{type(exc).__name__}: {exc}"
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
                continue
            self.reconnects += 1
            self.lost = None
            self._connected.set()
            return True
        self.lost = self.lost or "the connection closed"
        return False

    @property
    def usable(self) -> bool:
        """False once the connection is gone for good (reconnects failed or closed)."""
        return not self._closing and (self._reader is None or not self._reader.done())


def _quick_ack(ws: Any) -> None:
    """ACK the gateway's packets at once (Linux ``TCP_QUICKACK``, re-armed per frame).

    The gateway's tornado sockets run with Nagle's algorithm: each small message after the
    first waits for the ACK of the one before, which a delayed-ACK client holds for ~40 ms.
    """
    quickack = getattr(socket, "TCP_QUICKACK", None)
    sock = ws.transport.get_extra_info("socket") if ws.transport else None
    if quickack is None or sock is None:
        return
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, quickack, 1)
