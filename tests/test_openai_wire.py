"""ChatOpenAI against a local OpenAI-compatible server: the real wire format of both dialects."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from langchain_openai import ChatOpenAI
from PIL import Image

from langchain_codevision import create_codevision_graph
from langchain_codevision.images import resize_image
from langchain_codevision.kernel import KernelPool
from tests.openai_stub import OpenAIStub
from tests.scripted_model import text_call


@pytest.fixture(scope="module")
def pool() -> KernelPool:
    with KernelPool(size=1) as shared:
        yield shared


def decode_data_url(url: str) -> Image.Image:
    header, payload = url.split(",", 1)
    assert header == "data:image/png;base64"
    image = Image.open(io.BytesIO(base64.b64decode(payload)))
    assert image.format == "PNG"
    return image


def image_parts(message: dict) -> list[dict]:
    content = message.get("content")
    return [p for p in content if p.get("type") == "image_url"] if isinstance(content, list) else []


def test_text_dialect_over_a_served_model(pool, document_image) -> None:
    rotated = document_image.rotate(90, expand=True)
    with OpenAIStub(
        [text_call("result = image.rotate(270, expand=True)"), "<answer>Line 00</answer>"]
    ) as stub:
        model = ChatOpenAI(model="codevision-7b", base_url=stub.base_url, api_key="EMPTY")
        graph = create_codevision_graph(model, pool=pool, max_pixels=512 * 28 * 28)
        out = graph.invoke({"image": rotated, "question": "First words?"})
    assert graph.codevision_nodes.dialect == "text"
    assert out["answer"] == "Line 00" and out["steps"][0]["ok"]
    first, second = stub.requests
    assert "tools" not in first
    roles = [m["role"] for m in second["messages"]]
    assert roles == ["system", "user", "assistant", "user"]
    assert "<tool_call>" in second["messages"][2]["content"]
    [sent_input] = image_parts(second["messages"][1])
    [sent_result] = image_parts(second["messages"][3])
    assert decode_data_url(sent_input["image_url"]["url"]).size[1] > 500
    restored = decode_data_url(sent_result["image_url"]["url"])
    assert restored.size[0] == restored.size[1]  # the page is square again
    texts = [p["text"] for p in second["messages"][3]["content"] if p["type"] == "text"]
    assert texts[0].startswith("<tool_response>") and texts[-1].endswith("</tool_response>")


@pytest.mark.parametrize("separate_images", [False, True])
def test_tools_dialect_wire_format(pool, document_image, separate_images) -> None:
    call = {
        "id": "call_a",
        "name": "code_image_tool",
        "args": {"code": "result = image.rotate(180)", "image_index": 0},
    }
    with OpenAIStub([{"tool_calls": [call]}, "<answer>Line 00</answer>"]) as stub:
        model = ChatOpenAI(model="gpt-4o", base_url=stub.base_url, api_key="sk-test")
        graph = create_codevision_graph(
            model, dialect="tools", pool=pool, tool_images_in_user_message=separate_images
        )
        out = graph.invoke({"image": document_image.rotate(180), "question": "First words?"})
    assert out["answer"] == "Line 00"
    first, second = stub.requests
    assert first["tools"][0]["function"]["name"] == "code_image_tool"
    schema = first["tools"][0]["function"]["parameters"]
    assert set(schema["properties"]) == {"code", "description", "image_index"}
    assistant = second["messages"][2]
    assert assistant["tool_calls"][0]["id"] == "call_a"
    assert json.loads(assistant["tool_calls"][0]["function"]["arguments"])["image_index"] == 0
    tool_message = second["messages"][3]
    assert tool_message["role"] == "tool" and tool_message["tool_call_id"] == "call_a"
    if separate_images:
        assert image_parts(tool_message) == []
        follow = second["messages"][4]
        assert follow["role"] == "user"
        [part] = image_parts(follow)
    else:
        [part] = image_parts(tool_message)
    restored = decode_data_url(part["image_url"]["url"])
    assert restored.size == (896, 896)  # 1000x1000 fitted into the default 1024*28*28 budget
    assert np.array_equal(
        np.asarray(restored),
        np.asarray(resize_image(document_image, (896, 896))),
    )
