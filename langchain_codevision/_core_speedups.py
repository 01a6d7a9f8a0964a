"""Memoize one pure, uncached lookup in langchain-core that dominates image-heavy calls.

``langchain_core.messages.content._get_data_content_block_types`` derives five literal
strings from the ``DataContentBlock`` TypedDicts with ``typing.get_type_hints`` on every
call, and every ``BaseChatModel.invoke`` calls it once per image block while formatting the
messages for tracing: ~3.5 ms per image, about a fifth of this package's host time per
episode. The answer depends only on those static types, so it is computed once.

:func:`install` changes nothing when langchain-core no longer has the function, or has it
cached already.
"""

from __future__ import annotations

import functools
import inspect

__all__ = ["install"]


def install() -> bool:
    """Cache the lookup (idempotent); whether it is cached now."""
    try:
        from langchain_core.messages import content
    except ImportError:  # pragma: no cover - langchain-core is a dependency
        return False
    lookup = getattr(content, "_get_data_content_block_types", None)
    if lookup is None or not inspect.isfunction(lookup):
        return hasattr(lookup, "cache_info")
    if inspect.signature(lookup).parameters:
        return False  # not the argument-free lookup this was written for
    content._get_data_content_block_types = functools.cache(lookup)
    return True
