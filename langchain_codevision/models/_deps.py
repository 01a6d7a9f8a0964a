"""Import the optional local-inference stack lazily, with an error that says what to install."""

from __future__ import annotations

import contextlib
import importlib
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

__all__ = ["LOCAL_EXTRA_HINT", "LocalStack", "quiet_peft", "require_local_stack"]

LOCAL_EXTRA_HINT = 'pip install "langchain-codevision[local]"'
"""How to install what local models need."""


@dataclass(frozen=True)
class LocalStack:
    """The imported modules of the local stack."""

    torch: Any
    transformers: Any
    tokenizers: Any
    peft: Any | None = None


_CACHE: dict[bool, LocalStack] = {}


def _load(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise ImportError(
            f"{name} is required to run vision-language models locally "
            f"({exc}). Install it with: {LOCAL_EXTRA_HINT}"
        ) from exc


def require_local_stack(*, peft: bool = False) -> LocalStack:
    """Import torch, transformers, tokenizers (and peft) or explain how to install them.

    Args:
        peft: Also import ``peft`` (LoRA adapters).

    Returns:
        The imported modules.

    Raises:
        ImportError: A package is missing; the message names the ``local`` extra.
    """
    if peft in _CACHE:
        return _CACHE[peft]
    stack = LocalStack(
        torch=_load("torch"),
        transformers=_load("transformers"),
        tokenizers=_load("tokenizers"),
        peft=_load("peft") if peft else None,
    )
    _CACHE[peft] = stack
    return stack


@contextlib.contextmanager
def quiet_peft() -> Iterator[None]:
    """Silence a deprecation warning peft triggers inside transformers 5 (nothing to act on)."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r"`is_gradient_checkpointing` is deprecated", category=FutureWarning
        )
        yield
