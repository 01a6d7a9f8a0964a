"""A LangChain chat model over a local Hugging Face vision-language checkpoint.

:class:`ChatLocalVLM` runs ``AutoModelForImageTextToText`` + ``AutoProcessor`` in-process
(Qwen2.5-VL, Qwen3-VL and other models whose processors have a chat template), optionally
with a PEFT/LoRA adapter. It speaks LangChain's message and tool-calling interfaces, so it
drops into the CodeVision graph, ``create_agent`` or any LCEL chain:

* messages with standard image blocks (base64, ``data:``/``file://`` URLs, local paths) or
  OpenAI ``image_url`` parts, in human and tool messages;
* ``bind_tools`` renders the tools through the checkpoint's chat template (or in the same
  hermes format when the template has no tool support) and reads ``<tool_call>`` JSON out
  of the generated text with :func:`langchain_codevision.parsing.parse_model_output`;
* token streaming, concurrent ``batch`` calls merged into one padded ``generate``, usage
  metadata and finish reasons.

Weights load on first use, so constructing the model is cheap.

Example:
    >>> from langchain_codevision.models import ChatLocalVLM
    >>> llm = ChatLocalVLM(model="/models/CodeVision-7B", torch_dtype="bfloat16",
    ...                    max_new_tokens=1024, temperature=0)  # doctest: +SKIP
    >>> page = {"type": "image", "url": "page.png"}
    >>> question = {"type": "text", "text": "What does it say?"}
    >>> llm.invoke([HumanMessage([page, question])])  # doctest: +SKIP

Serving at scale is vLLM's job, not this class's: start an OpenAI-compatible server
(``vllm serve /models/CodeVision-7B``) and use
``ChatOpenAI(base_url="http://host:8000/v1", model="/models/CodeVision-7B", api_key="EMPTY")``
in the same places.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import queue
import threading
import warnings
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LangSmithParams, LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import AliasChoices, ConfigDict, Field, PrivateAttr, model_validator

from langchain_codevision.models._batching import MicroBatcher
from langchain_codevision.models._call import CallSettings, normalize_tool_choice
from langchain_codevision.models._generation import cut_at_stop, finish, to_message
from langchain_codevision.models._loading import LoadedVLM, LoadOptions, load_shared
from langchain_codevision.models._messages import convert_messages
from langchain_codevision.models._runner import Prepared, RawOutput, StreamRun, run_batch

__all__ = ["ChatLocalVLM"]


class ChatLocalVLM(BaseChatModel):
    """Chat with a local Hugging Face vision-language model (see the module docs).

    Example:
        >>> llm = ChatLocalVLM(model="/models/Qwen2.5-VL-7B-Instruct", adapter="/ckpt/lora",
        ...                    device="cuda", torch_dtype="bfloat16")  # doctest: +SKIP
        >>> llm.bind_tools([code_image_tool]).invoke(messages)  # doctest: +SKIP

    For serving at scale use vLLM's OpenAI-compatible server with
    ``ChatOpenAI(base_url="http://host:8000/v1", model=..., api_key="EMPTY")``.
    """

    model_config = ConfigDict(populate_by_name=True, arbitrary_types_allowed=True)

    model_name: str = Field(
        alias="model", validation_alias=AliasChoices("model", "model_name", "model_id")
    )
    """Checkpoint directory (or a hub id already in the local Hugging Face cache)."""
    adapter: str | None = None
    """Directory of a PEFT (LoRA) adapter to apply to the checkpoint."""
    merge_adapter: bool = False
    """Merge the adapter into the base weights after loading (faster generation)."""
    device: str | None = None
    """Device for the model ("cpu", "cuda", "cuda:1", "mps"); default: best available."""
    torch_dtype: str | None = Field(
        default=None, validation_alias=AliasChoices("torch_dtype", "dtype")
    )
    """Weight dtype ("auto", "bfloat16", "float16", "float32"); default: the checkpoint's."""
    device_map: str | dict[str, Any] | None = None
    """Accelerate device map (e.g. "auto") for models split across devices."""
    max_new_tokens: int = Field(
        default=512, ge=1, validation_alias=AliasChoices("max_new_tokens", "max_tokens")
    )
    """Most tokens to generate per answer."""
    temperature: float | None = Field(default=None, ge=0)
    """Sampling temperature: 0 decodes greedily; None uses the checkpoint's setting."""
    top_p: float | None = None
    """Nucleus sampling probability mass."""
    top_k: int | None = None
    """Sample only among the k most likely tokens."""
    repetition_penalty: float | None = None
    """Penalty on repeating tokens (1.0 is none)."""
    seed: int | None = None
    """Seed for sampling, for reproducible samples."""
    stop: list[str] | None = None
    """Stop sequences; the answer ends before the first one."""
    timeout: float | None = None
    """Wall-clock limit for one generation in seconds (the answer is cut there)."""
    max_retries: int = 0
    """Accepted for interface compatibility; local generation is not retried."""
    streaming: bool = False
    """Stream internally even for ``invoke`` (callbacks then see every token)."""
    min_pixels: int | None = None
    """Smallest image area after resizing, in pixels (processor option)."""
    max_pixels: int | None = None
    """Largest image area after resizing, in pixels (bounds image tokens)."""
    chat_template: str | None = None
    """A Jinja chat template replacing the checkpoint's."""
    profile: str | None = None
    """A protocol profile whose chat template to render with: ``"release"`` renders with
    the CodeVision release's training template (unless ``chat_template`` is given)."""
    trust_remote_code: bool = False
    """Allow checkpoints that ship their own modelling code."""
    attn_implementation: str | None = None
    """Attention kernel ("sdpa", "eager", "flash_attention_2")."""
    load_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Further keyword arguments for ``from_pretrained`` (e.g. a quantization config)."""
    image_loader: Callable[[str], Any] | None = Field(default=None, exclude=True)
    """Fetches http(s) image URLs (returns PIL, bytes or a path); none: URLs are refused."""
    batch_size: int = Field(default=8, ge=1)
    """Most concurrent requests generated together in one padded batch."""
    batch_wait_s: float = Field(default=0.05, ge=0)
    """Longest wait for concurrent requests to join a batch (single calls never wait)."""
    model_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Further keyword arguments for ``model.generate``."""

    _models: dict[str, LoadedVLM] = PrivateAttr(default_factory=dict)
    _batchers: dict[str, MicroBatcher[Prepared, RawOutput]] = PrivateAttr(default_factory=dict)
    _load_lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @model_validator(mode="before")
    @classmethod
    def _sweep_extra_kwargs(cls, values: Any) -> Any:
        """Move unknown constructor arguments into ``model_kwargs`` (with a warning)."""
        if not isinstance(values, dict):
            return values
        known = set()
        for name, info in cls.model_fields.items():
            known.add(name)
            if info.alias:
                known.add(info.alias)
            if isinstance(info.validation_alias, AliasChoices):
                known.update(str(choice) for choice in info.validation_alias.choices)
        extra = dict(values.get("model_kwargs") or {})
        for key in [k for k in values if k not in known]:
            warnings.warn(
                f"{key} is not a ChatLocalVLM field; it was moved to model_kwargs and will "
                "be passed to model.generate",
                stacklevel=2,
            )
            extra[key] = values.pop(key)
        if extra:
            values["model_kwargs"] = extra
        return values

    def __deepcopy__(self, memo: dict[int, Any]) -> ChatLocalVLM:
        """Copy the settings; the copy loads weights on first use (shared while loaded)."""
        clone = self.model_copy()
        clone.__dict__.update({k: copy.deepcopy(v, memo) for k, v in self.__dict__.items()})
        clone.__pydantic_private__ = {
            "_models": {},
            "_batchers": {},
            "_load_lock": threading.Lock(),
        }
        return clone

    # ----------------------------------------------------------------- LangChain API

    @property
    def _llm_type(self) -> str:
        return "local-vlm"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "adapter": self.adapter,
            "merge_adapter": self.merge_adapter,
            "max_new_tokens": self.max_new_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "top_k": self.top_k,
            "stop": self.stop,
        }

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = LangSmithParams(
            ls_provider="transformers",
            ls_model_name=kwargs.get("model") or self.model_name,
            ls_model_type="chat",
            ls_max_tokens=kwargs.get("max_tokens") or self.max_new_tokens,
        )
        temperature = kwargs.get("temperature", self.temperature)
        if temperature is not None:
            params["ls_temperature"] = temperature
        if stop or self.stop:
            params["ls_stop"] = stop or self.stop
        return params

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | bool | dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools: their schemas go into the prompt, calls come back as ``tool_calls``.

        Args:
            tools: Tools, functions, pydantic models or OpenAI tool schemas.
            tool_choice: ``None``/``"auto"``: the model decides; ``"any"``/``"required"``
                (or ``True``): the answer starts with an opened ``<tool_call>``; a tool
                name (or ``{"type": "function", "function": {"name": ...}}``): it starts
                with a call of that tool, the model writes the arguments; ``"none"``: tools
                are not shown and calls are not parsed. Arguments are not constrained to
                the schema: the model writes them.
            **kwargs: Further call settings to bind. ``strict`` and ``parallel_tool_calls``
                (of hosted APIs) are accepted and ignored; every call the model writes is
                returned.

        Returns:
            A runnable returning ``AIMessage`` with ``tool_calls``/``invalid_tool_calls``.
        """
        schemas = [convert_to_openai_tool(tool) for tool in tools]
        normalize_tool_choice(tool_choice, schemas)  # fail early on a bad choice
        return super().bind(tools=schemas, tool_choice=tool_choice, **kwargs)

    def batch(
        self,
        inputs: list[LanguageModelInput],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[AIMessage]:
        """Run several inputs; concurrent ones share padded ``generate`` calls."""
        with self._expecting(len(inputs), config, kwargs):
            return super().batch(inputs, config, return_exceptions=return_exceptions, **kwargs)

    async def abatch(
        self,
        inputs: list[LanguageModelInput],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[AIMessage]:
        """Async :meth:`batch`."""
        with self._expecting(len(inputs), config, kwargs):
            return await super().abatch(
                inputs, config, return_exceptions=return_exceptions, **kwargs
            )

    @property
    def codevision_dialect(self) -> str:
        """Local checkpoints speak the text protocol (tags in the generated text)."""
        return "text"

    def _template(self) -> str | None:
        if self.chat_template is not None or self.profile in (None, "default"):
            return self.chat_template
        if self.profile != "release":
            raise ValueError(f"profile must be 'release', 'default' or None, got {self.profile!r}")
        from langchain_codevision.protocol import release_chat_template

        return release_chat_template()

    def render_prompt(self, messages: LanguageModelInput, **kwargs: Any) -> str:
        """Return the prompt text the model sees (images appear as placeholders).

        Args:
            messages: A string, messages, or a prompt value.
            **kwargs: Call settings such as ``tools`` (OpenAI schemas) and ``tool_choice``.

        Returns:
            The chat-template rendering, ending with the assistant header (and any text a
            forced ``tool_choice`` starts the answer with).
        """
        call = self._settings(None, kwargs)
        loaded = self._loaded(call.model)
        return self._prepare(self._convert_input(messages).to_messages(), call, loaded).text

    def load(self) -> ChatLocalVLM:
        """Load the weights now instead of on first use; return ``self``."""
        self._loaded(self.model_name)
        return self

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        call = self._settings(stop, kwargs)
        loaded = self._loaded(call.model)
        batcher = self._batcher(call.model)
        with batcher.preparing() as ticket:
            prepared = self._prepare(messages, call, loaded)
            raw = batcher.submit(call.batch_key(), prepared, ticket)
        text, stopped = cut_at_stop(prepared.prefill + raw.text, call.stop)
        result = finish(
            text,
            tools_bound=call.parses_tools,
            stopped=stopped or raw.ended_by_eos,
            hit_length=not (stopped or raw.ended_by_eos),
            fallback_tool=call.fallback_tool,
        )
        usage = {"input_tokens": raw.input_tokens, "output_tokens": raw.output_tokens}
        message = to_message(result, {"model_name": call.model}, usage)
        info = {"finish_reason": result.finish_reason}
        return ChatResult(generations=[ChatGeneration(message=message, generation_info=info)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        call = self._settings(stop, kwargs)
        loaded = self._loaded(call.model)
        prepared = self._prepare(messages, call, loaded)
        pieces: queue.Queue[Any] = queue.Queue()
        run = StreamRun(prepared, pieces.put)
        try:
            while True:
                chunk, done = run.handle(pieces.get())
                if chunk is not None:
                    if run_manager and isinstance(chunk.message.content, str):
                        run_manager.on_llm_new_token(chunk.message.content, chunk=chunk)
                    yield chunk
                if done:
                    return
        finally:
            run.cancel()
            run.thread.join()

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        call = self._settings(stop, kwargs)
        loaded = await asyncio.to_thread(self._loaded, call.model)
        prepared = await asyncio.to_thread(self._prepare, messages, call, loaded)
        loop = asyncio.get_running_loop()
        pieces: asyncio.Queue[Any] = asyncio.Queue()

        def sink(item: Any) -> None:
            # RuntimeError: the loop is gone, the consumer stopped listening.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(pieces.put_nowait, item)

        run = await asyncio.to_thread(StreamRun, prepared, sink)
        try:
            while True:
                chunk, done = run.handle(await pieces.get())
                if chunk is not None:
                    if run_manager and isinstance(chunk.message.content, str):
                        await run_manager.on_llm_new_token(chunk.message.content, chunk=chunk)
                    yield chunk
                if done:
                    return
        finally:
            run.cancel()
            await asyncio.to_thread(run.thread.join)

    # ----------------------------------------------------------------- internals

    def _settings(self, stop: list[str] | None, kwargs: dict[str, Any]) -> CallSettings:
        defaults = {
            "model": self.model_name,
            "max_new_tokens": self.max_new_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "top_k": self.top_k,
            "repetition_penalty": self.repetition_penalty,
            "seed": self.seed,
            "stop": self.stop,
            "timeout": self.timeout,
            "extra": self.model_kwargs,
        }
        return CallSettings.resolve(defaults, stop, kwargs)

    def _loaded(self, name: str) -> LoadedVLM:
        with self._load_lock:
            if name not in self._models:
                own = name == self.model_name
                options = LoadOptions(
                    adapter=self.adapter if own else None,
                    merge_adapter=self.merge_adapter,
                    device=self.device,
                    torch_dtype=self.torch_dtype,
                    device_map=self.device_map,
                    min_pixels=self.min_pixels,
                    max_pixels=self.max_pixels,
                    chat_template=self._template(),
                    trust_remote_code=self.trust_remote_code,
                    attn_implementation=self.attn_implementation,
                    load_kwargs=tuple(self.load_kwargs.items()),
                )
                self._models[name] = load_shared(name, options)
            return self._models[name]

    def _batcher(self, name: str) -> MicroBatcher[Prepared, RawOutput]:
        with self._load_lock:
            if name not in self._batchers:
                self._batchers[name] = MicroBatcher(
                    run_batch, max_batch=self.batch_size, max_wait_s=self.batch_wait_s
                )
            return self._batchers[name]

    @contextlib.contextmanager
    def _expecting(
        self, count: int, config: RunnableConfig | list[RunnableConfig] | None, kwargs: Any
    ) -> Iterator[None]:
        """Tell the batcher how many concurrent calls a ``batch`` is about to make."""
        first = config[0] if isinstance(config, list) and config else config
        limit = (first or {}).get("max_concurrency") if isinstance(first, dict) else None
        name = kwargs.get("model") or self.model_name
        with self._batcher(name).expecting(min(count, limit or count)):
            yield

    def _prepare(
        self, messages: Sequence[BaseMessage], call: CallSettings, loaded: LoadedVLM
    ) -> Prepared:
        prompt = convert_messages(
            messages,
            features=loaded.features,
            tools=call.tools if call.parses_tools else None,
            image_loader=self.image_loader,
        )
        extra = {"tools": prompt.tools} if prompt.tools else {}
        try:
            text = loaded.processor.apply_chat_template(
                prompt.conversation, add_generation_prompt=True, tokenize=False, **extra
            )
        except Exception as exc:  # jinja2 errors carry the template's own message
            raise ValueError(f"the chat template of {loaded.name!r} failed: {exc}") from exc
        return Prepared(str(text) + call.prefill, prompt.images, call, loaded)
