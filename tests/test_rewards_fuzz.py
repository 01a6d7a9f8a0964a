"""Malformed input never raises: it degrades the affected terms to 0 with a reason.

300 fuzzed responses (random mutations of valid rollouts, random bytes, truncations) with a
fixed seed, hypothesis-generated text, and hand-picked broken fields.
"""

from __future__ import annotations

import json
import math
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from langchain_codevision.rewards import (
    TERMS,
    RewardBreakdown,
    compute_score,
    decode_response,
    score_group,
    score_rollout,
)
from tests.test_rewards import ERROR, answer, call, verl

VALID = [
    verl([call("result = image.rotate(270, expand=True)"), answer("42")]),
    verl([call("result = image.crop((100, 100, 300, 300))", "crop [1, 2, 3, 4]"), answer("7")]),
    verl(
        [call("x = 1/0"), call("result = ImageEnhance.Contrast(image).enhance(2)"), answer("B")],
        [ERROR, "Here is the processed image."],
    ),
    verl([answer("42")]),
]
TOKENS = [
    "<tool_call>",
    "</tool_call>",
    "<answer>",
    "</answer>",
    "<think>",
    "</think>",
    "<tool_response>",
    "</tool_response>",
    "user\n",
    "\nassistant\n",
    "{",
    "}",
    '"',
    "'",
    "\\",
    "\n",
    "[1, 2, 3, 4]",
    "rotate(90)",
    "np.rot90(",
    "crop((",
    "\x00",
    "\ud800",
]


def mutate(text: str, rng: random.Random) -> str:
    chars = list(text)
    for _ in range(rng.randrange(1, 12)):
        position = rng.randrange(len(chars) + 1)
        choice = rng.random()
        if choice < 0.35 and chars:
            del chars[min(position, len(chars) - 1) : position + rng.randrange(1, 20)]
        elif choice < 0.7:
            chars[position:position] = list(rng.choice(TOKENS))
        else:
            chars[position:position] = [chr(rng.randrange(1, 0x2FFF))]
    return "".join(chars)


def fuzzed(count: int = 300, seed: int = 1234) -> list[object]:
    rng = random.Random(seed)
    out: list[object] = []
    while len(out) < count:
        base = rng.choice(VALID)
        kind = rng.randrange(4)
        if kind == 0:
            out.append(mutate(base, rng))
        elif kind == 1:
            out.append(base[: rng.randrange(len(base))])
        elif kind == 2:
            out.append(bytes(rng.randrange(256) for _ in range(rng.randrange(400))))
        else:
            out.append(mutate(base[: rng.randrange(1, len(base))], rng))
    return out


def check(b: RewardBreakdown) -> None:
    assert isinstance(b, RewardBreakdown) and math.isfinite(b.total)
    for name in TERMS:
        assert math.isfinite(getattr(b, name)) and b.reasons[name]
    assert 0.0 <= b.accuracy <= 1.0 and b.format in (0.0, 1.0) and 0.0 <= b.mandatory <= 1.0
    assert b.usage_penalty >= 0 and b.spurious_penalty >= 0


@pytest.mark.parametrize("ops_mode", ["release", "ast"])
def test_300_fuzzed_responses(ops_mode: str) -> None:
    responses = fuzzed()
    assert len(responses) == 300 and len({repr(r) for r in responses}) > 250
    for response in responses:
        b = score_rollout(
            response,
            ground_truth="42",
            transform=["crop", "rotate_90"],
            bbox=[100, 100, 300, 300],
            image_size=(400, 400),
            ops_mode=ops_mode,  # type: ignore[arg-type]
        )
        check(b)
    for b in score_group(responses[:40], ground_truth="42", transform="rotate_90"):
        check(b)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(TOKENS) | st.text(max_size=12), max_size=40).map("".join))
def test_hypothesis_text(text: str) -> None:
    check(score_rollout(text, ground_truth="42", transform=["rotate_90"], bbox=[0, 0, 1, 1]))
    assert isinstance(compute_score("ocrbench", text, "42", {"transform": "crop"})["score"], float)


def raw_turn(arguments: object, name: object = "code_image_tool") -> str:
    payload = json.dumps({"name": name, "arguments": arguments})
    return f"<think>t</think>\n<tool_call>\n{payload}\n</tool_call>"


@pytest.mark.parametrize(
    ("arguments", "name", "calls", "ops"),
    [
        ({"code": 123, "description": {"x": 1}, "image_index": "a"}, "code_image_tool", 1, ()),
        ({"code": None, "description": ["crop"]}, "code_image_tool", 1, ("crop",)),
        ("result = image.rotate(90)", "code_image_tool", 1, ()),  # arguments as a string
        (None, "code_image_tool", 1, ()),
        ({"code": "result = image.rotate(90"}, "code_image_tool", 1, ()),  # does not parse
        ({"code": "result = image.rotate(90)"}, 7, 0, ()),  # the name is no string
        ({"description": "crop [1, 2, 3, 4]"}, "wrong_tool", 1, ("crop",)),
    ],
)
def test_broken_fields(arguments: object, name: object, calls: int, ops: tuple) -> None:
    text = verl([raw_turn(arguments, name), answer("42")], [ERROR])
    b = score_rollout(text, ground_truth="42", transform=["crop"], bbox=[1, 2, 3, 4])
    check(b)
    assert b.calls == calls and b.ops_used == ops


@pytest.mark.parametrize(
    "response",
    [
        None,
        42,
        b"\xff\xfe<think>",
        {},
        {"messages": "nope"},
        {"messages": [1, 2, 3]},
        {"turns": [{"role": "assistant", "text": None}, 5]},
        {"conversations": [{"from": "gpt", "value": ["<answer>42</answer>"]}]},
        [HumanMessage("q"), AIMessage("<think>x</think><answer>42</answer>")],
        [
            AIMessage("", tool_calls=[{"name": "code_image_tool", "args": {"code": 5}, "id": "1"}]),
            ToolMessage("Not run: the tool-call limit is reached.", tool_call_id="1"),
        ],
        object(),
    ],
)
def test_odd_inputs(response: object) -> None:
    b = score_rollout(response, ground_truth="42", transform=["rotate_90"])
    check(b)
    assert decode_response(response) is not None


def test_bad_record_fields_are_reasons() -> None:
    text = VALID[1]
    for bbox in ([1, 2, 3], "abc", [None, 1, 2, 3], {"x": 1}):
        b = score_rollout(text, ground_truth="7", transform=["crop"], bbox=bbox)
        check(b)
        assert b.mandatory == 0.0 and "bbox" in b.reasons["calls"] + b.reasons["mandatory"]
    as_text = score_rollout(text, ground_truth="7", transform=["crop"], bbox="[100, 100, 300, 300]")
    assert as_text.mandatory == 1.0 and as_text.accuracy == 1.0
    b = score_rollout(text, ground_truth="7", transform=object(), image_size="big", ops_mode="ast")
    check(b)
    assert b.expected == () and "transform could not be read" in b.reasons["calls"]
