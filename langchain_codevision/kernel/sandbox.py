"""The isolation policy and the kernel's scrubbed environment.

Model-written code is untrusted, and import blacklists are bypassable, so isolation is
done by the operating system (see :mod:`.jail` for the layers). This module holds the
policy (``"strict"``, ``"auto"``, ``"off"``) and the environment allowlist: secrets such as
``*_API_KEY`` or ``*_TOKEN`` never reach a kernel.
"""

from __future__ import annotations

import fnmatch
import functools
import os
import re
from collections.abc import Callable, Mapping
from enum import Enum


class IsolationPolicy(str, Enum):
    """How strictly a kernel must be jailed.

    ``strict`` fails closed, ``auto`` takes the best available jail and warns once about
    what is missing, ``off`` runs no jail.
    """

    STRICT = "strict"
    AUTO = "auto"
    OFF = "off"


class IsolationError(RuntimeError):
    """Raised under ``isolation="strict"`` when the OS cannot build the kernel's jail."""


ENV_ALLOWLIST: tuple[str, ...] = (
    "PATH",
    "LANG",
    "LANGUAGE",
    "LC_*",
    "TZ",
    "TERM",
    "PYTHONPATH",
    "PYTHONHOME",
    "VIRTUAL_ENV",
    "CONDA_PREFIX",
    "LD_LIBRARY_PATH",
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENCV_FOR_THREADS_NUM",
    "FONTCONFIG_PATH",
)
SECRET_PATTERNS: tuple[str, ...] = (
    "*_KEY",
    "*_API_KEY",
    "*_TOKEN",
    "*TOKEN*",
    "*SECRET*",
    "*PASSWORD*",
    "*CREDENTIAL*",
    "AWS_*",
    "GOOGLE_APPLICATION_CREDENTIALS",
)


@functools.cache
def _matcher(patterns: tuple[str, ...]) -> Callable[[str], re.Match[str] | None]:
    """One compiled test for a tuple of ``fnmatch`` patterns (case-sensitive)."""
    return re.compile("|".join(fnmatch.translate(p) for p in patterns)).match


def is_secret(name: str) -> bool:
    """Whether an environment variable name looks like it holds a secret."""
    return _matcher(SECRET_PATTERNS)(name.upper()) is not None


def scrub_environment(
    source: Mapping[str, str] | None = None,
    *,
    workdir: str | os.PathLike[str],
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Build the kernel's environment from an allowlist of ``source`` (default: ``os.environ``).

    Variables that look like secrets are dropped even when allowlisted. ``extra`` is added
    as given (the caller vouches for it). ``HOME`` and ``TMPDIR`` point at ``workdir``.
    """
    source = os.environ if source is None else source
    allowed = _matcher(ENV_ALLOWLIST)
    env = {name: value for name, value in source.items() if allowed(name) and not is_secret(name)}
    env.setdefault("PATH", os.defpath)
    workdir = os.fspath(workdir)
    env.update(
        HOME=workdir,
        TMPDIR=workdir,
        MPLBACKEND="module://matplotlib_inline.backend_inline",
        MPLCONFIGDIR=os.path.join(workdir, ".matplotlib"),
        PYTHONDONTWRITEBYTECODE="1",
        PYTHONUNBUFFERED="1",
    )
    # Keep freed image-sized buffers in the heap for reuse instead of unmapping them after
    # every cell: fresh pages for each multi-megabyte image otherwise cost more than the op.
    env.setdefault("MALLOC_MMAP_THRESHOLD_", str(256 << 20))
    env.setdefault("MALLOC_TRIM_THRESHOLD_", str(512 << 20))
    env.setdefault("MALLOC_TOP_PAD_", str(64 << 20))
    # One thread each for OpenMP, OpenBLAS and OpenCV: many kernels share the host's cores,
    # and a pool per kernel would only add threads that spin against the others.
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    env.setdefault("OPENCV_FOR_THREADS_NUM", "1")
    if extra:
        env.update(extra)
    return env
