"""Training settings: dataclasses with the release's defaults, loaded from YAML.

The defaults are the CodeVision release's recipes (LLaMA-Factory SFT, verl GRPO):

* SFT: lr 1e-5, 2 epochs, cosine schedule, warmup ratio 0.05, per-device batch 4 x
  gradient accumulation 4, cutoff 32,768 tokens, images up to 262,144 pixels, vision tower
  and projector frozen.
* GRPO: clip 0.2 / 0.28, KL loss 0.001, lr 1e-6, 8 rollouts per prompt, 12 assistant
  turns, the ``release`` protocol profile, the release's reward weights.

Example:
    >>> settings = load_config("examples/training/sft_tiny.yaml", "sft")  # doctest: +SKIP
    >>> settings = apply_overrides(settings, ["max_steps=2", "lora.r=4"])  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "GRPOSettings",
    "LoraSettings",
    "SFTSettings",
    "TrainKind",
    "apply_overrides",
    "load_config",
    "settings_from_dict",
]

TrainKind = Literal["sft", "grpo"]

LANGUAGE_LINEAR = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"
"""LoRA targets: every linear layer of the language model (never the vision tower)."""


@dataclass
class LoraSettings:
    """A LoRA adapter on the language model.

    Attributes:
        r: Rank.
        alpha: Scale numerator (``lora_alpha``).
        dropout: Dropout on the adapter input.
        target_modules: Regex (or list of names) of the wrapped modules.
    """

    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: str | list[str] = LANGUAGE_LINEAR


@dataclass
class _Common:
    """Settings shared by SFT and GRPO."""

    model: str = ""
    data: str = ""
    output_dir: str = "runs/codevision"
    lora: LoraSettings | None = field(default_factory=LoraSettings)
    freeze_vision: bool = True
    dtype: str = "auto"
    chat_template: str | None = "auto"
    bf16: bool = False
    gradient_checkpointing: bool = False
    image_max_pixels: int | None = 262_144
    max_steps: int = -1
    num_train_epochs: float = 1.0
    learning_rate: float = 1e-5
    lr_scheduler_type: str = "cosine"
    warmup_ratio: float = 0.05
    per_device_train_batch_size: int = 4
    gradient_accumulation_steps: int = 4
    logging_steps: int = 1
    save_steps: int = 500
    save_total_limit: int | None = None
    seed: int = 0
    report_to: str | list[str] = "none"
    resume_from_checkpoint: str | bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class SFTSettings(_Common):
    """Supervised fine-tuning on exported trajectories (TRL conversational format).

    Attributes:
        model: Base checkpoint (path or hub id).
        data: A TRL export folder (``codevision.jsonl`` + ``images/``) or a JSONL file.
        output_dir: Checkpoints, logs and the final ``adapter/`` (or full model).
        lora: LoRA settings; ``None`` trains the full model (vision tower still frozen).
        freeze_vision: Freeze the vision tower and its projector (the release does).
        chat_template: ``"auto"`` (the checkpoint's when it renders tool turns, else TRL's
            Qwen-VL tool template), ``"checkpoint"``, ``"qwen3_vl"`` or a Jinja file.
        max_length: Token cutoff per conversation (the release's 32,768).
        assistant_only_loss: Loss on assistant tokens only (system, user, tool masked).
        image_max_pixels: Largest image area fed to the processor (``None``: processor's).
        extra: Further ``trl.SFTConfig`` fields, passed through.
    """

    output_dir: str = "runs/sft"
    num_train_epochs: float = 2.0
    max_length: int | None = 32_768
    assistant_only_loss: bool = True


@dataclass
class GRPOSettings(_Common):
    """GRPO with multi-turn rollouts whose tool calls run in the sandboxed kernel.

    Attributes:
        model: Policy checkpoint (usually the SFT result, merged or with ``adapter``).
        adapter: A PEFT adapter to load on ``model`` and keep training.
        data: RL records (verl parquet or records JSONL, :mod:`langchain_codevision.data.records`).
        profile: Protocol profile of prompts and tool replies (``"release"``).
        num_generations: Rollouts per prompt (the group of ``R_necessity``).
        max_turns: Assistant turns per rollout; a call in the last turn is not run.
        epsilon: Lower clip range; ``epsilon_high``: upper (DAPO clip-higher).
        beta: KL coefficient (the release's KL loss 0.001).
        max_completion_length: Tokens of all assistant turns and tool replies together.
        temperature: Sampling temperature of rollouts.
        reward_weights: Overrides of the reward's weights (``alpha``, ``beta``, ``gamma``,
            ``format``, ``emerge``); empty: the release's.
        pool_size: Warm kernels; ``max_kernels``: most alive at once (default: enough for
            every rollout of one generation batch).
        code_timeout: Seconds per tool call.
        use_vllm: Generate with vLLM (``vllm_mode`` ``"colocate"`` or ``"server"``).
        log_path: Where reward breakdowns are appended as JSONL (default:
            ``output_dir/rewards.jsonl``).
    """

    output_dir: str = "runs/grpo"
    adapter: str | None = None
    profile: str = "release"
    learning_rate: float = 1e-6
    lr_scheduler_type: str = "constant"
    warmup_ratio: float = 0.0
    num_generations: int = 8
    per_device_train_batch_size: int = 8
    gradient_accumulation_steps: int = 8
    max_turns: int = 12
    epsilon: float = 0.2
    epsilon_high: float = 0.28
    beta: float = 0.001
    loss_type: str = "dapo"
    max_completion_length: int = 8192
    temperature: float = 1.0
    reward_weights: dict[str, float] = field(default_factory=dict)
    pool_size: int = 4
    max_kernels: int | None = None
    code_timeout: float | None = 30.0
    use_vllm: bool = False
    vllm_mode: str = "colocate"
    log_completions: bool = False
    log_path: str | None = None


_KINDS: dict[str, type[_Common]] = {"sft": SFTSettings, "grpo": GRPOSettings}


def settings_from_dict(data: dict[str, Any], kind: TrainKind) -> SFTSettings | GRPOSettings:
    """Build settings from a mapping; unknown keys are an error that names them.

    Args:
        data: Keys of :class:`SFTSettings` or :class:`GRPOSettings`; ``lora`` may be a
            mapping, ``null``/``false`` (full fine-tuning) or ``true`` (defaults).
        kind: ``"sft"`` or ``"grpo"``.

    Returns:
        The settings.

    Raises:
        ValueError: An unknown kind or key.
    """
    try:
        cls = _KINDS[kind]
    except KeyError:
        raise ValueError(f"unknown training kind {kind!r}; use 'sft' or 'grpo'") from None
    data = {key: _number(value) for key, value in data.items()}
    data.pop("kind", None)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(
            f"unknown {kind} setting(s) {unknown}; known: {sorted(known)} "
            "(pass other trainer fields under 'extra')"
        )
    if "lora" in data:
        data["lora"] = _lora(data["lora"])
    return cls(**data)


_SCIENTIFIC = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+$")


def _number(value: Any) -> Any:
    """Read ``1e-5`` as a number (YAML 1.1 reads it as a string), also inside mappings."""
    if isinstance(value, str) and _SCIENTIFIC.match(value.strip()):
        return float(value)
    if isinstance(value, dict):
        return {key: _number(item) for key, item in value.items()}
    return value


def _lora(value: Any) -> LoraSettings | None:
    if value in (None, False):
        return None
    if value is True:
        return LoraSettings()
    if isinstance(value, LoraSettings):
        return value
    if not isinstance(value, dict):
        raise ValueError(f"'lora' must be a mapping, true or null, got {value!r}")
    known = {f.name for f in dataclasses.fields(LoraSettings)}
    unknown = sorted(set(value) - known)
    if unknown:
        raise ValueError(f"unknown lora setting(s) {unknown}; known: {sorted(known)}")
    return LoraSettings(**value)


def load_config(path: str | Path, kind: TrainKind | None = None) -> SFTSettings | GRPOSettings:
    """Read settings from a YAML (or JSON) file.

    Args:
        path: The file. Relative ``data``/``model``/``output_dir`` paths stay as written
            (relative to the working directory).
        kind: ``"sft"`` or ``"grpo"``; default: the file's ``kind`` key.

    Returns:
        The settings.

    Raises:
        ValueError: The file is not a mapping, names no kind, or has unknown keys.
    """
    text = Path(path).read_text(encoding="utf-8")
    try:
        import yaml
    except ImportError:  # JSON is YAML's subset
        data = json.loads(text)
    else:
        data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: the config must be a mapping of settings")
    chosen = kind or data.get("kind")
    if chosen is None:
        raise ValueError(f"{path}: say which training this is ('kind: sft' or 'kind: grpo')")
    if kind and data.get("kind") not in (None, kind):
        raise ValueError(f"{path}: the file is a {data['kind']!r} config, not {kind!r}")
    return settings_from_dict(data, chosen)


def apply_overrides(settings: Any, overrides: list[str]) -> Any:
    """Return a copy of ``settings`` with ``key=value`` overrides (dotted keys for ``lora``).

    Values are read as YAML scalars (``1e-5``, ``true``, ``null``, ``[a, b]``).

    Raises:
        ValueError: A malformed override or an unknown key.
    """
    data = dataclasses.asdict(settings)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"override {item!r} is not key=value")
        value = _scalar(raw)
        head, _, rest = key.strip().partition(".")
        if rest:
            if head not in ("lora", "extra", "reward_weights"):
                raise ValueError(f"override {item!r}: only lora, extra and reward_weights nest")
            target = data.get(head) or {}
            target[rest] = value
            data[head] = target
        else:
            data[head] = value
    kind: TrainKind = "grpo" if isinstance(settings, GRPOSettings) else "sft"
    return settings_from_dict(data, kind)


def _scalar(raw: str) -> Any:
    try:
        import yaml
    except ImportError:
        try:
            return json.loads(raw)
        except ValueError:
            return raw
    return yaml.safe_load(raw) if raw.strip() else None
