"""The CodeVision graph driven by the local adapter over a tiny random Qwen2.5-VL model."""

from __future__ import annotations

from pathlib import Path

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from PIL import Image, ImageDraw

pytest.importorskip("torch")
pytest.importorskip("transformers")

from langchain_codevision import ChatLocalVLM, create_codevision_graph
from langchain_codevision.graph import resolve_dialect
from langchain_codevision.kernel import KernelPool

pytest_plugins = ("tests.local_fixtures",)


@pytest.fixture(scope="module")
def pool():
    with KernelPool(size=1) as shared:
        yield shared


def test_noise_from_a_random_model_reflects_and_stops_at_the_limit(
    tiny_vlm_path: Path, pool: KernelPool
) -> None:
    model = ChatLocalVLM(
        model=str(tiny_vlm_path), max_new_tokens=24, temperature=0, max_pixels=64 * 28 * 28
    )
    assert resolve_dialect(model) == "text"
    graph = create_codevision_graph(model, pool=pool, max_turns=3, max_pixels=64 * 28 * 28)
    page = Image.new("RGB", (280, 200), "white")
    ImageDraw.Draw(page).text((10, 10), "HELLO", fill="black")
    out = graph.invoke({"image": page, "question": "What does it say?"})
    assert out["stop_reason"] == "turn_limit" and out["turns"] == 3
    replies = [m for m in out["messages"] if isinstance(m, AIMessage)]
    assert len(replies) == 4  # three turns plus the final request without tools
    feedback = [m for m in out["messages"] if isinstance(m, HumanMessage)][1:]
    assert feedback and all("Error:" in m.text for m in feedback[:-1])
    assert len(graph.codevision_nodes.kernels) == 0 and pool.lent_count == 0
