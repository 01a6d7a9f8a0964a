"""The release profile over the local adapter: ``ChatLocalVLM`` renders exactly what the
release's chat template renders (with the release's template, and with the checkpoint's)."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage, HumanMessage

from langchain_codevision import create_codevision_graph
from langchain_codevision.kernel import KernelPool
from tests.release_render import render_release
from tests.scripted_model import ScriptedChatModel
from tests.test_release_protocol import (
    BROKEN,
    FINAL,
    QUESTION,
    REQUEST_PREFIXES,
    ROTATE,
    expected_conversation,
    sign,
)

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest_plugins = ("tests.local_fixtures",)


@pytest.fixture(scope="module")
def pool() -> KernelPool:
    with KernelPool(size=1) as shared:
        yield shared


@pytest.mark.parametrize("template", ["release", "checkpoint"])
@pytest.mark.parametrize("images", [1, 2])
def test_local_adapter_renders_exactly_as_the_release(pool, tiny_vlm_path, images, template):
    from langchain_codevision import ChatLocalVLM

    scripted = ScriptedChatModel(replies=[ROTATE, BROKEN, FINAL], dialect="text")
    graph = create_codevision_graph(scripted, profile="release", pool=pool)
    inputs = [sign(i) for i in range(images)]
    out = graph.invoke({"image": inputs, "question": QUESTION})
    assert out["answer"] == "42"
    profile = "release" if template == "release" else None
    local = ChatLocalVLM(model=str(tiny_vlm_path), profile=profile, max_pixels=64 * 28 * 28)
    expected = expected_conversation(images)
    for sent, prefix in zip(scripted.received, REQUEST_PREFIXES, strict=True):
        prompt = local.render_prompt(sent)
        assert prompt == render_release(expected[:prefix], add_generation_prompt=True)
    assert isinstance(out["messages"][-1], AIMessage)
    assert not any(
        isinstance(m, HumanMessage) and "all your tool calls" in m.text for m in out["messages"]
    )
