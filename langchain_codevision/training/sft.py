"""Supervised fine-tuning on exported trajectories: TRL ``SFTTrainer`` with LoRA (or full).

The data is what :func:`langchain_codevision.data.export.export_trl` writes: conversations
with images in user turns (from the ``images`` column) and in tool turns (inline paths).
Loss is on assistant tokens only (system, user and tool tokens are masked), the vision
tower and projector are frozen by default, and the saved adapter loads in
``ChatLocalVLM(adapter=...)``.

Example:
    >>> from langchain_codevision.training import SFTSettings, train_sft
    >>> result = train_sft(SFTSettings(model="Qwen/Qwen2.5-VL-7B-Instruct", data="data/trl"))
    ... # doctest: +SKIP
    >>> result.adapter_dir  # doctest: +SKIP
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import SFTSettings

__all__ = [
    "MaskView",
    "SFTResult",
    "build_sft_trainer",
    "inspect_mask",
    "load_sft_dataset",
    "train_sft",
]

DATA_FILE = "codevision.jsonl"


@dataclass
class SFTResult:
    """What a finished SFT run left behind.

    Attributes:
        output_dir: The run folder (checkpoints, ``trainer_state.json``).
        adapter_dir: The final adapter (LoRA) or full model, with the processor.
        metrics: The train metrics (``train_loss``, runtime, ...).
        log_history: Every logged row (loss per step, learning rate, ...).
    """

    output_dir: Path
    adapter_dir: Path
    metrics: dict[str, Any] = field(default_factory=dict)
    log_history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def losses(self) -> list[float]:
        """The training loss of each logged step."""
        return [row["loss"] for row in self.log_history if "loss" in row]


def _data_file(path: str | Path) -> Path:
    path = Path(path)
    if path.is_dir():
        path = path / DATA_FILE
    if not path.exists():
        raise FileNotFoundError(f"no TRL export at {path} (write one with `codevision export`)")
    return path


def _clean(part: dict[str, Any], root: Path) -> dict[str, Any]:
    part = {k: v for k, v in part.items() if v is not None}
    if part.get("type") == "image" and isinstance(part.get("image"), str):
        part["image"] = _open(root / part["image"])
    return part


def _open(path: Path) -> Any:
    from PIL import Image

    with Image.open(path) as image:
        return image.convert("RGB")


def load_sft_dataset(path: str | Path, *, limit: int | None = None) -> Any:
    """Load a TRL export as a ``datasets.Dataset`` that decodes its images on access.

    Args:
        path: The export folder or its JSONL file.
        limit: Keep only the first ``limit`` rows.

    Returns:
        A dataset whose rows are ``{"messages": [...], "images": [PIL, ...]}``: user-turn
        images in ``images``, tool-turn images inline in their parts, ``None`` keys dropped
        (what the TRL collator and chat templates expect).
    """
    import datasets

    file = _data_file(path)
    root = file.parent
    rows = []
    for line in file.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            rows.append({"messages": json.dumps(row["messages"]), "images": row["images"]})
        if limit is not None and len(rows) >= limit:
            break
    if not rows:
        raise ValueError(f"{file} holds no conversations")

    def decode(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        messages = [
            [
                {**message, "content": [_clean(part, root) for part in message["content"]]}
                for message in json.loads(raw)
            ]
            for raw in batch["messages"]
        ]
        images = [[_open(root / name) for name in names] for names in batch["images"]]
        return {"messages": messages, "images": images}

    dataset = datasets.Dataset.from_list(rows)
    dataset.set_transform(decode)
    return dataset


def build_sft_trainer(settings: SFTSettings, dataset: Any | None = None, **kwargs: Any) -> Any:
    """A ready ``trl.SFTTrainer`` for ``settings`` (model loaded, LoRA applied, vision frozen).

    Args:
        settings: The run's settings.
        dataset: A dataset like :func:`load_sft_dataset`'s (default: ``settings.data``).
        **kwargs: Passed to ``SFTTrainer`` (``callbacks``, ...).

    Returns:
        The trainer.
    """
    from trl import SFTConfig, SFTTrainer

    from ._common import (
        freeze_vision_tower,
        load_model_and_processor,
        lora_config,
        trainer_kwargs,
    )

    if not settings.model:
        raise ValueError("set 'model' (a checkpoint path or hub id)")
    dataset = dataset if dataset is not None else load_sft_dataset(settings.data)
    model, processor = load_model_and_processor(
        settings.model,
        dtype=settings.dtype,
        image_max_pixels=settings.image_max_pixels,
        chat_template=settings.chat_template,
    )
    if settings.freeze_vision:
        freeze_vision_tower(model)
    args = SFTConfig(
        **trainer_kwargs(
            settings,
            SFTConfig,
            max_length=settings.max_length,
            assistant_only_loss=settings.assistant_only_loss,
            remove_unused_columns=False,
            dataset_kwargs={"skip_prepare_dataset": True},
        )
    )
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        processing_class=processor,
        peft_config=lora_config(settings),
        **kwargs,
    )
    if settings.freeze_vision:  # PEFT may have re-enabled some parameters
        freeze_vision_tower(trainer.model)
    return trainer


def train_sft(settings: SFTSettings, dataset: Any | None = None, **kwargs: Any) -> SFTResult:
    """Train, save the adapter (or full model) and the processor into ``output_dir/adapter``.

    Args:
        settings: The run's settings; ``resume_from_checkpoint`` (a path, or ``true`` for
            the newest in ``output_dir``) continues an interrupted run.
        dataset: Optional dataset (default: ``settings.data``).
        **kwargs: Passed to ``SFTTrainer``.

    Returns:
        The :class:`SFTResult`.
    """
    trainer = build_sft_trainer(settings, dataset, **kwargs)
    resume = settings.resume_from_checkpoint
    output = trainer.train(resume_from_checkpoint=resume or None)
    adapter_dir = Path(settings.output_dir) / "adapter"
    trainer.save_model(str(adapter_dir))
    trainer.processing_class.save_pretrained(str(adapter_dir))
    return SFTResult(
        output_dir=Path(settings.output_dir),
        adapter_dir=adapter_dir,
        metrics=dict(output.metrics),
        log_history=list(trainer.state.log_history),
    )


@dataclass
class MaskView:
    """One collated example split by the loss mask.

    Attributes:
        trained: The text of the tokens the loss is computed on, in order.
        masked: The text of the masked tokens (system, user, tool), in order.
        trained_tokens: How many tokens carry loss.
        total_tokens: How many tokens the example has (padding excluded).
    """

    trained: str
    masked: str
    trained_tokens: int
    total_tokens: int


def inspect_mask(trainer: Any, index: int = 0) -> MaskView:
    """Render example ``index`` through the trainer's collator and split it by its labels.

    Use it to check that only assistant turns are trained on before a long run.
    """
    batch = trainer.data_collator([trainer.train_dataset[index]])
    ids = batch["input_ids"][0].tolist()
    labels = batch["labels"][0].tolist()
    attention = batch["attention_mask"][0].tolist()
    tokenizer = getattr(trainer.processing_class, "tokenizer", trainer.processing_class)
    trained = [t for t, lab in zip(ids, labels, strict=True) if lab != -100]
    masked = [t for t, lab, a in zip(ids, labels, attention, strict=True) if lab == -100 and a]
    return MaskView(
        trained=tokenizer.decode(trained),
        masked=tokenizer.decode(masked),
        trained_tokens=len(trained),
        total_tokens=sum(attention),
    )
