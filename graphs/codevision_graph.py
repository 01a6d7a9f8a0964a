"""The CodeVision graph for ``langgraph dev`` / LangGraph Studio.

The model comes from the run's configuration (``configurable.model``) or the environment
(``CODEVISION_MODEL``: ``offline`` by default, ``openai:gpt-4o``, ``local:/path``;
``CODEVISION_BASE_URL`` for an OpenAI-compatible server); the protocol profile from
``configurable.profile`` or ``CODEVISION_PROFILE`` (``default``, or ``release`` for a model
fine-tuned by the CodeVision release). The graph is compiled without a checkpointer: the
LangGraph server brings its own.
"""

from __future__ import annotations

import os
from typing import Any

from langchain_codevision import create_codevision_graph
from langchain_codevision.model_spec import load_chat_model


def make_graph(config: dict[str, Any] | None = None) -> Any:
    """Graph factory: builds the model on demand, never at import."""
    configurable = (config or {}).get("configurable", {})
    model = load_chat_model(configurable.get("model"), base_url=configurable.get("base_url"))
    profile = configurable.get("profile") or os.environ.get("CODEVISION_PROFILE") or "default"
    kwargs = {"max_turns": int(configurable["max_turns"])} if "max_turns" in configurable else {}
    return create_codevision_graph(model, profile=profile, **kwargs)
