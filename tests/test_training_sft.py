"""SFT end to end on the tiny Qwen2.5-VL: trajectories synthesised through the real graph and
kernel, exported in TRL format, trained with TRL's SFTTrainer + LoRA, reloaded as an adapter."""

from __future__ import annotations

import json
import math
import shutil

import pytest

pytest.importorskip("torch")
pytest.importorskip("trl")

from transformers import TrainerCallback

from langchain_codevision.data.export import export_trl
from langchain_codevision.data.synth import default_sample_for, synthesize
from langchain_codevision.data.trajectory import load_trajectories
from langchain_codevision.kernel import KernelPool
from langchain_codevision.models import ChatLocalVLM
from langchain_codevision.protocol import RELEASE_SUCCESS, release_system_prompt
from langchain_codevision.training import (
    LoraSettings,
    SFTSettings,
    build_sft_trainer,
    inspect_mask,
    load_sft_dataset,
    train_sft,
)
from langchain_codevision.training._common import trainable_parameters

pytest_plugins = ("tests.local_fixtures",)


@pytest.fixture(scope="module")
def trl_data(tmp_path_factory):
    """Four release-profile trajectories that really ran, exported for TRL."""
    synth = tmp_path_factory.mktemp("synth")
    with KernelPool(size=2) as pool:
        report = synthesize(
            default_sample_for(seed=7),
            synth,
            4,
            seed=7,
            pool=pool,
            progress=False,
            profile="release",
            mix={"single_tool": 0.5, "error_handling": 0.5},
        )
    assert report.kept >= 3
    out = tmp_path_factory.mktemp("trl")
    export_trl(load_trajectories(synth), out)
    return out


def _settings(model, data, out, **changes) -> SFTSettings:
    base = dict(
        model=str(model),
        data=str(data),
        output_dir=str(out),
        max_steps=2,
        per_device_train_batch_size=1,
        gradient_accumulation_steps=1,
        image_max_pixels=None,
        max_length=4096,
        lora=LoraSettings(r=4, alpha=8, dropout=0.0),
        save_steps=1,
        learning_rate=5e-2,
        warmup_ratio=0.0,
        lr_scheduler_type="constant",
        dtype="float32",
    )
    base.update(changes)
    return SFTSettings(**base)


def test_dataset_decodes_user_and_tool_images(trl_data) -> None:
    row = load_sft_dataset(trl_data)[0]
    roles = [m["role"] for m in row["messages"]]
    assert roles[:3] == ["system", "user", "assistant"] and "tool" in roles
    assert len(row["images"]) == 1 and row["images"][0].size[0] > 0
    tool_parts = [p for m in row["messages"] if m["role"] == "tool" for p in m["content"]]
    assert any(p["type"] == "image" and hasattr(p["image"], "size") for p in tool_parts)
    assert all(None not in part.values() for m in row["messages"] for part in m["content"])


def test_loss_is_on_assistant_tokens_only(tiny_vlm_path, trl_data, tmp_path) -> None:
    trainer = build_sft_trainer(_settings(tiny_vlm_path, trl_data, tmp_path))
    row = json.loads((trl_data / "codevision.jsonl").read_text().splitlines()[0])
    view = inspect_mask(trainer, 0)
    assistant = [
        "".join(p["text"] for p in m["content"])
        for m in row["messages"]
        if m["role"] == "assistant"
    ]
    assert len(assistant) >= 2
    for text in assistant:
        assert text in view.trained  # every assistant turn is trained on ...
        assert text not in view.masked
    assert "<|im_end|>" in view.trained  # ... with its end-of-turn token
    # system, user and tool tokens are masked
    question = row["messages"][1]["content"][-1]["text"].strip()
    assert question in view.masked and question not in view.trained
    assert release_system_prompt()[:80] in view.masked
    assert RELEASE_SUCCESS in view.masked and "Here is the processed image" not in view.trained
    assert "<tool_response>" in view.masked and "<tool_response>" not in view.trained
    assert "<|image_pad|>" not in view.trained
    assert 0 < view.trained_tokens < view.total_tokens
    counts = trainable_parameters(trainer.model)
    assert counts["total"] > 0 and counts["vision"] == 0  # vision tower frozen


class _Steps(TrainerCallback):
    def __init__(self) -> None:
        self.steps: list[int] = []

    def on_step_end(self, args, state, control, **kwargs):
        self.steps.append(state.global_step)


@pytest.mark.slow
def test_two_steps_save_an_adapter_that_changes_output(tiny_vlm_path, trl_data, tmp_path) -> None:
    result = train_sft(_settings(tiny_vlm_path, trl_data, tmp_path / "run"))
    assert len(result.losses) == 2 and all(math.isfinite(x) for x in result.losses)
    assert (result.adapter_dir / "adapter_config.json").exists()
    assert (result.adapter_dir / "adapter_model.safetensors").exists()
    assert {p.name for p in (tmp_path / "run").glob("checkpoint-*")} == {
        "checkpoint-1",
        "checkpoint-2",
    }
    prompt = "What is written in the image? Answer briefly."
    base = ChatLocalVLM(model=str(tiny_vlm_path), max_new_tokens=12, temperature=0)
    tuned = ChatLocalVLM(
        model=str(tiny_vlm_path),
        adapter=str(result.adapter_dir),
        max_new_tokens=12,
        temperature=0,
    )
    assert base.invoke(prompt).text != tuned.invoke(prompt).text

    # resume: a copy of the run continues from checkpoint-1 and runs only step 2
    resumed_dir = tmp_path / "resumed"
    shutil.copytree(tmp_path / "run" / "checkpoint-1", resumed_dir / "checkpoint-1")
    steps = _Steps()
    again = train_sft(
        _settings(tiny_vlm_path, trl_data, resumed_dir, resume_from_checkpoint=True),
        callbacks=[steps],
    )
    assert steps.steps == [2]
    assert [row["step"] for row in again.log_history if "loss" in row] == [1, 2]
    assert math.isfinite(again.losses[-1])


def test_a_template_without_tools_is_replaced(tiny_vlm_stock_template_path, trl_data, tmp_path):
    from transformers import AutoProcessor

    from langchain_codevision.training._common import choose_chat_template

    processor = AutoProcessor.from_pretrained(tiny_vlm_stock_template_path)
    assert choose_chat_template(processor, "checkpoint") == "checkpoint"
    assert choose_chat_template(processor, "auto") == "qwen3_vl"  # stock Qwen2.5-VL: no tools
    assert choose_chat_template(processor, "auto") == "checkpoint"  # now it renders them
    trainer = build_sft_trainer(_settings(tiny_vlm_stock_template_path, trl_data, tmp_path))
    view = inspect_mask(trainer, 0)
    assert "<tool_response>\n" in view.masked and RELEASE_SUCCESS in view.masked
    assert "<|im_start|>tool" not in view.masked  # tool turns as the release renders them
