"""Jupyter comms for the lean kernel: ``comm_open``, ``comm_msg``, ``comm_close``.

Loaded by the lean kernel (``_lean_kernel``) inside the kernel; it imports nothing from the
package. Kernel-side code registers a target (``kernel.comm_manager.register_target``);
when the frontend opens a comm on it, the target gets a :class:`Comm` whose messages (with
their binary buffers) reach the callback given to :meth:`Comm.on_msg`. A gateway's pixel
transport (``_gateway_remote``) is one such target.
"""

from __future__ import annotations

import traceback
import uuid
from typing import Any


class Comm:
    """One open comm: ``send`` publishes ``comm_msg`` on IOPub; ``on_msg`` takes messages."""

    def __init__(self, manager: CommManager, comm_id: str, target_name: str) -> None:
        self.manager = manager
        self.comm_id = comm_id
        self.target_name = target_name
        self._on_msg: Any = None
        self._on_close: Any = None

    def on_msg(self, callback: Any) -> None:
        self._on_msg = callback

    def on_close(self, callback: Any) -> None:
        self._on_close = callback

    def send(
        self,
        data: Any = None,
        metadata: dict[str, Any] | None = None,
        buffers: list[Any] | None = None,
    ) -> None:
        content = {"comm_id": self.comm_id, "data": data if data is not None else {}}
        self.manager.publish("comm_msg", content, metadata, buffers)

    def close(self, data: Any = None) -> None:
        if self.manager.comms.pop(self.comm_id, None) is not None:
            content = {"comm_id": self.comm_id, "data": data if data is not None else {}}
            self.manager.publish("comm_close", content, None, None)


class CommManager:
    """The comm targets and open comms of one kernel."""

    def __init__(self, publish: Any) -> None:
        self.publish = publish  # (msg_type, content, metadata, buffers) -> None
        self.targets: dict[str, Any] = {}
        self.comms: dict[str, Comm] = {}

    def register_target(self, target_name: str, callback: Any) -> None:
        self.targets[str(target_name)] = callback

    def unregister_target(self, target_name: str, callback: Any = None) -> Any:
        return self.targets.pop(str(target_name), None)

    def new_comm(self, target_name: str, data: Any = None) -> Comm:
        """Open a comm from the kernel's side."""
        comm = Comm(self, uuid.uuid4().hex, target_name)
        self.comms[comm.comm_id] = comm
        content = {"comm_id": comm.comm_id, "target_name": target_name, "data": data or {}}
        self.publish("comm_open", content, None, None)
        return comm

    def info(self, target_name: Any = None) -> dict[str, Any]:
        """The ``comm_info_reply`` content."""
        return {
            "status": "ok",
            "comms": {
                comm_id: {"target_name": comm.target_name}
                for comm_id, comm in self.comms.items()
                if target_name in (None, comm.target_name)
            },
        }

    def handle(self, message: dict[str, Any]) -> None:
        """Dispatch one ``comm_open``/``comm_msg``/``comm_close`` from the frontend."""
        msg_type, content = message["msg_type"], message["content"]
        comm_id = str(content.get("comm_id", ""))
        try:
            if msg_type == "comm_open":
                name = str(content.get("target_name", ""))
                target = self.targets.get(name)
                if target is None:
                    self.publish("comm_close", {"comm_id": comm_id, "data": {}}, None, None)
                    return
                comm = self.comms[comm_id] = Comm(self, comm_id, name)
                target(comm, message)
            elif msg_type == "comm_msg":
                comm = self.comms.get(comm_id)
                if comm is not None and comm._on_msg is not None:
                    comm._on_msg(message)
            elif msg_type == "comm_close":
                comm = self.comms.pop(comm_id, None)
                if comm is not None and comm._on_close is not None:
                    comm._on_close(message)
        except Exception:
            traceback.print_exc()  # a failing callback is the kernel code's error, not ours
