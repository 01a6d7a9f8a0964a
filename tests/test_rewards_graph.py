"""Scoring real graph runs: the release profile with a scripted model whose code runs in a
real kernel; the output state, its exported trajectory (in every stored form) and the verl
string of the same conversation give the same breakdown."""

from __future__ import annotations

import json
from typing import Any

import pytest
from PIL import Image, ImageDraw

from langchain_codevision import create_codevision_graph
from langchain_codevision.data.export import export_sharegpt, export_trl
from langchain_codevision.data.trajectory import trajectory_from_state, trajectory_row
from langchain_codevision.kernel import KernelPool
from langchain_codevision.rewards import decode_response, score_rollout
from tests.release_render import SUCCESS
from tests.scripted_model import ScriptedChatModel, text_call
from tests.test_rewards import verl

FIX = "result = image.rotate(270, expand=True)"
CROP = "box = (40, 20, 160, 80)\nresult = image.crop(box)"


@pytest.fixture(scope="module")
def pool() -> Any:
    with KernelPool(size=1) as shared:
        yield shared


@pytest.fixture(scope="module")
def rotated() -> Image.Image:
    page = Image.new("RGB", (200, 100), "white")
    ImageDraw.Draw(page).text((60, 40), "HELLO 42", fill="black")
    return page.rotate(90, expand=True)  # the record's transform: rotate_90


def run(pool: Any, image: Image.Image, replies: list[str]) -> dict[str, Any]:
    model = ScriptedChatModel(replies=replies, dialect="text")
    graph = create_codevision_graph(model, profile="release", pool=pool)
    return graph.invoke({"image": image, "question": "What number is printed?"})


def forms(out: dict[str, Any], tmp_path: Any) -> dict[str, Any]:
    """The state and every exported form of its trajectory."""
    trajectory = trajectory_from_state(out, name="ep")
    sharegpt = export_sharegpt([trajectory], tmp_path / "sg")
    trl = export_trl([trajectory], tmp_path / "trl")
    return {
        "state": out,
        "trajectory": trajectory,
        "row": trajectory_row(trajectory, tmp_path / "rows"),
        "sharegpt": json.loads(sharegpt.path.read_text())[0],
        "trl": json.loads(trl.path.read_text().splitlines()[0]),
    }


def test_state_and_exports_score_alike(pool: Any, rotated: Image.Image, tmp_path: Any) -> None:
    final = "<think>The page is upright now.</think>\n<answer>42</answer>"
    out = run(pool, rotated, [text_call(FIX, think="It is rotated.", description="rotate"), final])
    assert [s["ok"] for s in out["steps"]] == [True] and out["answer"] == "42"
    scored = {
        name: score_rollout(value, ground_truth="42", transform=["rotate_90"])
        for name, value in forms(out, tmp_path).items()
    }
    first = scored["state"]
    assert (
        first.calls == 1 and first.ops_used == ("rotate_270",) and first.total == pytest.approx(2.2)
    )
    for name, breakdown in scored.items():
        assert breakdown == first, name
    # the same conversation as verl decodes it
    expected_text = verl([text_call(FIX, think="It is rotated.", description="rotate"), final])
    assert decode_response(out).text == expected_text
    assert score_rollout(expected_text, ground_truth="42", transform=["rotate_90"]) == first


def test_errors_crops_and_ast_mode(pool: Any, rotated: Image.Image, tmp_path: Any) -> None:
    replies = [
        text_call("result = undefined_name.rotate(270)", think="try"),
        text_call(FIX, think="fix"),
        text_call(CROP, think="zoom", image_index=1),
        "<think>read it</think>\n<answer>42</answer>",
    ]
    out = run(pool, rotated, replies)
    assert [s["ok"] for s in out["steps"]] == [False, True, True]
    kwargs: dict[str, Any] = {
        "ground_truth": "42",
        "transform": ["crop", "rotate_90"],
        "bbox": [40, 20, 160, 80],
    }
    results = {name: score_rollout(v, **kwargs) for name, v in forms(out, tmp_path).items()}
    state = results["state"]
    assert state.calls == 3 and state.usage_penalty == 1.0
    assert state.ops_used == ("rotate_270", "crop") and state.mandatory == pytest.approx(1.0)
    assert state.crop_boxes == ((40.0, 20.0, 160.0, 80.0),)
    for name, breakdown in results.items():
        assert breakdown == state, name
    strict = {
        name: score_rollout(v, ops_mode="ast", image_size=rotated.size, **kwargs)
        for name, v in forms(out, tmp_path).items()
    }
    assert strict["state"].ops_used == ("rotate_270", "crop")
    assert "call 1 failed" in strict["state"].reasons["calls"]
    assert all(b == strict["state"] for b in strict.values())
    replies_seen = [c.reply for c in decode_response(out).calls]
    assert replies_seen[0].startswith("Error: Code execution error") and replies_seen[1] == SUCCESS


def test_tools_dialect_state(pool: Any, rotated: Image.Image) -> None:
    from langchain_core.messages import AIMessage

    from tests.scripted_model import tools_call

    model = ScriptedChatModel(
        replies=[tools_call(FIX), AIMessage("<think>ok</think><answer>42</answer>")],
        dialect="tools",
    )
    graph = create_codevision_graph(model, pool=pool)
    out = graph.invoke({"image": rotated, "question": "What number is printed?"})
    assert [s["ok"] for s in out["steps"]] == [True]
    b = score_rollout(out, ground_truth="42", transform=["rotate_90"])
    assert b.calls == 1 and b.ops_used == ("rotate_270",) and b.accuracy == 1.0
    assert (
        b.format == 0.0
    )  # the native call's turn has no <think>: the rendered text starts without
