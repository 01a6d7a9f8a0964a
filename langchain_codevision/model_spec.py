"""Choose a chat model from a short spec string (CLI, ``langgraph dev``, environment).

Specs:

* ``offline`` (default): :class:`~langchain_codevision.offline.OfflineOrientationModel`;
* ``openai:MODEL``: ``ChatOpenAI`` (``OPENAI_API_KEY``; ``OPENAI_BASE_URL`` or ``base_url``
  points it at an OpenAI-compatible server such as vLLM serving a fine-tuned model);
* ``local:PATH``: :class:`~langchain_codevision.models.ChatLocalVLM` over a local checkpoint
  (needs the ``local`` extra).
"""

from __future__ import annotations

import os

from langchain_core.language_models import BaseChatModel

ENV_MODEL = "CODEVISION_MODEL"
ENV_BASE_URL = "CODEVISION_BASE_URL"


def load_chat_model(spec: str | None = None, *, base_url: str | None = None) -> BaseChatModel:
    """Build the chat model named by ``spec`` (default: ``$CODEVISION_MODEL`` or offline)."""
    spec = (spec or os.environ.get(ENV_MODEL) or "offline").strip()
    kind, _, name = spec.partition(":")
    if kind == "offline":
        from .models.ocr_policy import OfflineOCRModel

        return OfflineOCRModel()
    if kind == "openai":
        if not name:
            raise ValueError("spec 'openai:MODEL' needs a model name, e.g. openai:gpt-4o")
        from langchain_openai import ChatOpenAI

        url = base_url or os.environ.get(ENV_BASE_URL)
        kwargs = {"base_url": url} if url else {}
        if url and not os.environ.get("OPENAI_API_KEY"):
            kwargs["api_key"] = "EMPTY"  # self-hosted servers usually need none
        return ChatOpenAI(model=name, **kwargs)
    if kind == "local":
        if not name:
            raise ValueError("spec 'local:PATH' needs a model directory")
        from .models import ChatLocalVLM

        return ChatLocalVLM(model=name)
    raise ValueError(f"unknown model spec {spec!r}; use 'offline', 'openai:MODEL' or 'local:PATH'")
