"""Where a pool's kernels come from: a kernel spec string names the provider.

* ``"local"`` (default): a :class:`~.session.KernelSession` on this host, in its own jail.

Other providers register a URL scheme here (remote kernels add ``gateway+http://...``).
"""

from __future__ import annotations

from typing import Any

from .session import KernelSession

__all__ = ["LOCAL", "make_session"]

LOCAL = "local"


def make_session(kernel: str = LOCAL, **session_kwargs: Any) -> KernelSession:
    """A new, unstarted kernel session for the kernel spec ``kernel``.

    Raises:
        ValueError: ``kernel`` names no known provider.
    """
    if kernel == LOCAL:
        return KernelSession(**session_kwargs)
    raise ValueError(f"unknown kernel {kernel!r}: expected 'local'")
