"""Choose a chat model from a short spec string (CLI, ``langgraph dev``, environment).

Specs:

* ``offline`` (default): the built-in offline policy (no weights, no network);
* ``openai:MODEL``: ``ChatOpenAI`` (``OPENAI_API_KEY``; ``OPENAI_BASE_URL`` or ``base_url``
  points it at an OpenAI-compatible server such as vLLM serving a fine-tuned model);
* ``local:PATH``: :class:`~langchain_codevision.models.ChatLocalVLM` over a local checkpoint
  (needs the ``local`` extra), optionally with a PEFT ``adapter``.

A spec that names no usable model raises :class:`ModelSpecError` (a ``ValueError``) whose
message says what to do.

Example:
    >>> model = load_chat_model("openai:codevision-7b", base_url="http://127.0.0.1:8000/v1")
    >>> model.model_name
    'codevision-7b'
"""

from __future__ import annotations

import os
from pathlib import Path

from langchain_core.language_models import BaseChatModel

__all__ = ["ENV_BASE_URL", "ENV_MODEL", "SPEC_FORMS", "ModelSpecError", "load_chat_model"]

ENV_MODEL = "CODEVISION_MODEL"
ENV_BASE_URL = "CODEVISION_BASE_URL"
SPEC_FORMS = "'offline', 'openai:MODEL' (e.g. openai:gpt-4o) or 'local:PATH'"
"""The spec forms, as error messages name them."""


class ModelSpecError(ValueError):
    """A model spec names no usable model (unknown form, missing extra, checkpoint or key)."""


def load_chat_model(
    spec: str | None = None,
    *,
    base_url: str | None = None,
    adapter: str | None = None,
    load: bool = False,
) -> BaseChatModel:
    """Build the chat model named by ``spec`` (default: ``$CODEVISION_MODEL`` or offline).

    Args:
        spec: ``offline``, ``openai:MODEL`` or ``local:PATH``.
        base_url: OpenAI-compatible server for ``openai:`` specs (default:
            ``$CODEVISION_BASE_URL``, then ``$OPENAI_BASE_URL``).
        adapter: PEFT adapter directory for a ``local:`` model.
        load: Load local weights now (errors surface here, not at the first call).

    Raises:
        ModelSpecError: The spec is malformed or names a model that cannot be used.
    """
    spec = (spec or os.environ.get(ENV_MODEL) or "offline").strip()
    kind, _, name = spec.partition(":")
    if adapter is not None and kind != "local":
        raise ModelSpecError(
            f"--adapter {adapter} applies to local:PATH models only, not {spec!r}; "
            "drop --adapter or use --model local:PATH"
        )
    if kind == "offline":
        from .models.ocr_policy import OfflineOCRModel

        return OfflineOCRModel()
    if kind == "openai":
        return _openai_model(spec, name, base_url)
    if kind == "local":
        return _local_model(spec, name, adapter, load)
    raise ModelSpecError(f"unknown model spec {spec!r}; use {SPEC_FORMS}")


def _openai_model(spec: str, name: str, base_url: str | None) -> BaseChatModel:
    if not name:
        raise ModelSpecError("spec 'openai:MODEL' needs a model name, e.g. openai:gpt-4o")
    import openai
    from langchain_openai import ChatOpenAI

    url = base_url or os.environ.get(ENV_BASE_URL)
    if url and not url.startswith(("http://", "https://")):
        raise ModelSpecError(
            f"base URL {url!r} is not an http(s) URL; pass e.g. --base-url http://127.0.0.1:8000/v1"
        )
    kwargs = {"base_url": url} if url else {}
    if url and not os.environ.get("OPENAI_API_KEY"):
        kwargs["api_key"] = "EMPTY"  # self-hosted servers usually need none
    try:
        return ChatOpenAI(model=name, **kwargs)
    except openai.OpenAIError as exc:
        raise ModelSpecError(
            f"{spec}: {exc}; set OPENAI_API_KEY, or pass --base-url for a self-hosted server"
        ) from exc


def _local_model(spec: str, name: str, adapter: str | None, load: bool) -> BaseChatModel:
    if not name:
        raise ModelSpecError("spec 'local:PATH' needs a model directory, e.g. local:./ckpt")
    if adapter is not None and not (Path(adapter).expanduser() / "adapter_config.json").is_file():
        raise ModelSpecError(
            f"--adapter {adapter} holds no adapter_config.json, so it is not a PEFT adapter; "
            "pass the folder a PEFT model was saved to (e.g. the adapter of codevision train)"
        )
    from .models import ChatLocalVLM

    model = ChatLocalVLM(model=name, adapter=adapter)
    if not load:
        return model
    try:
        return model.load()
    except ImportError as exc:
        raise ModelSpecError(
            f"{spec} needs the local extra ({exc}); "
            'install it with: pip install "langchain-codevision[local]"'
        ) from exc
    except (OSError, ValueError) as exc:
        hint = " and a PEFT adapter folder made for it" if adapter else ""
        raise ModelSpecError(
            f"{spec}: {exc}; pass a checkpoint folder written by save_pretrained{hint}"
        ) from exc
