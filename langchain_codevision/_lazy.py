"""Public names that load their module on first use, so that importing a package stays cheap."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_names"]


def lazy_names(
    package: str, where: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``, whose public names live in modules.

    Args:
        package: The package's ``__name__``.
        where: Public name -> the module defining it, absolute or relative to ``package``.

    Example:
        >>> __getattr__, __dir__ = lazy_names(__name__, {"evaluate": "runner"})  # doctest: +SKIP
    """

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        absolute = module if module.startswith("langchain_codevision") else f"{package}.{module}"
        value = getattr(importlib.import_module(absolute), name)
        vars(sys.modules[package])[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(where)  # the public names, as tab completion should offer them

    return __getattr__, __dir__
