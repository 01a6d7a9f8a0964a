"""Moved to :mod:`langchain_codevision.loop.graph`; this path keeps working."""

from .loop.graph import FROM_PROFILE, create_codevision_graph, resolve_dialect

__all__ = ["FROM_PROFILE", "create_codevision_graph", "resolve_dialect"]
