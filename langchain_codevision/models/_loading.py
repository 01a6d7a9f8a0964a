"""Load a local vision-language checkpoint (and a PEFT adapter) once, on first use."""

from __future__ import annotations

import json
import logging
import re
import threading
import weakref
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from langchain_codevision.models._deps import quiet_peft, require_local_stack
from langchain_codevision.models._messages import TemplateFeatures

__all__ = ["LoadOptions", "LoadedVLM", "load_shared", "load_vlm", "probe_template"]

logger = logging.getLogger(__name__)

_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
_PROBE = "zq_probe"


@dataclass(frozen=True)
class LoadOptions:
    """How to load a checkpoint (the loading half of ``ChatLocalVLM``'s fields)."""

    adapter: str | None = None
    merge_adapter: bool = False
    device: str | None = None
    torch_dtype: str | None = None
    device_map: str | dict[str, Any] | None = None
    min_pixels: int | None = None
    max_pixels: int | None = None
    chat_template: str | None = None
    trust_remote_code: bool = False
    attn_implementation: str | None = None
    load_kwargs: tuple[tuple[str, Any], ...] = ()


@dataclass
class LoadedVLM:
    """A loaded model with everything generation needs.

    Attributes:
        name: The checkpoint as the user named it.
        model: The ``AutoModelForImageTextToText`` model (with the adapter applied).
        processor: The ``AutoProcessor`` (tokenizer padding on the left, for batches).
        features: What the chat template renders by itself.
        eos_token_ids: Tokens that end a turn.
        pad_token_id: Token used to pad batches.
        lock: Held while the model generates (one generation at a time per model).
    """

    name: str
    model: Any
    processor: Any
    features: TemplateFeatures
    eos_token_ids: list[int]
    pad_token_id: int
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def tokenizer(self) -> Any:
        """The processor's tokenizer."""
        return self.processor.tokenizer

    @property
    def device(self) -> Any:
        """Where inputs go (the device of the first parameters)."""
        return self.model.device


_SHARED: weakref.WeakValueDictionary[str, LoadedVLM] = weakref.WeakValueDictionary()
_SHARED_LOCK = threading.Lock()


def load_shared(name: str, options: LoadOptions) -> LoadedVLM:
    """Like :func:`load_vlm`, but models loaded with equal options are shared in-process.

    Several ``ChatLocalVLM`` instances over one checkpoint (a graph factory called per
    run, a model per evaluation worker) then hold one copy of the weights; it is freed
    when the last of them is.
    """
    key = json.dumps([str(Path(name).expanduser()), asdict(options)], default=repr, sort_keys=True)
    with _SHARED_LOCK:
        loaded = _SHARED.get(key)
        if loaded is None:
            loaded = load_vlm(name, options)
            _SHARED[key] = loaded
        return loaded


def load_vlm(name: str, options: LoadOptions) -> LoadedVLM:
    """Load a checkpoint from a local directory (or the local Hugging Face cache).

    Args:
        name: A checkpoint directory, or a hub id already in the local cache.
        options: Device, dtype, adapter and processor options.

    Returns:
        The loaded model, processor and template features.

    Raises:
        ImportError: torch/transformers (or peft, for an adapter) are missing.
        ValueError: The path, the checkpoint or the adapter cannot be used.
    """
    stack = require_local_stack(peft=options.adapter is not None)
    torch, transformers = stack.torch, stack.transformers
    source = _resolve(name)
    common = {"local_files_only": True, "trust_remote_code": options.trust_remote_code}

    try:
        processor = transformers.AutoProcessor.from_pretrained(source, **common)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"cannot load a processor from {name!r}: {exc}") from exc
    if options.min_pixels is not None or options.max_pixels is not None:
        _set_pixel_budget(processor, options.min_pixels, options.max_pixels)
    if options.chat_template is not None:
        processor.chat_template = options.chat_template
    if not getattr(processor, "chat_template", None):
        raise ValueError(
            f"{name!r} has no chat template; pass ChatLocalVLM(chat_template=...) "
            "(langchain_codevision.models.tiny_chat_template() gives a Qwen-VL one)"
        )
    processor.tokenizer.padding_side = "left"

    model_kwargs: dict[str, Any] = {**common, **dict(options.load_kwargs)}
    if options.torch_dtype is not None:
        model_kwargs["dtype"] = _dtype(torch, options.torch_dtype)
    if options.device_map is not None:
        model_kwargs["device_map"] = options.device_map
    if options.attn_implementation is not None:
        model_kwargs["attn_implementation"] = options.attn_implementation
    try:
        model = transformers.AutoModelForImageTextToText.from_pretrained(source, **model_kwargs)
    except (OSError, ValueError, KeyError) as exc:
        raise ValueError(f"cannot load {name!r} as a vision-language model: {exc}") from exc
    if options.device_map is None:
        model = model.to(options.device or _default_device(torch))

    if options.adapter is not None:
        model = _apply_adapter(model, name, options.adapter, options.merge_adapter, stack)
    model.eval()

    tokenizer = processor.tokenizer
    eos = _eos_ids(model, tokenizer)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos[0]
    return LoadedVLM(name, model, processor, probe_template(processor), eos, pad)


def probe_template(processor: Any) -> TemplateFeatures:
    """Find out what a processor's chat template renders by rendering small probes.

    Args:
        processor: A Hugging Face processor (or tokenizer) with a chat template.

    Returns:
        Which of tools, assistant tool calls and ``tool`` turns the template renders.
    """
    user = {"role": "user", "content": [{"type": "text", "text": "hi"}]}
    call = {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {"type": "function", "function": {"name": f"{_PROBE}_call", "arguments": {}}}
        ],
    }
    result = {"role": "tool", "content": [{"type": "text", "text": f"{_PROBE}_result"}]}
    schema = {
        "type": "function",
        "function": {
            "name": f"{_PROBE}_tool",
            "description": "probe",
            "parameters": {"type": "object", "properties": {}},
        },
    }

    def render(conversation: list[dict[str, Any]], **kwargs: Any) -> str:
        try:
            return str(processor.apply_chat_template(conversation, tokenize=False, **kwargs))
        except Exception:  # a template may reject what it does not know
            return ""

    tools = f"{_PROBE}_tool" in render([user], tools=[schema])
    tool_calls = f"{_PROBE}_call" in render([user, call])
    rendered = render([user, call, result])
    tool_role = f"<tool_response>\n{_PROBE}_result" in rendered
    return TemplateFeatures(tools=tools, tool_calls=tool_calls, tool_role=tool_role)


# --------------------------------------------------------------------------- helpers


def _set_pixel_budget(processor: Any, min_pixels: int | None, max_pixels: int | None) -> None:
    """Bound image (and video frame) areas, as Qwen's ``min_pixels``/``max_pixels`` do."""
    for part in ("image_processor", "video_processor"):
        component = getattr(processor, part, None)
        size = getattr(component, "size", None)
        if size is None or not hasattr(size, "longest_edge"):
            if part == "image_processor":
                raise ValueError("min_pixels/max_pixels need a Qwen-style image processor")
            continue
        component.size = type(size)(
            shortest_edge=min_pixels if min_pixels is not None else size.shortest_edge,
            longest_edge=max_pixels if max_pixels is not None else size.longest_edge,
        )


def _resolve(name: str) -> str:
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ValueError(f"{name!r} is a directory without config.json: not a checkpoint")
        return str(path)
    if path.exists():
        raise ValueError(f"{name!r} is a file; ChatLocalVLM needs a checkpoint directory")
    if _HUB_ID.fullmatch(name):
        return name  # resolved from the local Hugging Face cache only (never downloaded)
    raise ValueError(
        f"model path {name!r} does not exist. ChatLocalVLM loads local checkpoints (a "
        "directory written by save_pretrained, or a hub id already downloaded with "
        "`hf download`); to serve models at scale use vLLM with ChatOpenAI."
    )


def _default_device(torch: Any) -> str:
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def _dtype(torch: Any, name: str) -> Any:
    if name == "auto" or not isinstance(name, str):
        return name
    value = getattr(torch, name.removeprefix("torch."), None)
    if not isinstance(value, torch.dtype):
        raise ValueError(f"unknown torch_dtype {name!r}; use e.g. 'auto', 'bfloat16', 'float32'")
    return value


def _eos_ids(model: Any, tokenizer: Any) -> list[int]:
    configured = getattr(model.generation_config, "eos_token_id", None)
    ids = configured if isinstance(configured, list) else [configured]
    extra = [tokenizer.eos_token_id]
    end_of_turn = tokenizer.convert_tokens_to_ids("<|im_end|>")
    if isinstance(end_of_turn, int) and end_of_turn != tokenizer.unk_token_id:
        extra.append(end_of_turn)
    return list(dict.fromkeys(i for i in [*ids, *extra] if isinstance(i, int)))


def _apply_adapter(model: Any, name: str, adapter: str, merge: bool, stack: Any) -> Any:
    adapter_dir = Path(adapter).expanduser()
    config_file = adapter_dir / "adapter_config.json"
    if not config_file.is_file():
        raise ValueError(f"adapter {adapter!r} has no adapter_config.json: not a PEFT adapter")
    try:
        config = json.loads(config_file.read_text())
    except ValueError as exc:
        raise ValueError(f"adapter {adapter!r} has an unreadable adapter_config.json") from exc
    _check_adapter_base(model, name, adapter, config.get("base_model_name_or_path"))
    try:
        with quiet_peft():
            model = stack.peft.PeftModel.from_pretrained(
                model, str(adapter_dir), is_trainable=False
            )
    except (RuntimeError, ValueError, KeyError, OSError) as exc:
        raise ValueError(f"adapter {adapter!r} does not fit the model {name!r}: {exc}") from exc
    return model.merge_and_unload() if merge else model


def _check_adapter_base(model: Any, name: str, adapter: str, base: str | None) -> None:
    """Refuse an adapter trained for a checkpoint of another architecture or size."""
    if not base or not (Path(base).expanduser() / "config.json").is_file():
        return
    if Path(base).expanduser().resolve() == Path(name).expanduser().resolve():
        return
    recorded = json.loads((Path(base).expanduser() / "config.json").read_text())
    ours = model.config.to_dict()
    for key in ("model_type", "hidden_size", "vocab_size"):
        theirs_value = _config_value(recorded, key)
        ours_value = _config_value(ours, key)
        if theirs_value is not None and ours_value is not None and theirs_value != ours_value:
            raise ValueError(
                f"adapter {adapter!r} was trained for {base!r} ({key}={theirs_value!r}), "
                f"which does not match {name!r} ({key}={ours_value!r})"
            )
    logger.info("adapter %s was trained for %s; loading it onto %s", adapter, base, name)


def _config_value(config: dict[str, Any], key: str) -> Any:
    if key in config:
        return config[key]
    text = config.get("text_config")
    return text.get(key) if isinstance(text, dict) else None
