"""Per-step time of SFT and GRPO on the tiny Qwen2.5-VL (CPU), and reward throughput.

Run: ``python bench/training.py [--sft-steps 6] [--grpo-steps 3]``. Writes
``bench/results/training.{json,md}``.

* SFT: release-profile trajectories synthesised through the real graph and kernel, exported
  for TRL, LoRA r=4, batch 1, assistant-only loss; the median wall time per optimizer step
  (the first step, which warms caches, is left out).
* GRPO: one prompt x 2 rollouts per step, 3 assistant turns, 400 completion tokens; rollout
  0 is scripted to call the tool (a real kernel call) and answer, rollout 1 is the tiny
  model's own random text; median wall time per step (generation, tool calls, reward,
  optimisation), first step left out.
* Reward: ``score_group`` over the decoded GRPO rollouts, rollouts per second.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

import torch
from PIL import Image, ImageDraw
from transformers import TrainerCallback

from bench._common import write_report
from langchain_codevision.data.export import export_trl
from langchain_codevision.data.records import Record
from langchain_codevision.data.synth import default_sample_for, synthesize
from langchain_codevision.data.trajectory import load_trajectories
from langchain_codevision.kernel import KernelPool
from langchain_codevision.models.tiny import build_tiny_qwen2_5_vl
from langchain_codevision.training import (
    GRPOSettings,
    LoraSettings,
    SFTSettings,
    build_grpo_trainer,
    load_grpo_dataset,
    train_grpo,
    train_sft,
)
from langchain_codevision.training._scripted import script_rollouts

CALL = (
    "<think>The text is turned; rotate it back.</think>\n<tool_call>\n"
    '{"name": "code_image_tool", "arguments": {"code": "result = image.rotate(270, expand=True)",'
    ' "description": "rotate back", "image_index": 0}}\n</tool_call>'
)
ANSWER = "<think>It reads TOTAL 9.</think>\n<answer>9</answer>"


class StepTimes(TrainerCallback):
    """Wall time of every optimizer step."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._start = 0.0

    def on_step_begin(self, args, state, control, **kwargs):
        self._start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.times.append(time.perf_counter() - self._start)


def steady(times: list[float]) -> float:
    """Median step time in ms, the first step left out when there are more."""
    kept = times[1:] if len(times) > 1 else times
    return round(statistics.median(kept) * 1000, 1)


def bench_sft(model: Path, work: Path, steps: int) -> dict[str, float]:
    synth = work / "synth"
    with KernelPool(size=2) as pool:
        synthesize(
            default_sample_for(seed=3),
            synth,
            6,
            seed=3,
            pool=pool,
            progress=False,
            profile="release",
        )
    export_trl(load_trajectories(synth), work / "trl")
    settings = SFTSettings(
        model=str(model),
        data=str(work / "trl"),
        output_dir=str(work / "sft"),
        max_steps=steps,
        per_device_train_batch_size=1,
        gradient_accumulation_steps=1,
        image_max_pixels=None,
        max_length=4096,
        lora=LoraSettings(r=4, alpha=8, dropout=0.0),
        save_steps=10_000,
        dtype="float32",
        report_to="none",
    )
    timer = StepTimes()
    train_sft(settings, callbacks=[timer])
    return {"step_ms": steady(timer.times), "steps": len(timer.times)}


def bench_grpo(model: Path, work: Path, steps: int) -> tuple[dict[str, float], list[str], dict]:
    page = Image.new("RGB", (160, 80), "white")
    ImageDraw.Draw(page).text((8, 30), "TOTAL 9", fill="black")
    record = Record(
        question="What is the total?",
        answer="9",
        images=[page.rotate(90, expand=True)],
        transform="rotate_90",
    )
    settings = GRPOSettings(
        model=str(model),
        output_dir=str(work / "grpo"),
        max_steps=steps,
        num_generations=2,
        per_device_train_batch_size=2,
        gradient_accumulation_steps=1,
        max_turns=3,
        max_completion_length=400,
        image_max_pixels=None,
        dtype="float32",
        pool_size=1,
        lora=LoraSettings(r=4, alpha=8, dropout=0.0),
        save_steps=10_000,
        report_to="none",
    )
    timer = StepTimes()
    trainer = build_grpo_trainer(settings, load_grpo_dataset([record]), callbacks=[timer])
    trainer.codevision_reward.keep_responses = True
    # per step: call 0 = first turns of both rollouts, call 1 = rollout 0 after its tool call
    script_rollouts(
        trainer,
        lambda call, position: (CALL if call % 2 == 0 else ANSWER) if position == 0 else None,
    )
    result = train_grpo(settings, trainer=trainer)
    calls = [b["tool_calls"] for b in result.breakdowns]
    responses = [b["response"] for b in result.breakdowns]
    return (
        {"step_ms": steady(timer.times), "steps": len(timer.times), "tool_calls": sum(calls)},
        responses,
        {"record": record},
    )


def bench_reward(responses: list[str], record: Record) -> float:
    from langchain_codevision.rewards import score_group

    batch = (responses * (64 // max(len(responses), 1) + 1))[:64]
    start = time.perf_counter()
    rounds = 0
    while time.perf_counter() - start < 2.0:
        for i in range(0, len(batch), 8):
            score_group(batch[i : i + 8], ground_truth=record.answer, transform=record.transform)
        rounds += 1
    return round(rounds * len(batch) / (time.perf_counter() - start), 1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sft-steps", type=int, default=6)
    parser.add_argument("--grpo-steps", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = build_tiny_qwen2_5_vl(work / "tiny")
        sft = bench_sft(model, work, args.sft_steps)
        grpo, responses, extra = bench_grpo(model, work, args.grpo_steps)
        reward = bench_reward(responses, extra["record"])
    rows = [
        {"metric": "SFT step (tiny, batch 1, LoRA r=4)", "value": sft["step_ms"], "unit": "ms"},
        {
            "metric": "GRPO step (tiny, 1 prompt x 2 rollouts)",
            "value": grpo["step_ms"],
            "unit": "ms",
        },
        {
            "metric": "GRPO kernel tool calls run",
            "value": grpo["tool_calls"],
            "unit": "calls",
            "ok": grpo["tool_calls"] >= grpo["steps"],
        },
        {"metric": "reward throughput (score_group)", "value": reward, "unit": "rollouts/s"},
    ]
    path = write_report(
        "training",
        "Training step benchmark (tiny Qwen2.5-VL, CPU)",
        rows,
        {
            "torch_threads": torch.get_num_threads(),
            "sft_steps": sft["steps"],
            "grpo_steps": grpo["steps"],
            "grpo_max_completion_length": 400,
        },
    )
    print(path.read_text())


if __name__ == "__main__":
    main()
