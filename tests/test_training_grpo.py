"""GRPO on the tiny Qwen2.5-VL with rollouts whose tool calls run in real sandboxed kernels."""

from __future__ import annotations

import json
import math
import re

import pytest
from PIL import Image, ImageDraw

pytest.importorskip("torch")
pytest.importorskip("trl")

from transformers.utils import get_json_schema

from langchain_codevision.data.records import Record
from langchain_codevision.protocol import RELEASE_SUCCESS, RELEASE_TAIL, get_profile
from langchain_codevision.training import (
    GRPOSettings,
    LoraSettings,
    build_grpo_trainer,
    load_grpo_dataset,
    train_grpo,
)
from langchain_codevision.training._scripted import script_rollouts
from langchain_codevision.training.environment import EnvironmentFactory
from tests.conftest import kernel_children

pytest_plugins = ("tests.local_fixtures",)

CALL = (
    "<think>The text is turned; rotate it back.</think>\n<tool_call>\n"
    '{"name": "code_image_tool", "arguments": {"code": "result = image.rotate(270, expand=True)",'
    ' "description": "rotate back", "image_index": 0}}\n</tool_call>'
)


@pytest.fixture(scope="module")
def page() -> Image.Image:
    image = Image.new("RGB", (160, 80), "white")
    ImageDraw.Draw(image).text((8, 30), "TOTAL 9", fill="black")
    return image


@pytest.fixture(scope="module")
def records(page) -> list[Record]:
    return [
        Record(
            question="What is the total?",
            answer="9",
            images=[page.rotate(90, expand=True)],
            transform="rotate_90",
            index=0,
        )
    ]


def _own_kernels() -> set[int]:
    return {p.pid for p in kernel_children()}


def test_environment_runs_real_calls_with_the_release_texts(page) -> None:
    before = _own_kernels()
    with EnvironmentFactory("release", pool_size=1) as factory:
        env = factory()
        env.reset(images=[page.rotate(90, expand=True)], prompt=[])
        assert not env.holds_kernel  # borrowed on the first call only
        image, text = env.code_image_tool("result = image.rotate(270, expand=True)", "fix", 0)
        assert image["type"] == "image" and image["image"].width > image["image"].height
        assert text == {"type": "text", "text": RELEASE_SUCCESS}
        assert env.holds_kernel and factory.lent() == 1 and env.calls == 1
        (error,) = env.code_image_tool("result = imagex", "typo", 0)
        assert error["text"] == (
            f"Error: Code execution error: name 'imagex' is not defined.{RELEASE_TAIL}"
        )
        (bad,) = env.code_image_tool("result = image", "x", "first")
        assert bad["text"] == f"Error: 'image_index' must be a non-negative integer.{RELEASE_TAIL}"
        (far,) = env.code_image_tool("result = image", "x", 9)
        assert far["text"].startswith("Error: image_index 9 is out of range. Available images: 0")
        assert [s["ok"] for s in env.steps] == [True, False, False, False]
        env.reset(images=[page], prompt=[])  # the next rollout: the old kernel goes back
        assert factory.lent() == 0 and factory.pool.lent_count == 0
    assert _own_kernels() <= before


def test_tool_schema_is_the_profiles() -> None:
    profile = get_profile("release")
    env = EnvironmentFactory(profile, pool=_NoPool())()
    rendered = get_json_schema(env.code_image_tool)["function"]
    wanted = profile.schema()["function"]
    assert rendered["name"] == wanted["name"] == "code_image_tool"
    assert rendered["parameters"]["required"] == wanted["parameters"]["required"]
    assert list(rendered["parameters"]["properties"]) == list(wanted["parameters"]["properties"])
    assert rendered["description"] == wanted["description"]
    for name, prop in wanted["parameters"]["properties"].items():
        got = rendered["parameters"]["properties"][name]
        assert got["type"] == prop["type"]
        # docstrings cannot hold a newline inside an argument's description
        assert got["description"] == re.sub(r"\s*\n+\s*", " ", prop["description"].strip())


class _NoPool:
    """Stands in for a pool where no kernel is ever lent."""

    def release(self, session) -> None:  # pragma: no cover - never lent
        raise AssertionError


def _settings(model, out, **changes) -> GRPOSettings:
    base = dict(
        model=str(model),
        output_dir=str(out),
        max_steps=1,
        num_generations=2,
        per_device_train_batch_size=2,
        gradient_accumulation_steps=1,
        max_turns=2,
        max_completion_length=400,
        image_max_pixels=None,
        dtype="float32",
        pool_size=1,
        lora=LoraSettings(r=4, alpha=8, dropout=0.0),
        save_steps=100,
    )
    base.update(changes)
    return GRPOSettings(**base)


@pytest.mark.slow
def test_one_grpo_step_with_kernel_rollouts(tiny_vlm_path, records, tmp_path) -> None:
    before = _own_kernels()
    settings = _settings(tiny_vlm_path, tmp_path)
    trainer = build_grpo_trainer(settings, load_grpo_dataset(records))
    trainer.codevision_reward.keep_responses = True
    vocab = trainer.processing_class.tokenizer.get_vocab()
    never = set(trainer.generation_config.suppress_tokens)
    assert {vocab["<|vision_start|>"], vocab["<|image_pad|>"], vocab["<|video_pad|>"]} <= never
    # rollout 0 calls the tool (a real call), then calls again in its last turn (turn limit)
    script_rollouts(trainer, lambda call, position: CALL if position == 0 else None)
    result = train_grpo(settings, trainer=trainer)

    first, second = result.breakdowns
    assert first["stop_reason"] == "turn_limit" and first["tool_calls"] == 1
    assert first["ops_used"] == ["rotate_270"] and first["mandatory"] == 1.0
    assert RELEASE_SUCCESS in first["response"]  # the tool's reply is in the rollout
    assert second["stop_reason"] != "turn_limit" and second["tool_calls"] == 0
    assert all(math.isfinite(b["total"]) and b["reasons"] for b in result.breakdowns)
    logged = next(row for row in result.log_history if "codevision/total" in row)
    assert logged["codevision/turn_limit_rate"] == 0.5
    assert logged["tools/call_frequency"] > 0 and math.isfinite(logged["loss"])
    assert logged["codevision/mandatory"] == pytest.approx(0.5)
    lines = (tmp_path / "rewards.jsonl").read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[0])["stop_reason"] == "turn_limit"
    assert (result.adapter_dir / "adapter_config.json").exists()
    assert trainer.codevision_factory.lent() == 0
    assert trainer.codevision_factory.pool.lent_count == 0
    assert _own_kernels() <= before  # no kernel process left


@pytest.mark.slow
def test_a_failing_step_returns_every_kernel(tiny_vlm_path, records, tmp_path) -> None:
    before = _own_kernels()
    settings = _settings(tiny_vlm_path, tmp_path)
    trainer = build_grpo_trainer(settings, load_grpo_dataset(records))
    factory = trainer.codevision_factory
    held: list[int] = []

    def script(call: int, position: int) -> str | None:
        if call == 1:  # after rollout 0's tool call ran, generation fails
            held.append(factory.lent())
            raise RuntimeError("generation failed")
        return CALL if position == 0 else None

    script_rollouts(trainer, script)
    with pytest.raises(RuntimeError, match="generation failed"):
        train_grpo(settings, trainer=trainer)
    assert held == [1]  # a kernel was lent when the step failed ...
    assert factory.lent() == 0 and factory.pool.lent_count == 0  # ... and came back
    assert _own_kernels() <= before


class _Tokenizer:
    """Decodes 'ids' that are indices into a list of texts."""

    def __init__(self, texts: list[str]) -> None:
        self.texts = texts

    def decode(self, ids, skip_special_tokens=True) -> str:
        return self.texts[ids[0]]


class _Env:
    def __init__(self, calls: int, at_limit: bool) -> None:
        self.calls, self.at_turn_limit, self.released = calls, at_limit, 0

    def _release(self) -> None:
        self.released += 1


def test_reward_scores_groups_logs_terms_and_returns_kernels(tmp_path) -> None:
    from langchain_codevision.rewards import score_group
    from langchain_codevision.training.reward import CodeVisionReward

    fix = (
        '<think>turned</think><tool_call>{"name": "code_image_tool", "arguments": {"code": '
        '"result = image.rotate(270, expand=True)", "description": "fix", "image_index": 0}}'
        "</tool_call>\nuser\n<tool_response>\n" + RELEASE_SUCCESS + "\n</tool_response>\n"
        "assistant\n<think>done</think><answer>9</answer>"
    )
    wrong = fix.replace("rotate(270", "rotate(90")  # the wrong way round
    texts = [fix, "<think>guess</think><answer>9</answer>", wrong, "no idea"]
    reward = CodeVisionReward(
        tokenizer=_Tokenizer(texts), num_generations=2, log_path=tmp_path / "r.jsonl"
    )
    metrics: dict[str, float] = {}
    extra: dict[str, list] = {}
    envs = [_Env(1, False), _Env(0, False), _Env(1, False), _Env(2, True)]
    completions = [
        [{"role": "assistant", "content": "<answer>9</answer>"}],
        [{"role": "assistant", "content": "<answer>9</answer>"}],
        [{"role": "assistant", "content": "<answer>9</answer>"}],
        [{"role": "assistant", "content": "", "tool_calls": [{"type": "function"}]}],
    ]
    totals = reward(
        prompts=[None] * 4,
        completions=completions,
        completion_ids=[[0], [1], [2], [3]],
        environments=envs,
        ground_truth=["9", "9", "9", "9"],
        transform=["rotate_90", "rotate_90", ["rotate_90"], ["rotate_90"]],
        bbox=[None] * 4,
        image_size=[[80, 160]] * 4,
        question=["q0", "q0", "q1", "q1"],
        index=[0, 0, 1, 1],
        log_metric=metrics.__setitem__,
        log_extra=extra.__setitem__,
    )
    # the same numbers as the reward package's own group scoring
    want = [b.total for b in score_group(texts[:2], ground_truth="9", transform="rotate_90")]
    want += [b.total for b in score_group(texts[2:], ground_truth="9", transform=["rotate_90"])]
    assert totals == pytest.approx(want)
    assert totals[0] > totals[1]  # the right rotation beats no tool
    assert [e.released for e in envs] == [1, 1, 1, 1]  # every kernel goes back
    stops = [row["stop_reason"] for row in reward.history]
    assert stops == ["answer", "answer", "answer", "turn_limit"]
    assert metrics["codevision/turn_limit_rate"] == 0.25
    assert metrics["codevision/total"] == pytest.approx(sum(want) / 4)
    assert extra["stop_reason"] == stops
    lines = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert [line["tool_calls"] for line in lines] == [1, 0, 1, 2]
    assert lines[0]["ops_used"] == ["rotate_270"] and lines[0]["reasons"]["mandatory"]


def test_reward_groups_follow_the_prompt_not_the_block_size() -> None:
    from langchain_codevision.training.reward import _groups

    columns = {"index": [0, 0, 0, 1, 1, 2], "question": ["a"] * 6, "ground_truth": ["x"] * 6}
    assert _groups(columns, 6, 4) == [(0, 3), (3, 5), (5, 6)]
    assert _groups({}, 5, 2) == [(0, 2), (2, 4), (4, 5)]
