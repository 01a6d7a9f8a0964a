"""Moved to :mod:`langchain_codevision.loop.state`; this path keeps working."""

from .loop.state import CodeVisionInput, CodeVisionOutput, CodeVisionState, Decision, Step

__all__ = ["CodeVisionInput", "CodeVisionOutput", "CodeVisionState", "Decision", "Step"]
