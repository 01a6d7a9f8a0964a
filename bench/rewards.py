"""Benchmark: reward throughput (rollouts per second) on verl response strings.

Run: ``python bench/rewards.py [--rollouts N]``. Writes ``bench/results/rewards.{json,md}``.

``N`` (default 2,000) verl-decoded rollouts are built with a fixed seed: 0 to 4 tool calls
(rotations, crops, enhancements, a failing call now and then), tool replies in the release's
exact texts, a final answer. Each is scored with ``score_rollout`` (release op reader, then
the AST reader), in groups of 8 with ``score_group`` (as GRPO scores a prompt), and through
the verl entry point ``compute_score``. The baseline, measured in the same run, is the
accuracy-only reward the release's ``compute_score`` returns (answer extraction and the
answer rule). One GRPO step of the release (64 prompts x 8 rollouts = 512) is the target
scale.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import write_report
from langchain_codevision.protocol import RELEASE_SUCCESS, answers_match, extract_answer
from langchain_codevision.rewards import compute_score, score_group, score_rollout

CODES = [
    "result = image.rotate(270, expand=True)",
    "result = image.rotate(90, expand=True)",
    "x1, y1 = 120, 80\nresult = image.crop((x1, y1, x1 + 300, y1 + 200))",
    "result = ImageEnhance.Contrast(image).enhance(1.8)",
    "result = Image.fromarray(np.rot90(np.array(image), k=3))",
    "w, h = image.size\nresult = image.crop((0, 0, w // 2, h // 2)).resize((w, h))",
    "result = ImageOps.mirror(image).filter(ImageFilter.SHARPEN)",
]
ERROR = "Error: Code execution error: name 'foo' is not defined." + RELEASE_SUCCESS[62:]
STEP_ROLLOUTS = 512


def turn(rng: random.Random) -> str:
    arguments = {
        "code": rng.choice(CODES),
        "description": rng.choice(["rotate", "crop the sign", ""]),
        "image_index": rng.randrange(2),
    }
    payload = json.dumps({"name": "code_image_tool", "arguments": arguments})
    think = "Let me look at the image again. " * rng.randrange(1, 6)
    return f"<think>{think}</think>\n<tool_call>\n{payload}\n</tool_call>"


def rollout(rng: random.Random) -> str:
    parts = []
    for _ in range(rng.randrange(5)):
        reply = ERROR if rng.random() < 0.15 else RELEASE_SUCCESS
        parts.append(f"{turn(rng)}user\n<tool_response>\n{reply}\n</tool_response>\nassistant\n")
    final = rng.choice(["42", "41", "B"])
    parts.append(f"<think>The text reads clearly now.</think>\n<answer>{final}</answer>")
    return "".join(parts)


def rate(fn: Callable[[], object], count: int, repeat: int = 3) -> float:
    """Best rollouts per second over ``repeat`` passes."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return count / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rollouts", type=int, default=2000)
    count = parser.parse_args().rollouts
    rng = random.Random(0)
    texts = [rollout(rng) for _ in range(count)]
    record = {"ground_truth": "42", "transform": ["crop", "rotate_90"], "bbox": [120, 80, 420, 280]}
    info = {"transform": record["transform"], "bbox": record["bbox"], "question": "q"}

    def baseline() -> None:
        for text in texts:
            answers_match(extract_answer(text), "42")

    def release() -> None:
        for text in texts:
            score_rollout(text, **record)

    def ast_mode() -> None:
        for text in texts:
            score_rollout(text, ops_mode="ast", image_size=(800, 600), **record)

    def groups() -> None:
        for start in range(0, count, 8):
            score_group(texts[start : start + 8], **record)

    def verl_entry() -> None:
        for text in texts:
            compute_score("mvtoolbench", text, "42", info)

    measured = {
        "accuracy only (baseline)": rate(baseline, count),
        "score_rollout, release ops": rate(release, count),
        "score_rollout, ast ops": rate(ast_mode, count),
        "score_group, groups of 8": rate(groups, count),
        "verl compute_score": rate(verl_entry, count),
    }
    calls = sum(text.count("<tool_call>") for text in texts)
    rows = [
        {
            "metric": name,
            "value": value,
            "unit": "rollouts/s",
            "target": f">= {STEP_ROLLOUTS} (one release GRPO step per second)"
            if name != "accuracy only (baseline)"
            else "",
            "ok": None if name.startswith("accuracy") else value >= STEP_ROLLOUTS,
        }
        for name, value in measured.items()
    ]
    slowdown = measured["accuracy only (baseline)"] / measured["score_rollout, release ops"]
    rows.append({"metric": "full reward / accuracy-only time", "value": slowdown, "unit": "x"})
    path = write_report(
        "rewards",
        "Reward throughput on verl response strings",
        rows,
        {"rollouts": count, "tool_calls": calls, "mean_chars": sum(map(len, texts)) // count},
    )
    print(path.read_text())


if __name__ == "__main__":
    main()
