"""The tools in use: content blocks, artifacts, persistence, and inside create_agent."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, ToolMessage
from PIL import Image

from langchain_codevision import CodeVisionTool, ImageCodeTool
from tests.scripted_model import ScriptedChatModel, text_call, tools_call


@pytest.fixture
def tool(document_image):
    instance = ImageCodeTool(images=[document_image.rotate(90, expand=True)])
    yield instance
    instance.close()


def call(tool, code: str, image_index: int = 0, call_id: str = "1") -> ToolMessage:
    return tool.invoke(
        {
            "type": "tool_call",
            "name": tool.name,
            "id": call_id,
            "args": {"code": code, "image_index": image_index},
        }
    )


def test_result_comes_back_as_blocks_and_artifact(tool, document_image) -> None:
    message = call(tool, "result = image.rotate(270, expand=True)\nprint('fixed')")
    image_part, text_part = message.content
    assert image_part["type"] == "image" and image_part["mime_type"] == "image/png"
    decoded = Image.open(io.BytesIO(base64.b64decode(image_part["base64"])))
    assert np.array_equal(np.asarray(decoded), np.asarray(document_image))
    assert "fixed" in text_part["text"] and "image 1 (1000x1000)" in text_part["text"]
    assert message.artifact["output_indices"] == [1]
    assert np.array_equal(np.asarray(message.artifact["images"][0]), np.asarray(document_image))


def test_variables_and_outputs_persist_across_calls(tool) -> None:
    call(tool, "offset = 100\nresult = image.rotate(270, expand=True)")
    second = call(tool, "result = image.crop((offset, offset, 2 * offset, 2 * offset))", 1)
    assert second.artifact["output_indices"] == [2]
    assert second.artifact["images"][0].size == (100, 100)
    assert len(tool.steps) == 2


def test_errors_come_back_as_text_with_a_hint(tool) -> None:
    message = call(tool, "result = np.array(image).rotate(90)")
    assert message.content[0]["text"].startswith("Error: AttributeError")
    assert "Hint:" in message.content[0]["text"]
    assert message.artifact["images"] == [] and message.artifact["step"]["ok"] is False


async def test_async_invocation(tool) -> None:
    message = await tool.ainvoke(
        {"type": "tool_call", "name": tool.name, "id": "a", "args": {"code": "result = image"}}
    )
    assert message.artifact["output_indices"] == [1]


def test_add_image_extends_the_index_space(tool) -> None:
    call(tool, "result = image")
    index = tool.add_image(Image.new("RGB", (30, 30), "red"))
    assert index == 2
    message = call(tool, "result = image.crop((0, 0, 3, 3))", image_index=2)
    assert message.artifact["images"][0].getpixel((1, 1)) == (255, 0, 0)


def test_image_code_tool_inside_create_agent(document_image) -> None:
    tool = ImageCodeTool(images=[document_image.rotate(180)])
    model = ScriptedChatModel(
        replies=[tools_call("result = image.rotate(180)\nprint(result.size)"), AIMessage("done")]
    )
    agent = create_agent(model, tools=[tool], system_prompt="Fix the image orientation.")
    state = agent.invoke({"messages": [{"role": "user", "content": "Please fix it"}]})
    tool_messages = [m for m in state["messages"] if isinstance(m, ToolMessage)]
    assert len(tool_messages) == 1 and tool_messages[0].content[0]["type"] == "image"
    assert "(1000, 1000)" in tool_messages[0].content[-1]["text"]
    assert state["messages"][-1].content == "done"
    # the agent's model was given the tool's schema and later saw the image result
    assert model.bound_tools[0].name == "code_image_tool"
    assert any(isinstance(m, ToolMessage) for m in model.received[-1])
    tool.close()


def test_codevision_tool_inside_create_agent(tmp_path, document_image) -> None:
    path = tmp_path / "upside-down.png"
    document_image.rotate(180).save(path)
    vision = ScriptedChatModel(
        replies=[text_call("result = image.rotate(180)"), "<answer>Line 00</answer>"],
        dialect="text",
    )
    tool = CodeVisionTool(model=vision)
    planner = ScriptedChatModel(
        replies=[
            AIMessage(
                "",
                tool_calls=[
                    {
                        "name": "codevision",
                        "args": {"image": str(path), "question": "First words?"},
                        "id": "v1",
                        "type": "tool_call",
                    }
                ],
            ),
            AIMessage("The page starts with Line 00."),
        ]
    )
    agent = create_agent(planner, tools=[tool])
    state = agent.invoke({"messages": [{"role": "user", "content": "What does the scan say?"}]})
    result = next(m for m in state["messages"] if isinstance(m, ToolMessage))
    assert result.content == "Line 00"
    assert result.artifact["stop_reason"] == "answer" and result.artifact["steps"][0]["ok"]
    assert len(result.artifact["images"]) == 2


RELEASE_TAIL = (
    " Please keep thinking step-by-step inside the <think></think> tags to determine the next "
    "action. If additional tools are required, call them inside the <tool_calls></tool_calls> "
    "tags. Otherwise, provide your final answer within the <answer></answer> tags."
)


def test_image_code_tool_speaks_the_release_profile(document_image) -> None:
    tool = ImageCodeTool(images=[document_image], profile="release")
    try:
        assert tool.description.startswith("A unified tool for image processing")
        message = call(tool, "assert PI > 3 and cv is cv2\nimg = img.crop((0, 0, 30, 20))")
        image_part, text_part = message.content
        assert image_part["type"] == "image"
        assert text_part["text"] == (
            "Here is the processed image. Now, analyze the returned results." + RELEASE_TAIL
        )
        assert message.artifact["images"][0].size == (30, 20)
        failed = call(tool, "result = 1 / 0", call_id="2")
        assert failed.content == [
            {
                "type": "text",
                "text": "Error: Code execution error: division by zero." + RELEASE_TAIL,
            }
        ]
        assert [step["ok"] for step in tool.steps] == [True, False]
    finally:
        tool.close()


async def test_image_code_tool_async_uses_the_same_executor(document_image) -> None:
    tool = ImageCodeTool(images=[document_image])
    try:
        message = await tool.ainvoke(
            {
                "type": "tool_call",
                "name": tool.name,
                "id": "a",
                "args": {"code": "result = image.crop((0, 0, 8, 8))", "image_index": 0},
            }
        )
        assert message.artifact["output_indices"] == [1]
        assert message.content[-1]["text"].startswith("The code ran. Result: image 1 (8x8).")
    finally:
        tool.close()


def test_codevision_tool_passes_its_profile_to_the_graph(document_image) -> None:
    model = ScriptedChatModel(replies=["<answer>ok</answer>"], dialect="text")
    tool = CodeVisionTool(model=model, profile="release")
    content, artifact = tool._run(image=document_image, question="q")
    assert content == "ok" and artifact["stop_reason"] == "answer"
    assert tool.graph.codevision_nodes.profile.name == "release"
    system = model.received[0][0].content
    assert system.startswith("You are an advanced MLLM") and "# Tools" in system
