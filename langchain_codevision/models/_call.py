"""Per-call settings: instance defaults merged with what ``invoke(..., **kwargs)`` overrides."""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_codevision.protocol.tags import DEFAULT_TOOL_NAME

__all__ = ["CallSettings", "normalize_tool_choice"]

# Keyword arguments LangChain passes along that are not generation settings.
_IGNORED = {
    "stream",
    "ls_structured_output_format",
    "run_name",
    "n",
    "strict",
    "parallel_tool_calls",
}


@dataclass(frozen=True)
class CallSettings:
    """Everything one generation needs to know besides the messages.

    Attributes:
        model: The checkpoint to run (the instance's, or a per-call override).
        max_new_tokens: Token budget for the answer.
        temperature: ``0`` greedy, ``> 0`` sampling, ``None`` the checkpoint's default.
        top_p: Nucleus sampling mass.
        top_k: Top-k sampling.
        repetition_penalty: Penalty on repeated tokens.
        seed: Seed for sampling.
        stop: Stop sequences (output ends before the first).
        timeout: Wall-clock limit for generation, in seconds (``max_time``).
        tools: OpenAI-format schemas of the bound tools.
        tool_choice: ``None`` (auto), ``"none"``, ``"required"`` or a tool name.
        extra: Further keyword arguments for ``model.generate``.
    """

    model: str
    max_new_tokens: int
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    repetition_penalty: float | None = None
    seed: int | None = None
    stop: tuple[str, ...] = ()
    timeout: float | None = None
    tools: tuple[dict[str, Any], ...] = ()
    tool_choice: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def resolve(
        cls, defaults: dict[str, Any], stop: Sequence[str] | None, kwargs: dict[str, Any]
    ) -> CallSettings:
        """Merge instance defaults with per-call keyword arguments.

        Args:
            defaults: The instance's settings, keyed like this class's fields.
            stop: Stop sequences given to this call (they replace the instance's).
            kwargs: Per-call keyword arguments (``model``, ``temperature``, ``max_tokens``,
                ``tools``, ``tool_choice``, ...); the rest go to ``model.generate``.

        Returns:
            The settings for this call.
        """
        values = dict(defaults)
        extra = dict(values.pop("extra", {}))
        for key, value in kwargs.items():
            if key in _IGNORED:
                continue
            if key in ("max_tokens", "max_new_tokens"):
                values["max_new_tokens"] = value
            elif key in cls.__dataclass_fields__ and key not in ("extra", "stop"):
                values[key] = value
            else:
                extra[key] = value
        chosen_stop = stop if stop is not None else values.get("stop")
        values["stop"] = tuple(s for s in (chosen_stop or ()) if s)
        values["tools"] = tuple(values.get("tools") or ())
        values["tool_choice"] = normalize_tool_choice(values.get("tool_choice"), values["tools"])
        return cls(**values, extra=extra)

    @property
    def parses_tools(self) -> bool:
        """Whether generated text is read for tool calls."""
        return bool(self.tools) and self.tool_choice != "none"

    @property
    def tool_names(self) -> list[str]:
        """Names of the bound tools."""
        return [tool["function"]["name"] for tool in self.tools]

    @property
    def fallback_tool(self) -> str | None:
        """The bound tool a bare fenced code block is attributed to, if any."""
        return DEFAULT_TOOL_NAME if DEFAULT_TOOL_NAME in self.tool_names else None

    @property
    def prefill(self) -> str:
        """Text that starts the answer, to force a tool call when ``tool_choice`` asks.

        ``"required"`` opens a ``<tool_call>`` (and names the tool when only one is bound);
        a tool name opens a call of that tool. The model writes the rest.
        """
        if not self.parses_tools or self.tool_choice is None:
            return ""
        names = self.tool_names
        if self.tool_choice == "required" and len(names) != 1:
            return '<tool_call>\n{"name": "'
        name = names[0] if self.tool_choice == "required" else self.tool_choice
        return f'<tool_call>\n{{"name": {json.dumps(name, ensure_ascii=False)}, "arguments": '

    def batch_key(self) -> tuple[Any, ...]:
        """Calls with equal keys can share one ``generate``."""
        return (
            self.model,
            self.max_new_tokens,
            self.temperature,
            self.top_p,
            self.top_k,
            self.repetition_penalty,
            self.seed,
            self.stop,
            self.timeout,
            json.dumps(self.extra, sort_keys=True, default=repr),
        )

    def generation_config(self, base: Any, eos_token_ids: list[int], pad_token_id: int) -> Any:
        """A copy of the checkpoint's ``GenerationConfig`` with this call's settings."""
        config = copy.deepcopy(base)
        config.max_new_tokens = self.max_new_tokens
        config.eos_token_id = list(eos_token_ids)
        config.pad_token_id = pad_token_id
        if self.temperature is not None:
            config.do_sample = self.temperature > 0
            config.temperature = self.temperature if self.temperature > 0 else None
        if not config.do_sample:
            config.temperature = config.top_p = config.top_k = None
        else:
            if self.top_p is not None:
                config.top_p = self.top_p
            if self.top_k is not None:
                config.top_k = self.top_k
        if self.repetition_penalty is not None:
            config.repetition_penalty = self.repetition_penalty
        if self.stop:
            config.stop_strings = list(self.stop)
        if self.timeout is not None:
            config.max_time = float(self.timeout)
        for key, value in self.generation_extra(config).items():
            setattr(config, key, value)
        return config

    def generation_extra(self, config: Any) -> dict[str, Any]:
        """The ``extra`` settings that are ``GenerationConfig`` fields (e.g. ``min_new_tokens``)."""
        return {key: value for key, value in self.extra.items() if hasattr(config, key)}

    def generate_extra(self, config: Any) -> dict[str, Any]:
        """The ``extra`` settings passed to ``generate`` as keyword arguments."""
        return {key: value for key, value in self.extra.items() if not hasattr(config, key)}


def normalize_tool_choice(choice: Any, tools: Sequence[dict[str, Any]]) -> str | None:
    """Map a LangChain/OpenAI ``tool_choice`` to ``None``, "none", "required" or a name.

    Raises:
        ValueError: An unknown value, or a tool name that is not bound.
    """
    if choice in (None, "auto", False):
        return None
    if choice == "none":
        return "none"
    if choice in ("any", "required", True):
        return "required"
    if isinstance(choice, dict):
        function = choice.get("function") or {}
        choice = function.get("name") or choice.get("name")
    if isinstance(choice, str):
        names = [tool["function"]["name"] for tool in tools]
        if choice not in names:
            raise ValueError(f"tool_choice {choice!r} is not one of the bound tools {names}")
        return choice
    raise ValueError(f"unsupported tool_choice {choice!r}")
