"""A gateway-side setting: kernel websockets that send each message at once.

Tornado, under the Kernel Gateway, writes websocket messages with Nagle's algorithm on: a
small message waits for the ACK of the one before it, and a client with delayed ACKs holds
that ACK ~40 ms, so an execute round trip (busy, input, reply, idle: four small messages)
costs ~48 ms instead of a few. This connection class turns Nagle off on each websocket::

    jupyter kernelgateway --KernelGatewayApp.kernel_websocket_connection_class=\
langchain_codevision.kernel.gateway_ws.NoDelayWebsocketConnection

(:class:`~.gateway.GatewayKernelSession` also ACKs at once on its side, so a stock gateway
is fast too; this setting helps every other client of the gateway.)
"""

from __future__ import annotations

from typing import Any

from jupyter_server.services.kernels.connection.channels import ZMQChannelsWebsocketConnection

__all__ = ["NoDelayWebsocketConnection"]


class NoDelayWebsocketConnection(ZMQChannelsWebsocketConnection):
    """The stock kernel websocket connection with ``TCP_NODELAY`` on its socket."""

    def connect(self) -> Any:
        """Disable Nagle's algorithm, then connect as usual."""
        self.websocket_handler.set_nodelay(True)
        return super().connect()
