"""GRPO whose multi-turn rollouts run their code in the sandboxed kernel (TRL ``GRPOTrainer``).

* Prompts come from RL records (:mod:`langchain_codevision.data.records`) in the protocol
  profile's layout (the release's by default: its system prompt, an image placeholder and
  a newline before the question);
  the chat template renders the profile's tool schema from the environment's tool.
* Each rollout gets a :class:`~.environment.CodeVisionEnvironment`: its tool calls run
  through the loop's executor in a kernel from the pool; images the code produces go back
  into the conversation; TRL masks tool tokens from the loss.
* :class:`CodeVisionReward` scores each group of ``num_generations`` rollouts of one prompt
  with ``langchain_codevision.rewards.score_group`` (group-aware ``R_necessity``), logs
  every term, flags rollouts that hit the turn limit, and gives the kernels back.
* The release's settings are the defaults (:class:`~.config.GRPOSettings`).

Example:
    >>> from langchain_codevision.training import GRPOSettings, train_grpo
    >>> train_grpo(GRPOSettings(model="runs/sft/merged", data="data/rl.parquet"))
    ... # doctest: +SKIP
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import GRPOSettings
from .environment import EnvironmentFactory
from .reward import BREAKDOWN_TERMS, CodeVisionReward

__all__ = [
    "BREAKDOWN_TERMS",
    "CodeVisionReward",
    "GRPOResult",
    "build_grpo_trainer",
    "ensure_response_parsing",
    "grpo_rows",
    "load_grpo_dataset",
    "train_grpo",
    "vision_token_ids",
]


# ----------------------------------------------------------------------------- dataset
def grpo_rows(records: Sequence[Any], profile: Any = "release") -> list[dict[str, Any]]:
    """Rows for :func:`load_grpo_dataset`: the prompt in the profile's layout and the truth.

    Args:
        records: :class:`~langchain_codevision.data.records.Record` objects.
        profile: The protocol profile (name or object).

    Returns:
        Plain rows: ``prompt`` (messages, image placeholders), ``images`` (PNG bytes) and a
        ``meta`` JSON string (``ground_truth``, ``transform`` as stored, ``bbox``,
        ``image_size``, ``question``, ``index``).
    """
    from langchain_codevision.images import encode_image
    from langchain_codevision.protocol import get_profile

    chosen = get_profile(profile)
    rows = []
    for record in records:
        placeholders = [{"type": "image"} for _ in record.images]
        prompt = []
        if chosen.system_prompt:
            prompt.append(
                {"role": "system", "content": [{"type": "text", "text": chosen.system_prompt}]}
            )
        prompt.append(
            {"role": "user", "content": chosen.question_content(placeholders, record.question)}
        )
        size = list(record.images[0].size) if record.images else None
        meta = {
            "ground_truth": record.answer,
            "transform": record.transform,
            "bbox": record.bbox,
            "image_size": size,
            "question": record.question,
            "index": record.index,
        }
        rows.append(
            {
                "prompt": json.dumps(prompt),
                "images": [encode_image(image, "png") for image in record.images],
                "meta": json.dumps(meta),
            }
        )
    return rows


def _read_records(path: str | Path) -> list[Any]:
    from langchain_codevision.data.records import read_jsonl, read_parquet

    path = Path(path)
    reader = read_parquet if path.suffix == ".parquet" else read_jsonl
    return list(reader(path))


def load_grpo_dataset(
    source: str | Path | Sequence[Any], profile: Any = "release", *, limit: int | None = None
) -> Any:
    """A ``datasets.Dataset`` of GRPO prompts that decodes on access.

    Args:
        source: A records file (``.parquet`` or ``.jsonl``) or a list of records.
        profile: The protocol profile of the prompts.
        limit: Keep the first ``limit`` records.

    Returns:
        Rows ``{"prompt", "images" (PIL), "ground_truth", "transform", "bbox",
        "image_size", "question", "index"}`` (``transform`` in the form the record stores).
    """
    import datasets

    records = _read_records(source) if isinstance(source, (str, Path)) else list(source)
    records = records[:limit] if limit is not None else records
    if not records:
        raise ValueError("no RL records to train on")

    def decode(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        from langchain_codevision.images import load_image

        metas = [json.loads(raw) for raw in batch["meta"]]
        out: dict[str, list[Any]] = {
            "prompt": [json.loads(raw) for raw in batch["prompt"]],
            "images": [[load_image(data) for data in images] for images in batch["images"]],
        }
        for key in ("ground_truth", "transform", "bbox", "image_size", "question", "index"):
            out[key] = [meta[key] for meta in metas]
        return out

    dataset = datasets.Dataset.from_list(grpo_rows(records, profile))
    dataset.set_transform(decode)
    return dataset


# ----------------------------------------------------------------------------- trainer
def ensure_response_parsing(processor: Any) -> None:
    """Make TRL able to read tool calls from the checkpoint's replies.

    TRL knows the response format of some chat templates only (not Qwen2.5-VL's, nor the
    release's); the CodeVision protocol is hermes ``<tool_call>{json}</tool_call>`` in every
    case, which is TRL's Qwen3 parser.
    """
    from trl.chat_template_utils import add_response_schema

    tokenizer = getattr(processor, "tokenizer", processor)
    if getattr(tokenizer, "response_template", None) or getattr(tokenizer, "response_schema", None):
        return
    try:
        add_response_schema(processor)
    except ValueError:
        from trl import chat_template_utils as utils

        if hasattr(utils, "qwen3_template"):
            tokenizer.response_template = utils.qwen3_template
        else:  # older transformers: the legacy schema
            tokenizer.response_schema = utils.qwen3_schema


_VISION_TOKENS = ("<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>")


def vision_token_ids(processor: Any) -> list[int]:
    """Ids of the vision placeholder tokens, which a policy must never sample.

    A sampled ``<|vision_start|>`` or ``<|image_pad|>`` has no image behind it and breaks
    the training forward pass (TRL suppresses only the image pad token).
    """
    tokenizer = getattr(processor, "tokenizer", processor)
    vocab = tokenizer.get_vocab()
    return [vocab[token] for token in _VISION_TOKENS if token in vocab]


def _grpo_args(settings: GRPOSettings, factory: EnvironmentFactory, processor: Any) -> Any:
    from trl import GRPOConfig

    from ._common import trainer_kwargs

    generation: dict[str, Any] = {}
    if not settings.use_vllm:
        generation["suppress_tokens"] = vision_token_ids(processor)
    generation.update(settings.extra.get("generation_kwargs") or {})
    return GRPOConfig(
        **trainer_kwargs(
            settings,
            GRPOConfig,
            generation_kwargs=generation or None,
            num_generations=settings.num_generations,
            max_completion_length=settings.max_completion_length,
            max_tool_calling_iterations=factory.max_calls,
            beta=settings.beta,
            epsilon=settings.epsilon,
            epsilon_high=settings.epsilon_high,
            loss_type=settings.loss_type,
            temperature=settings.temperature,
            use_vllm=settings.use_vllm,
            vllm_mode=settings.vllm_mode,
            log_completions=settings.log_completions,
            remove_unused_columns=False,
        )
    )


def build_grpo_trainer(
    settings: GRPOSettings,
    dataset: Any | None = None,
    *,
    factory: EnvironmentFactory | None = None,
    **kwargs: Any,
) -> Any:
    """A ready ``trl.GRPOTrainer`` with kernel-backed environments and the CodeVision reward.

    The trainer carries ``codevision_factory`` (close it when done; :func:`train_grpo`
    does) and ``codevision_reward`` (its ``history`` holds every breakdown).

    Args:
        settings: The run's settings.
        dataset: A dataset like :func:`load_grpo_dataset`'s (default: ``settings.data``).
        factory: The environments' factory (default: one over a fresh pool, sized so every
            rollout of a generation batch can hold a kernel).
        **kwargs: Passed to ``GRPOTrainer`` (``callbacks``, ...).
    """
    from trl import GRPOTrainer

    from ._common import freeze_vision_tower, load_model_and_processor, lora_config

    if not settings.model:
        raise ValueError("set 'model' (a checkpoint path or hub id)")
    dataset = dataset if dataset is not None else load_grpo_dataset(settings.data, settings.profile)
    model, processor = load_model_and_processor(
        settings.model,
        dtype=settings.dtype,
        image_max_pixels=settings.image_max_pixels,
        chat_template=settings.chat_template,
    )
    peft_config = lora_config(settings)
    if settings.adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, settings.adapter, is_trainable=True)
        peft_config = None
    if settings.freeze_vision:
        freeze_vision_tower(model)
    ensure_response_parsing(processor)
    rollouts = settings.per_device_train_batch_size * settings.gradient_accumulation_steps
    factory = factory or EnvironmentFactory(
        settings.profile,
        max_turns=settings.max_turns,
        code_timeout=settings.code_timeout,
        pool_size=settings.pool_size,
        max_kernels=settings.max_kernels or rollouts + settings.pool_size + 1,
    )
    reward = CodeVisionReward(
        tokenizer=getattr(processor, "tokenizer", processor),
        num_generations=settings.num_generations,
        weights=settings.reward_weights or None,
        log_path=settings.log_path or Path(settings.output_dir) / "rewards.jsonl",
        max_completion_length=settings.max_completion_length,
    )
    try:
        trainer = GRPOTrainer(
            model=model,
            reward_funcs=[reward],
            args=_grpo_args(settings, factory, processor),
            train_dataset=dataset,
            processing_class=processor,
            peft_config=peft_config,
            environment_factory=factory,
            **kwargs,
        )
    except BaseException:
        factory.close()
        raise
    if settings.freeze_vision:
        freeze_vision_tower(trainer.model)
    trainer.codevision_factory = factory
    trainer.codevision_reward = reward
    return trainer


@dataclass
class GRPOResult:
    """What a finished GRPO run left behind.

    Attributes:
        output_dir: The run folder.
        adapter_dir: The final adapter (or full model) with the processor.
        metrics: The train metrics.
        log_history: Every logged row (reward, ``codevision/*`` terms, KL, ...).
        breakdowns: Every scored rollout (see :attr:`CodeVisionReward.history`).
    """

    output_dir: Path
    adapter_dir: Path
    metrics: dict[str, Any] = field(default_factory=dict)
    log_history: list[dict[str, Any]] = field(default_factory=list)
    breakdowns: list[dict[str, Any]] = field(default_factory=list)


def train_grpo(
    settings: GRPOSettings, dataset: Any | None = None, *, trainer: Any = None, **kwargs: Any
) -> GRPOResult:
    """Train with GRPO; kernels are always returned and the pool closed, also on errors.

    Args:
        settings: The run's settings (``resume_from_checkpoint`` continues a run).
        dataset: Optional dataset (default: ``settings.data``).
        trainer: A trainer from :func:`build_grpo_trainer` to run (default: a new one).
        **kwargs: Passed to :func:`build_grpo_trainer`.

    Returns:
        The :class:`GRPOResult`.
    """
    trainer = trainer or build_grpo_trainer(settings, dataset, **kwargs)
    try:
        output = trainer.train(resume_from_checkpoint=settings.resume_from_checkpoint or None)
        adapter_dir = Path(settings.output_dir) / "adapter"
        trainer.save_model(str(adapter_dir))
        trainer.processing_class.save_pretrained(str(adapter_dir))
    finally:
        trainer.codevision_factory.close()
    return GRPOResult(
        output_dir=Path(settings.output_dir),
        adapter_dir=adapter_dir,
        metrics=dict(output.metrics),
        log_history=list(trainer.state.log_history),
        breakdowns=list(trainer.codevision_reward.history),
    )
