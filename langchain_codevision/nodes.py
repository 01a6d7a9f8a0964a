"""Moved to :mod:`langchain_codevision.loop.nodes`; this path keeps working."""

from .loop.nodes import CodeVisionNodes, Route

__all__ = ["CodeVisionNodes", "Route"]
