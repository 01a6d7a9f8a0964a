"""Scripted turns for GRPO smoke runs: replace chosen completions with fixed text.

A tiny random model never writes a tool call, so tests and benchmarks that must exercise
the kernel-backed tool loop replace some generated completions with scripted replies
(a real ``<tool_call>``, an ``<answer>``). Everything else (tokenisation, tool execution,
masking, reward, optimisation) stays TRL's own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["Script", "script_rollouts"]

Script = Callable[[int, int], "str | None"]
"""``(generation_call, position) -> reply text or None`` (None keeps the model's)."""


def script_rollouts(trainer: Any, script: Script) -> Callable[[], None]:
    """Patch ``trainer`` so ``script`` may replace completions; returns the undo function.

    ``generation_call`` counts the trainer's generate calls from 0 (the first turn of a
    batch is call 0, 2, ... only when no tool ran; each tool-loop iteration is one call),
    ``position`` is the completion's index within that call.
    """
    original = trainer._generate_single_turn
    tokenizer = getattr(trainer.processing_class, "tokenizer", trainer.processing_class)
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    calls = {"n": 0}

    def generate(prompt_ids: Any, *args: Any, **kwargs: Any) -> Any:
        completion_ids, logprobs = original(prompt_ids, *args, **kwargs)
        turn = calls["n"]
        calls["n"] += 1
        for position in range(len(completion_ids)):
            text = script(turn, position)
            if text is not None:
                completion_ids[position] = [*tokenizer.encode(text, add_special_tokens=False), end]
                if logprobs is not None:
                    logprobs[position] = [0.0] * len(completion_ids[position])
        return completion_ids, logprobs

    trainer._generate_single_turn = generate

    def undo() -> None:
        trainer._generate_single_turn = original

    return undo
