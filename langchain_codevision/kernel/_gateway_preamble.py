"""The code a remote kernel runs first: the runtime and the pixel comm, sent as source.

The remote kernel's host need not have this package: :func:`remote_preamble` carries
``_runtime.py`` (the same kernel-side runtime as a local kernel) and ``_gateway_remote.py``
as text and loads them as modules there. A kernel that already has a runtime (a
``codevision-jailed`` kernel, installed by its launcher) keeps it and only gets the comm.
"""

from __future__ import annotations

import ast
import contextlib
from pathlib import Path
from typing import Any

from .limits import KernelLimits

__all__ = ["ISOLATION_EXPRESSION", "literal_text", "remote_preamble"]

_HERE = Path(__file__).parent
ISOLATION_EXPRESSION = "__import__('codevision_kernel_runtime_remote').isolation(__cv_runtime__)"
"""A ``user_expressions`` entry: the jail layers the kernel's launcher recorded."""


def remote_preamble(limits: KernelLimits, user_preamble: str = "") -> str:
    """The preamble cell of a remote kernel (runtime, pixel comm, the usual imports)."""
    runtime = (_HERE / "_runtime.py").read_text(encoding="utf-8")
    remote = (_HERE / "_gateway_remote.py").read_text(encoding="utf-8")
    return "\n".join(
        [
            "import sys as _cv_sys, types as _cv_types",
            "def _cv_load(name, source):",
            "    module = _cv_types.ModuleType(name)",
            "    module.__file__ = '<' + name + '>'",
            "    _cv_sys.modules[name] = module",
            "    exec(compile(source, name, 'exec'), module.__dict__)",
            "    return module",
            "if '__cv_runtime__' not in get_ipython().user_ns:",
            "    import atexit as _cv_atexit, shutil as _cv_shutil, tempfile as _cv_tmp",
            "    _cv_px = _cv_tmp.mkdtemp(prefix='cv-px-')",
            "    _cv_atexit.register(_cv_shutil.rmtree, _cv_px, True)",
            f"    _cv_load('codevision_kernel_runtime', {runtime!r}).install(",
            f"        get_ipython(), _cv_px, {limits.max_output_chars}, "
            f"{limits.max_result_pixels})",
            "    del _cv_atexit, _cv_shutil, _cv_tmp, _cv_px",
            "__cv_runtime__.max_pixels = min(__cv_runtime__.max_pixels, "
            f"{limits.max_result_pixels})",
            f"_cv_load('codevision_kernel_runtime_remote', {remote!r}).attach("
            "get_ipython(), __cv_runtime__)",
            "del _cv_sys, _cv_types, _cv_load",
            "import math",
            "import numpy as np",
            "import cv2",
            "from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont, ImageOps",
            user_preamble,
            "__cv_runtime__.snapshot_baseline()",
        ]
    )


def literal_text(expression: Any) -> str | None:
    """The string value of a ``user_expressions`` entry, if it holds one."""
    if not isinstance(expression, dict) or expression.get("status") != "ok":
        return None
    text = (expression.get("data") or {}).get("text/plain")
    with contextlib.suppress(ValueError, SyntaxError, TypeError):
        value = ast.literal_eval(text)
        return value if isinstance(value, str) else None
    return None
