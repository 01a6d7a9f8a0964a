"""Training on CodeVision trajectories: SFT and GRPO with TRL (extra ``train``).

* :mod:`.sft`: ``SFTTrainer`` with LoRA (or full) on exported trajectories, assistant-only
  loss, vision tower frozen; the adapter loads in ``ChatLocalVLM(adapter=...)``.
* :mod:`.grpo`: ``GRPOTrainer`` with multi-turn rollouts whose tool calls run in the
  sandboxed kernel (:mod:`.environment`), scored by the CodeVision reward.
* :mod:`.config`: settings with the release's defaults, from YAML.

Nothing heavy (torch, trl, peft) is imported until a trainer is built.
"""

from __future__ import annotations

from langchain_codevision._lazy import lazy_names

__all__ = [
    "CodeVisionEnvironment",
    "CodeVisionReward",
    "GRPOResult",
    "GRPOSettings",
    "LoraSettings",
    "MaskView",
    "SFTResult",
    "SFTSettings",
    "apply_overrides",
    "build_grpo_trainer",
    "build_sft_trainer",
    "environment_factory",
    "inspect_mask",
    "load_config",
    "load_grpo_dataset",
    "load_sft_dataset",
    "train_grpo",
    "train_sft",
]

_WHERE = {
    "CodeVisionEnvironment": "environment",
    "environment_factory": "environment",
    "CodeVisionReward": "reward",
    "GRPOResult": "grpo",
    "build_grpo_trainer": "grpo",
    "load_grpo_dataset": "grpo",
    "train_grpo": "grpo",
    "MaskView": "sft",
    "SFTResult": "sft",
    "build_sft_trainer": "sft",
    "inspect_mask": "sft",
    "load_sft_dataset": "sft",
    "train_sft": "sft",
    "GRPOSettings": "config",
    "LoraSettings": "config",
    "SFTSettings": "config",
    "apply_overrides": "config",
    "load_config": "config",
}


__getattr__, __dir__ = lazy_names(__name__, _WHERE)
