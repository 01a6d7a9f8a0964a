"""Where a pool's kernels come from: a kernel spec string names the provider.

* ``"local"`` (default): a :class:`~.session.KernelSession` on this host, in its own jail.
* ``"gateway+http://host:port"`` or ``"gateway+https://host/base"``: a
  :class:`~.gateway.GatewayKernelSession` on a Jupyter Kernel Gateway (keyword arguments
  such as ``token``, ``kernel_name``, ``request_timeout`` go to it).
"""

from __future__ import annotations

from typing import Any

from .session import KernelSession

__all__ = ["GATEWAY_PREFIX", "LOCAL", "make_session"]

LOCAL = "local"
GATEWAY_PREFIX = "gateway+"


def make_session(kernel: str = LOCAL, **session_kwargs: Any) -> KernelSession:
    """A new, unstarted kernel session for the kernel spec ``kernel``.

    Raises:
        ValueError: ``kernel`` names no known provider.
    """
    if kernel == LOCAL:
        return KernelSession(**session_kwargs)
    if isinstance(kernel, str) and kernel.startswith(GATEWAY_PREFIX):
        from .gateway import GatewayKernelSession

        return GatewayKernelSession(kernel, **session_kwargs)
    raise ValueError(
        f"unknown kernel {kernel!r}: expected 'local' or 'gateway+http(s)://host:port'"
    )
