"""Run ``generate`` on a loaded model: padded batches, and token streams in a thread."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import AIMessageChunk
from langchain_core.outputs import ChatGenerationChunk

from langchain_codevision.models._call import CallSettings
from langchain_codevision.models._deps import require_local_stack
from langchain_codevision.models._generation import (
    StreamAssembler,
    TokenStreamer,
    cancel_criteria,
    last_chunk,
)
from langchain_codevision.models._loading import LoadedVLM

__all__ = ["Prepared", "RawOutput", "StreamRun", "run_batch"]


@dataclass
class Prepared:
    """One request, rendered and ready to encode.

    Attributes:
        text: The prompt text (chat template output, plus any prefill).
        images: Its images, in placeholder order.
        call: Its settings.
        loaded: The model it runs on.
    """

    text: str
    images: list[Any]
    call: CallSettings
    loaded: LoadedVLM

    @property
    def prefill(self) -> str:
        """Text the answer was started with (a forced tool call)."""
        return self.call.prefill


@dataclass
class RawOutput:
    """What one row of a ``generate`` call produced."""

    text: str
    input_tokens: int
    output_tokens: int
    ended_by_eos: bool


def encode(loaded: LoadedVLM, texts: list[str], images: list[Any]) -> Any:
    """Tokenize prompts and preprocess images into model inputs on the model's device.

    Raises:
        ValueError: The processor rejected an image or the placeholders do not match.
    """
    try:
        inputs = loaded.processor(
            text=texts, images=images or None, return_tensors="pt", padding=True
        )
    except (ValueError, TypeError, RuntimeError, IndexError) as exc:
        raise ValueError(f"the processor of {loaded.name!r} rejected the input: {exc}") from exc
    return inputs.to(loaded.device)


def generate_kwargs(loaded: LoadedVLM, call: CallSettings) -> dict[str, Any]:
    """Keyword arguments for ``model.generate`` under ``call``'s settings."""
    config = call.generation_config(
        loaded.model.generation_config, loaded.eos_token_ids, loaded.pad_token_id
    )
    kwargs: dict[str, Any] = {"generation_config": config, **call.generate_extra(config)}
    if call.stop:
        kwargs["tokenizer"] = loaded.tokenizer  # needed by stop strings
    return kwargs


def run_batch(batch: Sequence[Prepared]) -> list[RawOutput]:
    """Generate for several prepared requests (same model and settings) in one call."""
    torch = require_local_stack().torch
    loaded, call = batch[0].loaded, batch[0].call
    inputs = encode(loaded, [item.text for item in batch], [i for r in batch for i in r.images])
    kwargs = generate_kwargs(loaded, call)
    with loaded.lock, torch.inference_mode(), seeded(torch, call.seed):
        output = loaded.model.generate(**inputs, **kwargs)
    prompt_length = inputs["input_ids"].shape[1]
    ends = set(loaded.eos_token_ids) | {loaded.pad_token_id}
    results = []
    for row, mask in zip(output, inputs["attention_mask"], strict=True):
        new = row[prompt_length:].tolist()
        cut = next((i for i, token in enumerate(new) if token in ends), None)
        eos = cut is not None and new[cut] in loaded.eos_token_ids
        kept = new if cut is None else new[: cut + 1 if eos else cut]
        text = loaded.tokenizer.decode(kept, skip_special_tokens=True)
        results.append(RawOutput(text, int(mask.sum()), len(kept), eos))
    return results


class StreamRun:
    """One streaming generation, running in a background thread.

    The thread's streamer pushes decoded pieces (then ``TokenStreamer.END``, or an
    exception) into ``sink``; the consumer hands each item to :meth:`handle`.

    Args:
        prepared: The request.
        sink: Receives items from the generation thread (a queue's ``put``).
    """

    def __init__(self, prepared: Prepared, sink: Callable[[Any], None]) -> None:
        stack = require_local_stack()
        torch, transformers = stack.torch, stack.transformers
        loaded, call = prepared.loaded, prepared.call
        self._loaded = loaded
        self._call = call
        self._event = threading.Event()
        self._assembler = StreamAssembler(
            stop=call.stop,
            tools_bound=call.parses_tools,
            fallback_tool=call.fallback_tool,
            prefill=prepared.prefill,
        )
        self._streamer = TokenStreamer(loaded.tokenizer, sink)
        inputs = encode(loaded, [prepared.text], prepared.images)
        self._input_tokens = int(inputs["attention_mask"].sum())
        kwargs = generate_kwargs(loaded, call)
        criteria = transformers.StoppingCriteriaList(
            [cancel_criteria(self._event, torch, transformers.StoppingCriteria)]
        )

        def generate() -> None:
            try:
                with loaded.lock, torch.inference_mode(), seeded(torch, call.seed):
                    loaded.model.generate(
                        **inputs, **kwargs, streamer=self._streamer, stopping_criteria=criteria
                    )
            except BaseException as exc:
                sink(exc)

        self.thread = threading.Thread(target=generate, name="ChatLocalVLM-stream", daemon=True)
        self.thread.start()

    def cancel(self) -> None:
        """Ask the generation to stop at the next token."""
        self._event.set()

    def handle(self, item: Any) -> tuple[ChatGenerationChunk | None, bool]:
        """Turn one streamed item into a chunk (or none); say whether the stream is over."""
        if isinstance(item, BaseException):
            raise item
        if item is TokenStreamer.END:
            eos = self._streamer.last_token in self._loaded.eos_token_ids
            rest, result = self._assembler.close(
                ended_by_eos=eos, hit_length=not (eos or self._assembler.stopped)
            )
            usage = {"input_tokens": self._input_tokens, "output_tokens": self._streamer.count}
            message = last_chunk(rest, result, {"model_name": self._call.model}, usage)
            info = {"finish_reason": result.finish_reason}
            return ChatGenerationChunk(message=message, generation_info=info), True
        delta = self._assembler.feed(item)
        if self._assembler.stopped:
            self.cancel()
        if not delta:
            return None, False
        return ChatGenerationChunk(message=AIMessageChunk(content=delta)), False


@contextlib.contextmanager
def seeded(torch: Any, seed: int | None) -> Iterator[None]:
    """Seed torch for one generation without touching the global random state."""
    if seed is None:
        yield
        return
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield
