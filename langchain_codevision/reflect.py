"""Moved to :mod:`langchain_codevision.protocol` (failures, hints, reply texts).

This path keeps working: :class:`Failure` is the protocol's one failure record,
:func:`failure_reply` the default profile's error text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .protocol import DefaultReplies, Failure, hint_for, make_failure, trim_for_model

__all__ = ["Failure", "failure_reply", "hint_for", "make_failure", "trim_for_model"]


def failure_reply(item: Mapping[str, Any], images: Sequence[Mapping[str, Any]]) -> str:
    """The default profile's ``Error: ...`` text for a failure record."""
    return DefaultReplies().failure(item, images)
