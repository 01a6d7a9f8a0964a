"""Moved to :mod:`langchain_codevision.protocol.tags`; this path keeps working."""

from .protocol.tags import (
    DEFAULT_TOOL_NAME,
    MalformedToolCall,
    OutputKind,
    ParsedOutput,
    ParsedToolCall,
    format_tool_call,
    parse_model_output,
)

__all__ = [
    "DEFAULT_TOOL_NAME",
    "MalformedToolCall",
    "OutputKind",
    "ParsedOutput",
    "ParsedToolCall",
    "format_tool_call",
    "parse_model_output",
]
