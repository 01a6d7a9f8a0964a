"""Pieces SFT and GRPO share: model loading, LoRA, freezing the vision tower, trainer args."""

from __future__ import annotations

import dataclasses
from typing import Any

__all__ = [
    "choose_chat_template",
    "freeze_vision_tower",
    "load_model_and_processor",
    "lora_config",
    "trainable_parameters",
    "trainer_kwargs",
]

_VISION_PREFIXES = ("visual.", "model.visual.", "vision_tower.", "model.vision_tower.")


def _stack() -> Any:
    from langchain_codevision.models._deps import require_local_stack

    return require_local_stack(peft=True)


def load_model_and_processor(
    model: str,
    *,
    dtype: str = "auto",
    image_max_pixels: int | None = None,
    chat_template: str | None = "auto",
) -> tuple[Any, Any]:
    """Load an image-text-to-text checkpoint and its processor.

    Args:
        model: Path or hub id.
        dtype: ``"auto"``, ``"bfloat16"``, ``"float32"``, ...
        image_max_pixels: Cap on image area for the processor (``None``: the checkpoint's).
        chat_template: See :func:`choose_chat_template`.

    Returns:
        ``(model, processor)``.
    """
    stack = _stack()
    transformers, torch = stack.transformers, stack.torch
    torch_dtype = dtype if dtype == "auto" else getattr(torch, dtype)
    loaded = transformers.AutoModelForImageTextToText.from_pretrained(model, dtype=torch_dtype)
    processor = transformers.AutoProcessor.from_pretrained(model)
    if image_max_pixels is not None:
        set_image_max_pixels(processor, image_max_pixels)
    choose_chat_template(processor, chat_template)
    return loaded, processor


def choose_chat_template(processor: Any, choice: str | None = "auto") -> str:
    """Set the chat template training renders conversations with; returns which one.

    Args:
        processor: The processor (its ``chat_template`` is replaced when needed).
        choice: ``"auto"``: the checkpoint's if it renders tool calls and tool turns, else
            TRL's Qwen-VL tool template (``"qwen3_vl"``; the same vision and hermes tool
            tokens, tool replies as ``<tool_response>`` user turns as the release renders
            them; the stock Qwen2.5-VL template renders none of that). ``"checkpoint"`` or
            ``None``: keep it. ``"qwen3_vl"``: TRL's. Anything else: a Jinja file path.
    """
    if choice in (None, "checkpoint"):
        return "checkpoint"
    if choice == "auto":
        from trl.chat_template_utils import supports_tool_calling

        try:
            if supports_tool_calling(processor):
                return "checkpoint"
        except Exception:  # a template that cannot render the probe conversation
            pass
        choice = "qwen3_vl"
    if choice == "qwen3_vl":
        from langchain_codevision.models.tiny import tiny_chat_template

        processor.chat_template = tiny_chat_template("qwen3_vl")
    else:
        from pathlib import Path

        processor.chat_template = Path(choice).read_text(encoding="utf-8")
    tokenizer = getattr(processor, "tokenizer", None)
    if tokenizer is not None:
        tokenizer.chat_template = processor.chat_template
    return choice


def set_image_max_pixels(processor: Any, max_pixels: int) -> None:
    """Cap the area of images the processor feeds the model (Qwen-VL ``longest_edge``)."""
    image_processor = getattr(processor, "image_processor", None)
    if image_processor is None:
        return
    size = dict(getattr(image_processor, "size", None) or {})
    if "longest_edge" in size:
        size["longest_edge"] = max_pixels
        size["shortest_edge"] = min(size.get("shortest_edge", max_pixels), max_pixels)
        image_processor.size = size
    if hasattr(image_processor, "max_pixels"):
        image_processor.max_pixels = max_pixels


def is_vision_parameter(name: str) -> bool:
    """Whether a parameter belongs to the vision tower or its projector (merger)."""
    return name.startswith(_VISION_PREFIXES) or ".visual." in name


def freeze_vision_tower(model: Any) -> int:
    """Freeze the vision tower and projector; returns how many parameters were frozen."""
    frozen = 0
    for name, param in model.named_parameters():
        if is_vision_parameter(name):
            param.requires_grad_(False)
            frozen += param.numel()
    return frozen


def trainable_parameters(model: Any) -> dict[str, int]:
    """Trainable parameter counts: ``total``, ``vision`` (should be 0 when frozen)."""
    total = vision = 0
    for name, param in model.named_parameters():
        if param.requires_grad:
            total += param.numel()
            if is_vision_parameter(name):
                vision += param.numel()
    return {"total": total, "vision": vision}


def lora_config(settings: Any) -> Any:
    """The PEFT ``LoraConfig`` for ``settings.lora`` (``None`` for full fine-tuning)."""
    if settings.lora is None:
        return None
    peft = _stack().peft
    lora = settings.lora
    return peft.LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=lora.target_modules,
        task_type="CAUSAL_LM",
    )


_COMMON_ARGS = (
    "output_dir",
    "bf16",
    "gradient_checkpointing",
    "max_steps",
    "num_train_epochs",
    "learning_rate",
    "lr_scheduler_type",
    "warmup_ratio",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "logging_steps",
    "save_steps",
    "save_total_limit",
    "seed",
    "report_to",
)


def trainer_kwargs(settings: Any, config_cls: Any, **specific: Any) -> dict[str, Any]:
    """Arguments of a TRL config class from ``settings`` (``extra`` wins, unknown keys fail)."""
    known = {f.name for f in dataclasses.fields(config_cls)}
    kwargs = {name: getattr(settings, name) for name in _COMMON_ARGS}
    kwargs.update(specific)
    if "activation_checkpointing" in known:  # transformers 5 renamed it
        kwargs["activation_checkpointing"] = kwargs.pop("gradient_checkpointing")
    if "warmup_ratio" not in known and "warmup_ratio" in kwargs:
        kwargs["warmup_steps"] = kwargs.pop("warmup_ratio")  # transformers 5: a float is a ratio
    unknown = sorted(set(settings.extra) - known)
    if unknown:
        raise ValueError(f"unknown {config_cls.__name__} field(s) in 'extra': {unknown}")
    for key, value in settings.extra.items():
        if isinstance(value, dict) and isinstance(kwargs.get(key), dict):
            kwargs[key] = {**kwargs[key], **value}  # e.g. generation_kwargs: merged
        else:
            kwargs[key] = value
    return {k: v for k, v in kwargs.items() if k in known}
