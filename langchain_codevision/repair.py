"""Moved to :mod:`langchain_codevision.protocol.code_repair`; this path keeps working."""

from .protocol.code_repair import guard_crops, repair_code, strip_fences

__all__ = ["guard_crops", "repair_code", "strip_fences"]
