r"""Sandboxed, stateful Jupyter kernels for model-written code.

Key pieces:

* :class:`KernelSession`: one kernel (sync and async API, context manager).
* :class:`KernelPool`: warm kernels, handed out per episode and recycled.
* :class:`GatewayKernelSession`: the same session on a Jupyter Kernel Gateway.
* :class:`KernelLimits` and :class:`IsolationPolicy`: the sandbox settings.
* :func:`plan_jail` / :class:`JailPlan`: which jail layers this machine offers (see
  :mod:`.jail` for what each layer stops).
* :class:`ExecutionResult`: what one ``execute`` produced.

Example:
    >>> from langchain_codevision.kernel import KernelSession
    >>> with KernelSession() as kernel:
    ...     kernel.execute("x = 6 * 7; print(x)").stdout
    '42\\n'
"""

from .gateway import GatewayKernelSession
from .jail import JailPlan, plan_jail
from .limits import KernelLimits
from .pool import KernelPool
from .result import ExecutionError, ExecutionResult, OutputImage
from .sandbox import IsolationError, IsolationPolicy
from .session import KernelSession, KernelStartError

__all__ = [
    "ExecutionError",
    "ExecutionResult",
    "GatewayKernelSession",
    "IsolationError",
    "IsolationPolicy",
    "JailPlan",
    "KernelLimits",
    "KernelPool",
    "KernelSession",
    "KernelStartError",
    "OutputImage",
    "plan_jail",
]
