"""Moved to :mod:`langchain_codevision.loop.nodes`; this path keeps working.

``extract_answer`` is the protocol's (:func:`langchain_codevision.protocol.extract_answer`).
"""

from .loop.nodes import CodeVisionNodes, Route
from .protocol import extract_answer

__all__ = ["CodeVisionNodes", "Route", "extract_answer"]
