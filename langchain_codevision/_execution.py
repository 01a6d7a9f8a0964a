"""Moved to :mod:`langchain_codevision.loop.executor`; this path keeps working."""

from .loop.executor import ExecutionWork, PlannedCall, ReplyFactory, ToolExecutor

__all__ = ["ExecutionWork", "PlannedCall", "ReplyFactory", "ToolExecutor"]
