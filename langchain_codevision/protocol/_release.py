"""Read the CodeVision release's protocol files shipped as package data (``release/``).

The files are the release's own (Apache-2.0, see ``release/NOTICE``); this module only
reads them, unchanged.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

__all__ = ["release_chat_template", "release_system_prompt", "release_tool_schema"]


@functools.cache
def _read(name: str) -> str:
    return resources.files(__package__).joinpath("release", name).read_text(encoding="utf-8")


def release_system_prompt() -> str:
    """The release's system prompt, byte for byte (``sp.txt`` there)."""
    return _read("system_prompt.txt")


def release_tool_schema() -> dict[str, Any]:
    """The release's ``code_image_tool`` schema (a fresh copy; key order as the model saw it)."""
    return json.loads(_read("tool_schema.json"))


def release_chat_template() -> str:
    """The release's training chat template (Jinja), byte for byte."""
    return _read("chat_template.jinja")
