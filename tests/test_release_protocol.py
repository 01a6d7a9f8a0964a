"""The release profile byte for byte: what a text-dialect model receives is what the
release's chat template renders for the same conversation (real kernels run the code)."""

from __future__ import annotations

import base64
import io

import pytest
from langchain_openai import ChatOpenAI
from PIL import Image, ImageDraw

from langchain_codevision import create_codevision_graph
from langchain_codevision.kernel import KernelPool
from tests.openai_stub import OpenAIStub
from tests.release_render import (
    SUCCESS,
    TAIL,
    release_tool_turn,
    release_user_turn,
    render_release,
    render_release_server,
    render_stock,
)
from tests.scripted_model import text_call

QUESTION = "What number is written on the sign?"
ROTATE = text_call("result = image.rotate(90, expand=True)", think="The sign is sideways.")
BROKEN = text_call("result = undefined_name.crop((0, 0, 5, 5))", think="Zoom in.")
FINAL = "<think>It reads 42.</think>\n<answer>42</answer>"
NAME_ERROR = "Error: Code execution error: name 'undefined_name' is not defined." + TAIL


@pytest.fixture(scope="module")
def pool() -> KernelPool:
    with KernelPool(size=1) as shared:
        yield shared


def sign(seed: int) -> Image.Image:
    image = Image.new("RGB", (112 + 28 * seed, 56), "white")  # multiples of 28: sent as is
    ImageDraw.Draw(image).text((10, 20), f"SIGN {seed}", fill="black")
    return image


def expected_conversation(images: int) -> list[dict]:
    """The conversation as the release's own loop holds it."""
    from langchain_codevision.protocol import release_system_prompt

    return [
        {"role": "system", "content": release_system_prompt()},
        release_user_turn(QUESTION, images),
        {"role": "assistant", "content": ROTATE},
        release_tool_turn(SUCCESS, image=True),
        {"role": "assistant", "content": BROKEN},
        release_tool_turn(NAME_ERROR, image=False),
        {"role": "assistant", "content": FINAL},
    ]


# prefix lengths of the three requests: system+user, +call+reply, +call+error
REQUEST_PREFIXES = (2, 4, 6)


@pytest.mark.parametrize("images", [1, 2])
def test_a_server_with_the_release_template_renders_it_exactly(pool, images) -> None:
    inputs = [sign(i) for i in range(images)]
    with OpenAIStub([ROTATE, BROKEN, FINAL]) as stub:
        model = ChatOpenAI(model="codevision-7b", base_url=stub.base_url, api_key="EMPTY")
        graph = create_codevision_graph(model, profile="release", pool=pool, tools_in_request=True)
        out = graph.invoke({"image": inputs if images > 1 else inputs[0], "question": QUESTION})
    assert out["answer"] == "42" and [s["ok"] for s in out["steps"]] == [True, False]
    expected = expected_conversation(images)
    for request, prefix in zip(stub.requests, REQUEST_PREFIXES, strict=True):
        assert request["tool_choice"] == "none"
        assert "# Tools" not in request["messages"][0]["content"]
        sent = render_release_server(
            request["messages"], request["tools"], add_generation_prompt=True
        )
        assert sent == render_release(expected[:prefix], add_generation_prompt=True)
    # without tools in the request, that template would drop the system turn entirely
    bare = render_release_server(stub.requests[0]["messages"], [], add_generation_prompt=True)
    assert "You are an advanced MLLM" not in bare


def test_reference_render_has_the_release_shape() -> None:
    text = render_release(expected_conversation(2), add_generation_prompt=False)
    assert text.startswith("<|im_start|>system\nYou are an advanced MLLM")
    assert "# Tools\n\nYou may call one or more functions" in text
    assert '{"type": "function", "function": {"name": "code_image_tool"' in text
    assert (
        "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>\n"
        "<|vision_start|><|image_pad|><|vision_end|>\nWhat number" in text
    )
    assert "<|im_start|>user\n<tool_response>\n<|vision_start|>" in text
    assert text.count("<|image_pad|>") == 3


def wire_messages(request: dict) -> list[dict]:
    return request["messages"]


@pytest.mark.parametrize("images", [1, 2])
def test_openai_wire_renders_exactly_as_the_release(pool, images) -> None:
    inputs = [sign(i) for i in range(images)]
    with OpenAIStub([ROTATE, BROKEN, FINAL]) as stub:
        model = ChatOpenAI(model="codevision-7b", base_url=stub.base_url, api_key="EMPTY")
        graph = create_codevision_graph(model, profile="release", pool=pool)
        out = graph.invoke({"image": inputs if images > 1 else inputs[0], "question": QUESTION})
    assert graph.codevision_nodes.dialect == "text"
    assert out["answer"] == "42" and out["stop_reason"] == "answer"
    assert [s["ok"] for s in out["steps"]] == [True, False]
    expected = expected_conversation(images)
    assert len(stub.requests) == 3
    for request, prefix in zip(stub.requests, REQUEST_PREFIXES, strict=True):
        assert "tools" not in request
        sent = render_stock(wire_messages(request), add_generation_prompt=True)
        assert sent == render_release(expected[:prefix], add_generation_prompt=True)
    whole = [*wire_messages(stub.requests[-1]), {"role": "assistant", "content": FINAL}]
    assert render_stock(whole, add_generation_prompt=False) == render_release(
        expected, add_generation_prompt=False
    )
    # the images on the wire are the inputs and the rotated result, as PNG
    last = wire_messages(stub.requests[-1])
    urls = [
        part["image_url"]["url"]
        for message in last
        if isinstance(message["content"], list)
        for part in message["content"]
        if part["type"] == "image_url"
    ]
    sizes = [Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).size for url in urls]
    assert sizes == [img.size for img in inputs] + [inputs[0].size[::-1]]
