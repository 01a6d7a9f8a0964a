"""Hostile model code through the whole graph: every episode ends with an answer, none raises."""

from __future__ import annotations

import pytest
from PIL import Image

from langchain_codevision import create_codevision_graph
from langchain_codevision.images import decode_trajectory_image
from langchain_codevision.kernel import KernelLimits, KernelPool
from tests.scripted_model import ScriptedChatModel, text_call

ANSWER = "<think>done</think><answer>ok</answer>"


@pytest.fixture(scope="module")
def pool() -> KernelPool:
    limits = KernelLimits(timeout=10, max_result_pixels=2_000_000, max_processes=32)
    with KernelPool(size=1, limits=limits) as shared:
        yield shared


def run(pool: KernelPool, code: str, *, profile: str = "default") -> dict:
    model = ScriptedChatModel(replies=[text_call(code), ANSWER], dialect="text")
    graph = create_codevision_graph(model, pool=pool, profile=profile)
    page = Image.new("RGB", (64, 48), "white")
    return graph.invoke({"image": page, "question": "What is on the page?"})


@pytest.mark.parametrize(
    "code",
    [
        "result = Image.new('F', (32, 32), 3.5)",
        "result = Image.new('I;16', (32, 32), 40000)",
        "result = Image.new('RGBa', (32, 32), (1, 2, 3, 4))",
        "result = image.convert('HSV')",
        "result = np.full((16, 16), np.nan)",
    ],
)
@pytest.mark.parametrize("profile", ["default", "release"])
def test_odd_result_modes_end_in_an_answer(pool, code: str, profile: str) -> None:
    out = run(pool, code, profile=profile)
    assert out["answer"] == "ok" and out["stop_reason"] == "answer"
    assert [step["ok"] for step in out["steps"]] == [True]
    produced = decode_trajectory_image(out["images"][1])
    assert produced.mode in ("L", "LA", "RGB", "RGBA")


def test_giant_result_is_reflected_not_raised(pool) -> None:
    out = run(pool, "result = Image.new('L', (4000, 4000))")
    assert out["answer"] == "ok" and [step["ok"] for step in out["steps"]] == [False]
    assert "at most 2000000" in out["steps"][0]["error"]
    assert len(out["images"]) == 1  # nothing of the refused image reached the host


@pytest.mark.parametrize(
    "code",
    [
        "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nos.kill(-1, signal.SIGKILL)",
        "import os\nwhile True:\n    os.fork()",
        "import ctypes\nctypes.string_at(0)",
    ],
    ids=["kill-parent", "fork-bomb", "segfault"],
)
def test_attacks_on_the_host_end_in_an_answer(pool, code: str) -> None:
    out = run(pool, code)
    assert out["answer"] == "ok" and out["stop_reason"] == "answer"
    assert len(out["steps"]) == 1
