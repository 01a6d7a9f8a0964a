"""The host's end of one local kernel's connection: its message session and two sockets.

A kernel is reached through its shell socket (requests and their replies) and its IOPub
socket (status, output and display messages). :class:`KernelClient` owns both, signs and
checks every message through :class:`HostSession` (jupyter_client's ``Session``: the
protocol's signing, packing and replay checks) and reads them through :class:`Channel`,
which takes a message that is already waiting without making a future for it.

It is what the package needs of jupyter_client's ``AsyncKernelClient``, without the
configurable-object machinery around it: that machinery was most of the host's cost of
connecting to a fresh kernel, and a pool that gives every episode a fresh kernel pays it
for every episode. No heartbeat, stdin or control channel: liveness is the process's,
stdin is never allowed, and interrupts go through the kernel's manager.
"""

from __future__ import annotations

import asyncio
import hmac
import queue
from typing import Any

import zmq
import zmq.asyncio
from jupyter_client.session import Session

__all__ = ["MAX_FRAMES", "MAX_MESSAGE_BYTES", "Channel", "HostSession", "KernelClient"]

MAX_FRAMES = 64
"""Frames a message from a kernel may have (routing, delimiter, five parts, buffers)."""
MAX_MESSAGE_BYTES = 16 * 1024**2
"""Bytes a message from a kernel may have in all (ZeroMQ's own cap is per frame)."""


class HostSession(Session):
    """jupyter_client's message session, less the date parsing of every message received.

    ``Session.deserialize`` runs each header through ``extract_dates`` (a regex per value
    and a ``dateutil`` parse per date): about a third of the host's cost of a message, for
    timestamps nothing here reads; nor is a message adapted from older protocol versions
    (the kernels here speak 5.x, and a header's version is the kernel's word anyway).
    The signature checks are jupyter_client's (signed, unseen, valid), with two more for
    messages from a hostile kernel: a signature of the wrong length is refused before
    anything else, and only a signature that checked out is remembered against replays
    (upstream keeps every one it sees, however large, up to 65,536 of them).
    """

    def deserialize(  # type: ignore[override]
        self, msg_list: list[Any], content: bool = True, copy: bool = True
    ) -> dict[str, Any]:
        if not copy:
            msg_list = [bytes(m.bytes) for m in msg_list[:5]] + list(msg_list[5:])
        if len(msg_list) < 5:
            raise TypeError("malformed message, must have at least 5 elements")
        if self.auth is not None:
            signature = msg_list[0]
            if not signature:
                raise ValueError("Unsigned Message")
            if len(signature) != 2 * self.auth.digest_size:  # a hex digest, or forged
                raise ValueError(f"Invalid Signature: {len(signature)} bytes")
            if signature in self.digest_history:
                raise ValueError(f"Duplicate Signature: {signature!r}")
            if not hmac.compare_digest(signature, self.sign(msg_list[1:5])):
                raise ValueError(f"Invalid Signature: {signature!r}")
            if content:
                self._add_digest(signature)
        header = self.unpack(msg_list[1])
        message = {
            "header": header,
            "msg_id": header["msg_id"],
            "msg_type": header["msg_type"],
            "parent_header": self.unpack(msg_list[2]),
            "metadata": self.unpack(msg_list[3]),
            "content": self.unpack(msg_list[4]) if content else msg_list[4],
            "buffers": [memoryview(b) for b in msg_list[5:]],
        }
        return message


class Channel:
    """One socket of a kernel connection: send a message, or take the next one.

    A message already waiting is taken at once through a plain (non-asyncio) view of the
    socket; only an empty socket is awaited. A message that fails its signature check, or
    has more than :data:`MAX_FRAMES` frames or :data:`MAX_MESSAGE_BYTES` bytes in all, is
    raised as ``ValueError`` to the reader (and so dropped), like jupyter_client's
    channels do with bad signatures.
    """

    def __init__(self, socket: zmq.asyncio.Socket, session: Session) -> None:
        self.socket: zmq.asyncio.Socket | None = socket
        self.session = session
        self._direct: zmq.Socket | None = zmq.Socket.shadow(socket.underlying)

    def send(self, msg: dict[str, Any]) -> None:
        """Sign and send ``msg`` (a message made by the session's ``msg``)."""
        if self.socket is None:
            raise RuntimeError("the channel is closed")
        self.session.send(self.socket, msg)

    async def get_msg(self, timeout: float | None = None) -> dict[str, Any]:
        """The next message, waiting at most ``timeout`` seconds (``queue.Empty`` after)."""
        if self.socket is None or self._direct is None:
            raise queue.Empty
        try:
            frames = self._direct.recv_multipart(zmq.NOBLOCK)
        except zmq.Again:
            if not await self._readable(timeout):
                raise queue.Empty from None
            try:
                frames = self._direct.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                raise queue.Empty from None
        if len(frames) > MAX_FRAMES or sum(len(frame) for frame in frames) > MAX_MESSAGE_BYTES:
            raise ValueError(f"a message of {len(frames)} frames over the size cap was dropped")
        _, message = self.session.feed_identities(frames)
        return self.session.deserialize(message)

    async def _readable(self, timeout: float | None) -> bool:
        """Wait until a message waits (True) or ``timeout`` seconds pass (False).

        The socket's descriptor is watched by the running loop for this wait only: one
        future and one timer, where pyzmq's ``poll`` builds a poller with futures and
        callbacks of its own for every wait. The descriptor only says that the socket's
        state may have changed (ZeroMQ signals edges), so ``EVENTS`` is what is asked,
        once the watch is in place and on every wake.
        """
        direct = self._direct
        if direct is None:
            return False
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[bool] = loop.create_future()

        def wake() -> None:
            if waiter.done():
                return
            try:
                if direct.getsockopt(zmq.EVENTS) & zmq.POLLIN:
                    waiter.set_result(True)
            except zmq.ZMQError:  # closed meanwhile
                waiter.set_result(False)

        fd = direct.getsockopt(zmq.FD)
        loop.add_reader(fd, wake)
        timer = None
        if timeout is not None:
            timer = loop.call_later(max(timeout, 0.0), _settle, waiter, False)
        try:
            if direct.getsockopt(zmq.EVENTS) & zmq.POLLIN:
                return True
            return await waiter
        finally:
            if timer is not None:
                timer.cancel()
            loop.remove_reader(fd)

    def close(self) -> None:
        """Close the socket at once, dropping unsent messages (idempotent)."""
        self._direct = None  # a view of the socket: never used once the socket is closed
        if self.socket is not None:
            self.socket.close(linger=0)
            self.socket = None


def _settle(waiter: asyncio.Future[bool], value: bool) -> None:
    if not waiter.done():
        waiter.set_result(value)


class KernelClient:
    """The shell and IOPub channels of one kernel, from its connection info.

    Args:
        connection: The kernel's connection info (``transport``, ``ip`` and the ports).
        session: The kernel's message session (its key signs every message).
        context: The ZeroMQ context the sockets are made in.
    """

    def __init__(
        self, connection: dict[str, Any], session: Session, context: zmq.asyncio.Context
    ) -> None:
        self.connection = connection
        self.session = session
        self.context = context
        self._shell: Channel | None = None
        self._iopub: Channel | None = None

    def _url(self, channel: str) -> str:
        info = self.connection
        port = info[f"{channel}_port"]
        if info["transport"] == "ipc":
            return f"ipc://{info['ip']}-{port}"
        return f"{info['transport']}://{info['ip']}:{port}"

    def start_channels(self) -> None:
        """Connect the IOPub and shell sockets (idempotent)."""
        # IOPub first: its subscription then has a head start on the first request
        if self._iopub is None:
            iopub = self.connect(zmq.SUB, "iopub")
            iopub.setsockopt(zmq.SUBSCRIBE, b"")
            self._iopub = Channel(iopub, self.session)
        if self._shell is None:
            self._shell = Channel(self.connect(zmq.DEALER, "shell"), self.session)

    def connect(self, kind: int, channel: str) -> zmq.asyncio.Socket:
        """A new socket of ``kind`` on the kernel's ``channel``, with the session's identity.

        It drops unsent messages when closed (no linger).
        """
        socket = self.context.socket(kind)
        socket.setsockopt(zmq.IDENTITY, self.session.bsession)
        socket.linger = 0
        socket.connect(self._url(channel))
        return socket

    def stop_channels(self) -> None:
        """Close both sockets (idempotent)."""
        for channel in (self._shell, self._iopub):
            if channel is not None:
                channel.close()

    @property
    def shell_channel(self) -> Channel:
        """The shell channel (requests and their replies)."""
        if self._shell is None:
            raise RuntimeError("the channels are not started")
        return self._shell

    @property
    def iopub_channel(self) -> Channel:
        """The IOPub channel (status, output, displays)."""
        if self._iopub is None:
            raise RuntimeError("the channels are not started")
        return self._iopub

    def _request(
        self, msg_type: str, content: dict[str, Any], metadata: dict[str, Any] | None = None
    ) -> str:
        msg = self.session.msg(msg_type, content, metadata=metadata)
        self.shell_channel.send(msg)
        return str(msg["header"]["msg_id"])

    def execute(
        self,
        code: str,
        silent: bool = False,
        store_history: bool = True,
        user_expressions: dict[str, str] | None = None,
        allow_stdin: bool = False,
        stop_on_error: bool = True,
        metadata: dict[str, Any] | None = None,
    ) -> str:
        """Send an ``execute_request`` (with the request ``metadata``); its msg_id."""
        content = {
            "code": code,
            "silent": silent,
            "store_history": store_history,
            "user_expressions": user_expressions or {},
            "allow_stdin": allow_stdin,
            "stop_on_error": stop_on_error,
        }
        return self._request("execute_request", content, metadata)

    def kernel_info(self) -> str:
        """Send a ``kernel_info_request``; its msg_id."""
        return self._request("kernel_info_request", {})

    async def get_shell_msg(self, timeout: float | None = None) -> dict[str, Any]:
        """The next shell message (``queue.Empty`` after ``timeout`` seconds)."""
        return await self.shell_channel.get_msg(timeout)

    async def get_iopub_msg(self, timeout: float | None = None) -> dict[str, Any]:
        """The next IOPub message (``queue.Empty`` after ``timeout`` seconds)."""
        return await self.iopub_channel.get_msg(timeout)
