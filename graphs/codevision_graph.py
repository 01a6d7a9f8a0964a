"""The CodeVision graph for ``langgraph dev`` / LangGraph Studio.

The model comes from the run's configuration (``configurable.model``) or the environment
(``CODEVISION_MODEL``: ``offline`` by default, ``openai:gpt-4o``, ``local:/path``;
``CODEVISION_BASE_URL`` for an OpenAI-compatible server). The graph is compiled without a
checkpointer: the LangGraph server brings its own.
"""

from __future__ import annotations

from typing import Any

from langchain_codevision import create_codevision_graph
from langchain_codevision.model_spec import load_chat_model


def make_graph(config: dict[str, Any] | None = None) -> Any:
    """Graph factory: builds the model on demand, never at import."""
    configurable = (config or {}).get("configurable", {})
    model = load_chat_model(configurable.get("model"), base_url=configurable.get("base_url"))
    return create_codevision_graph(model, max_turns=int(configurable.get("max_turns", 12)))
