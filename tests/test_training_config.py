"""Training settings, YAML configs, the train CLI and the cheap import of the package."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from langchain_codevision.training.cli import add_train_parser, run_train
from langchain_codevision.training.config import (
    GRPOSettings,
    LoraSettings,
    SFTSettings,
    apply_overrides,
    load_config,
    settings_from_dict,
)

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "training"


def test_defaults_are_the_releases_recipes() -> None:
    sft = SFTSettings()
    assert (sft.learning_rate, sft.num_train_epochs, sft.lr_scheduler_type) == (1e-5, 2.0, "cosine")
    assert sft.warmup_ratio == 0.05 and sft.freeze_vision and sft.assistant_only_loss
    assert (sft.per_device_train_batch_size, sft.gradient_accumulation_steps) == (4, 4)
    assert (sft.max_length, sft.image_max_pixels) == (32_768, 262_144)
    grpo = GRPOSettings()
    assert (grpo.epsilon, grpo.epsilon_high, grpo.beta, grpo.learning_rate) == (
        0.2,
        0.28,
        0.001,
        1e-6,
    )
    assert (grpo.num_generations, grpo.max_turns, grpo.profile) == (8, 12, "release")
    assert grpo.freeze_vision and grpo.reward_weights == {}


def test_every_example_config_loads() -> None:
    files = [p for p in EXAMPLES.glob("*.yaml") if "kind:" in p.read_text()]
    assert len(files) >= 4
    for path in files:
        settings = load_config(path)
        assert settings.model and settings.data and settings.output_dir
    big = load_config(EXAMPLES / "grpo_qwen2_5_vl_7b.yaml")
    assert isinstance(big, GRPOSettings) and big.use_vllm and big.lora is None
    # 64 prompts per batch on 8 GPUs: 8 per device x 8 accumulation x 8 GPUs / 8 rollouts
    assert big.per_device_train_batch_size * big.gradient_accumulation_steps * 8 // 8 == 64
    full = load_config(EXAMPLES / "sft_qwen2_5_vl_7b.yaml", "sft")
    assert full.lora is None and full.freeze_vision and full.bf16


def test_bad_settings_are_named(tmp_path) -> None:
    with pytest.raises(ValueError, match="learning_rat"):
        settings_from_dict({"learning_rat": 1.0}, "sft")
    with pytest.raises(ValueError, match="lora setting"):
        settings_from_dict({"lora": {"rank": 4}}, "sft")
    with pytest.raises(ValueError, match="unknown training kind"):
        settings_from_dict({}, "ppo")
    path = tmp_path / "c.yaml"
    path.write_text("kind: sft\nmodel: m\n")
    with pytest.raises(ValueError, match="not 'grpo'"):
        load_config(path, "grpo")
    path.write_text("model: m\n")
    with pytest.raises(ValueError, match="kind"):
        load_config(path)


def test_overrides_nest_and_parse_yaml_scalars() -> None:
    settings = apply_overrides(
        GRPOSettings(lora=None),
        ["max_steps=3", "lora.r=4", "reward_weights.gamma=0", "learning_rate=2e-6", "adapter=null"],
    )
    assert settings.max_steps == 3 and settings.learning_rate == 2e-6
    assert settings.lora == LoraSettings(r=4) and settings.reward_weights == {"gamma": 0}
    assert settings_from_dict({"lora": False}, "sft").lora is None
    with pytest.raises(ValueError, match="key=value"):
        apply_overrides(SFTSettings(), ["max_steps"])
    with pytest.raises(ValueError, match="nest"):
        apply_overrides(SFTSettings(), ["model.name=x"])


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_train_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def test_cli_resolves_flags_over_the_file(capsys) -> None:
    args = _parse(
        [
            "train",
            "grpo",
            "--config",
            str(EXAMPLES / "grpo_tiny.yaml"),
            "--max-steps",
            "5",
            "--model",
            "/m",
            "--resume",
            "--set",
            "num_generations=4",
            "--print-config",
        ]
    )
    assert run_train(args) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["max_steps"] == 5 and printed["model"] == "/m"
    assert printed["num_generations"] == 4 and printed["resume_from_checkpoint"] is True
    args = _parse(["train", "sft", "--config", str(EXAMPLES / "grpo_tiny.yaml")])
    assert run_train(args) == 2  # a grpo file given to sft


def test_importing_the_package_stays_cheap() -> None:
    code = (
        "import sys, langchain_codevision, langchain_codevision.training as t\n"
        "from langchain_codevision.training import SFTSettings, load_config\n"
        "heavy = [m for m in ('torch', 'trl', 'peft', 'transformers') if m in sys.modules]\n"
        "print(heavy, sorted(t.__all__) == t.__all__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[] True"
