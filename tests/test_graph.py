"""The CodeVision graph end to end: scripted model replies, real kernel execution."""

from __future__ import annotations

import asyncio
import base64
import io

import numpy as np
import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver
from PIL import Image, ImageDraw

from langchain_codevision import ImageInputError, create_codevision_graph
from langchain_codevision.images import decode_trajectory_image
from langchain_codevision.kernel import KernelPool
from tests.scripted_model import ScriptedChatModel, text_call, tools_call

ANSWER = "<think>done</think><answer>HELLO 42</answer>"


@pytest.fixture(scope="module")
def pool() -> KernelPool:
    with KernelPool(size=1) as shared:
        yield shared


@pytest.fixture(scope="module")
def page() -> Image.Image:
    image = Image.new("RGB", (400, 240), "white")
    draw = ImageDraw.Draw(image)
    draw.text((20, 20), "HELLO 42", fill="black")
    draw.rectangle((300, 150, 380, 220), fill="blue")
    return image


def build(pool: KernelPool, replies: list, dialect: str = "text", **kwargs):
    model = ScriptedChatModel(replies=replies, dialect=dialect)
    return model, create_codevision_graph(model, pool=pool, **kwargs)


def pixels(item) -> np.ndarray:
    return np.asarray(decode_trajectory_image(item))


def test_rotation_fix_text_dialect(pool, page) -> None:
    rotated = page.rotate(90, expand=True)
    model, graph = build(pool, [text_call("result = image.rotate(270, expand=True)"), ANSWER])
    out = graph.invoke({"image": rotated, "question": "What does the page say?"})
    assert out["answer"] == "HELLO 42" and out["stop_reason"] == "answer" and out["turns"] == 2
    assert [s["ok"] for s in out["steps"]] == [True]
    assert np.array_equal(pixels(out["images"][1]), np.asarray(page))
    reply = out["messages"][3]
    assert isinstance(reply, HumanMessage)
    assert reply.content[0]["text"].startswith("<tool_response>")
    assert [b["type"] for b in reply.content] == ["text", "image", "text", "text"]
    # what the model saw second holds the corrected image, decodable as the declared PNG
    block = model.received[1][-1].content[1]
    decoded = Image.open(io.BytesIO(base64.b64decode(block["base64"])))
    assert decoded.format == "PNG" and block["mime_type"] == "image/png"
    assert decoded.size[0] > decoded.size[1]  # landscape again


def test_rotation_fix_tools_dialect(pool, page) -> None:
    flipped = page.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    model, graph = build(
        pool,
        [tools_call("result = ImageOps.mirror(image)"), AIMessage("<answer>HELLO 42</answer>")],
        dialect="tools",
    )
    out = graph.invoke({"image": flipped, "question": "Read it"})
    assert out["answer"] == "HELLO 42"
    assert model.bound_tools and model.bound_tools[0]["function"]["name"] == "code_image_tool"
    tool_msg = out["messages"][3]
    assert isinstance(tool_msg, ToolMessage) and tool_msg.tool_call_id == "call_1"
    assert tool_msg.content[0]["type"] == "image"
    assert np.array_equal(pixels(out["images"][1]), np.asarray(page))


def test_multi_op_chain_in_one_call(pool, page) -> None:
    code = (
        "rotated = image.rotate(180, expand=True)\n"
        "box = rotated.crop((0, 0, 200, 120))\n"
        "bigger = box.resize((400, 240))\n"
        "result = ImageEnhance.Contrast(bigger).enhance(2.0)\n"
        "print(result.size, result.mode)"
    )
    _, graph = build(pool, [text_call(code), ANSWER])
    out = graph.invoke({"image": page, "question": "q"})
    step = out["steps"][0]
    assert step["ok"] and step["stdout"].strip() == "(400, 240) RGB"
    assert (out["images"][1]["width"], out["images"][1]["height"]) == (400, 240)


def test_crop_a_previous_output_and_state_persists(pool, page) -> None:
    _, graph = build(
        pool,
        [
            text_call(
                "factor = 2\nresult = image.resize((image.width * factor, image.height * factor))"
            ),
            text_call("result = image.crop((0, 0, 100 * factor, 50 * factor))", image_index=1),
            ANSWER,
        ],
    )
    out = graph.invoke({"image": page, "question": "q"})
    assert [s["image_index"] for s in out["steps"]] == [0, 1]
    assert [(i["width"], i["height"]) for i in out["images"]] == [
        (400, 240),
        (800, 480),
        (200, 100),
    ]
    enlarged = pixels(out["images"][1])
    assert np.array_equal(pixels(out["images"][2]), enlarged[:100, :200])


def test_runtime_error_then_repair(pool, page) -> None:
    _model, graph = build(
        pool,
        [
            text_call("arr = np.array(image)\nresult = arr.rotate(90)"),
            text_call("result = Image.fromarray(np.array(image)).rotate(90, expand=True)"),
            ANSWER,
        ],
    )
    out = graph.invoke({"image": page, "question": "q"})
    assert [s["ok"] for s in out["steps"]] == [False, True]
    assert out["steps"][0]["error"].startswith("AttributeError")
    feedback = out["messages"][3].content[1]["text"]
    assert feedback.startswith(
        "Error: AttributeError: 'numpy.ndarray' object has no attribute 'rotate'"
    )
    assert "Hint: That is a PIL method but the object is a numpy array" in feedback
    assert out["answer"] == "HELLO 42"
    assert out["images"][1]["origin"] == "tool" and len(out["images"]) == 2


def test_malformed_json_then_repair(pool, page) -> None:
    broken = (
        '<think>x</think><tool_call>{"name": "code_image_tool", "arguments": {"code": }}'
        "</tool_call>"
    )
    _model, graph = build(pool, [broken, text_call("result = image"), ANSWER])
    out = graph.invoke({"image": page, "question": "q"})
    feedback = out["messages"][3]
    assert isinstance(feedback, HumanMessage) and feedback.content.startswith("Error:")
    assert "<tool_call>" in feedback.content  # the hint shows the expected format
    assert out["steps"][0]["ok"] and out["answer"] == "HELLO 42"


def test_near_miss_json_is_tolerated(pool, page) -> None:
    sloppy = (
        "<think>t</think>\n<tool_call>\n{'name': 'code_image_tool', 'arguments': "
        "{'code': 'result = image.rotate(90, expand=True)', 'image_index': 0,},}\n"
    )
    _, graph = build(pool, [sloppy, ANSWER])
    out = graph.invoke({"image": page, "question": "q"})
    assert out["steps"][0]["ok"] and out["steps"][0]["repaired"]


def test_turn_limit_forces_a_final_answer(pool, page) -> None:
    def final(messages):
        assert "You have used all your tool calls" in messages[-1].content
        return "<answer>best guess</answer>"

    model, graph = build(pool, [text_call("result = image")] * 3 + [final], max_turns=3)
    out = graph.invoke({"image": page, "question": "q"})
    assert out["stop_reason"] == "turn_limit" and out["answer"] == "best guess"
    assert out["turns"] == 3 and len(out["steps"]) == 2  # the third call is not run
    assert len(model.received) == 4


def test_turn_limit_in_tools_dialect_closes_open_calls(pool, page) -> None:
    model, graph = build(
        pool,
        [tools_call("result = image", call_id=f"c{i}") for i in range(2)] + ["<answer>x</answer>"],
        dialect="tools",
        max_turns=2,
    )
    out = graph.invoke({"image": page, "question": "q"})
    last_sent = model.received[-1]
    dangling = [m for m in last_sent if isinstance(m, ToolMessage) and m.tool_call_id == "c1"]
    assert dangling and "Not run" in dangling[0].content
    assert out["answer"] == "x" and out["stop_reason"] == "turn_limit"


def test_noise_output_reflects_then_stops_at_the_limit(pool, page) -> None:
    _model, graph = build(pool, ["asdf qwer zxcv"], max_turns=3)
    out = graph.invoke({"image": page, "question": "q"})
    assert out["stop_reason"] == "turn_limit" and out["steps"] == []
    reflections = [
        m for m in out["messages"] if isinstance(m, HumanMessage) and "Error:" in str(m.content)
    ]
    assert len(reflections) == 2
    assert out["answer"] == "asdf qwer zxcv"  # the forced reply, taken as the answer


def test_answer_without_tools(pool, page) -> None:
    _model, graph = build(pool, ["<think>easy</think><answer>blue</answer>"])
    out = graph.invoke({"image": page, "question": "What color is the box?"})
    assert out["answer"] == "blue" and out["steps"] == [] and out["turns"] == 1
    assert len(out["images"]) == 1


def test_several_inputs_and_the_image_cap(pool, page) -> None:
    other = Image.new("RGB", (100, 100), "green")
    calls = [text_call(f"result = image.resize((50 + {i}, 50))", image_index=1) for i in range(4)]
    model, graph = build(pool, [*calls, ANSWER], max_images_in_context=4)
    out = graph.invoke({"image": [page, other], "question": "q"})
    assert [s["image_index"] for s in out["steps"]] == [1, 1, 1, 1]
    assert len(out["images"]) == 6
    last_view = model.received[-1]
    shown = [
        b
        for m in last_view
        if isinstance(m.content, list)
        for b in m.content
        if b.get("type") == "image"
    ]
    assert [b["id"] for b in shown] == ["cv-image-0", "cv-image-1", "cv-image-4", "cv-image-5"]
    omitted = [
        b["text"]
        for m in last_view
        if isinstance(m.content, list)
        for b in m.content
        if b.get("type") == "text" and "omitted" in b.get("text", "")
    ]
    assert len(omitted) == 2 and "image_index 2" in omitted[0]


def test_print_and_display_images_come_back(pool, page) -> None:
    code = "print('width', image.width)\ndisplay(image.crop((0, 0, 10, 10)))\nresult = image"
    _, graph = build(pool, [text_call(code), ANSWER])
    out = graph.invoke({"image": page, "question": "q"})
    assert out["steps"][0]["output_indices"] == [1, 2]
    assert (out["images"][2]["width"], out["images"][2]["height"]) == (10, 10)
    text = out["messages"][3].content[-2]["text"]
    assert "width 400" in text and "image 2 (10x10)" in text


def test_result_of_the_wrong_type_gets_a_hint(pool, page) -> None:
    _, graph = build(pool, [text_call("result = np.zeros((4, 4, 7))"), ANSWER])
    out = graph.invoke({"image": page, "question": "q"})
    assert out["steps"][0]["error"].startswith("NoImage")
    text = out["messages"][3].content[1]["text"]
    assert "numpy array (shape [4, 4, 7], dtype float64)" in text


def test_bad_image_index_and_oversized_code(pool, page) -> None:
    _, graph = build(
        pool,
        [text_call("result = image", image_index=5), text_call("x = 1\n" * 500), ANSWER],
        max_code_chars=100,
    )
    out = graph.invoke({"image": page, "question": "q"})
    errors = [s["error"] for s in out["steps"]]
    assert "image_index 5 does not exist; valid values are 0 to 0" in errors[0]
    assert "the code has 3000 characters; the limit is 100" in errors[1]


def test_extreme_aspect_ratio_is_rejected(pool, page) -> None:
    _, graph = build(pool, [text_call("result = image.resize((400, 1))"), ANSWER])
    out = graph.invoke({"image": page, "question": "q"})
    assert "aspect ratio 400 is not below 200" in out["steps"][0]["error"]


def test_repair_clamps_crop_boxes(pool, page) -> None:
    code = "```python\n    result = image.crop((-50, -50, 5000, 100))\n```"
    _, graph = build(pool, [text_call(code), ANSWER], repair=True)
    out = graph.invoke({"image": page, "question": "q"})
    step = out["steps"][0]
    assert (
        step["ok"] and step["original_code"].strip() == "result = image.crop((-50, -50, 5000, 100))"
    )
    assert "clamp_box" in step["code"]
    assert any("clamped 1 crop box" in note for note in step["repaired"])
    assert (out["images"][1]["width"], out["images"][1]["height"]) == (400, 100)


def test_repair_is_off_by_default(pool, page) -> None:
    _, graph = build(pool, [text_call("result = image.crop((300, 0, 100, 50))"), ANSWER])
    out = graph.invoke({"image": page, "question": "q"})
    assert not out["steps"][0]["ok"] and out["steps"][0]["original_code"] is None


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"image": b"not an image at all", "question": "q"}, "not a recognised image format"),
        ({"image": 12345, "question": "q"}, "unsupported image input of type int"),
        ({"image": "/no/such/file.png", "question": "q"}, "image file not found"),
        ({"image": Image.new("RGB", (4, 4)), "question": "  "}, "'question' must be a non-empty"),
        ({"question": "q"}, "pass an 'image' and a 'question', or 'messages'"),
    ],
)
def test_bad_input_fails_before_any_model_call(pool, payload, message) -> None:
    model, graph = build(pool, [ANSWER])
    with pytest.raises(ValueError, match=message):
        graph.invoke(payload)
    assert model.received == []


def test_corrupt_and_bomb_images_are_refused(pool, page, tmp_path) -> None:
    buffer = io.BytesIO()
    page.save(buffer, format="PNG")
    truncated = buffer.getvalue()[:200]
    model, graph = build(pool, [ANSWER])
    with pytest.raises(ImageInputError, match="corrupt or truncated"):
        graph.invoke({"image": truncated, "question": "q"})
    bomb = tmp_path / "bomb.png"
    Image.new("1", (20000, 20000)).save(bomb)
    with pytest.raises(ImageInputError, match="decompression bomb"):
        graph.invoke({"image": str(bomb), "question": "q"})
    assert model.received == []


def test_messages_input(pool, page) -> None:
    from langchain_codevision.images import to_image_block

    model, graph = build(pool, [text_call("result = image.rotate(90, expand=True)"), ANSWER])
    message = HumanMessage([to_image_block(page), {"type": "text", "text": "read it"}])
    out = graph.invoke({"messages": [message]})
    assert out["answer"] == "HELLO 42" and out["steps"][0]["ok"]
    assert model.received[0][0].type == "system"


async def test_ainvoke_astream_and_batch(pool, page) -> None:
    _, graph = build(pool, [text_call("result = image"), ANSWER])
    out = await graph.ainvoke({"image": page, "question": "q"})
    assert out["answer"] == "HELLO 42"
    _, graph = build(pool, [text_call("result = image"), ANSWER])
    nodes = [next(iter(chunk)) async for chunk in graph.astream({"image": page, "question": "q"})]
    assert nodes == ["prepare", "model", "execute", "model", "finish"]
    model = ScriptedChatModel(replies=["<answer>a</answer>"], dialect="text")
    graph = create_codevision_graph(model, pool=pool)
    results = await graph.abatch([{"image": page, "question": "q"}] * 3)
    assert [r["answer"] for r in results] == ["a"] * 3


def test_stream_and_batch_sync(pool, page) -> None:
    _, graph = build(pool, [text_call("oops("), text_call("result = image"), ANSWER])
    nodes = [next(iter(chunk)) for chunk in graph.stream({"image": page, "question": "q"})]
    assert nodes == [
        "prepare",
        "model",
        "execute",
        "reflect",
        "model",
        "execute",
        "model",
        "finish",
    ]
    model = ScriptedChatModel(replies=["<answer>b</answer>"], dialect="text")
    results = create_codevision_graph(model, pool=pool).batch(
        [{"image": page, "question": "q"}] * 2
    )
    assert [r["answer"] for r in results] == ["b", "b"]


def test_checkpointer_serialises_images(pool, page) -> None:
    model = ScriptedChatModel(
        replies=[text_call("result = image.rotate(90, expand=True)"), ANSWER], dialect="text"
    )
    graph = create_codevision_graph(model, pool=pool, checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "t1"}}
    out = graph.invoke({"image": page, "question": "q"}, config)
    saved = graph.get_state(config).values
    assert saved["answer"] == out["answer"] == "HELLO 42"
    assert np.array_equal(pixels(saved["images"][1]), np.asarray(page.rotate(90, expand=True)))
    history = list(graph.get_state_history(config))
    assert len(history) >= 5


def test_kernel_is_always_released(pool, page) -> None:
    def explode(messages):
        raise RuntimeError("model backend down")

    _model, graph = build(pool, [text_call("result = image"), explode])
    with pytest.raises(RuntimeError, match="model backend down"):
        graph.invoke({"image": page, "question": "q"})
    nodes = graph.codevision_nodes
    assert len(nodes.kernels) == 0 and pool.lent_count == 0


async def test_cancellation_releases_the_kernel(pool, page) -> None:
    _, graph = build(pool, [text_call("import time\ntime.sleep(20)\nresult = image"), ANSWER])
    task = asyncio.ensure_future(graph.ainvoke({"image": page, "question": "q"}))
    for _ in range(100):
        await asyncio.sleep(0.1)
        if pool.lent_count:
            break
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.2)
    assert len(graph.codevision_nodes.kernels) == 0 and pool.lent_count == 0


def test_tool_images_can_travel_in_a_user_message(pool, page) -> None:
    _model, graph = build(
        pool,
        [tools_call("result = image"), "<answer>ok</answer>"],
        dialect="tools",
        tool_images_in_user_message=True,
    )
    out = graph.invoke({"image": page, "question": "q"})
    tool_msg, follow = out["messages"][3], out["messages"][4]
    assert isinstance(tool_msg, ToolMessage) and all(b["type"] == "text" for b in tool_msg.content)
    assert isinstance(follow, HumanMessage) and follow.content[0]["type"] == "image"


def test_pixel_budget_applies_to_the_model_view_only(pool) -> None:
    big = Image.new("RGB", (2000, 1000), "white")
    model, graph = build(pool, [ANSWER], max_pixels=200 * 28 * 28)
    out = graph.invoke({"image": big, "question": "q"})
    block = model.received[0][1].content[0]
    shown = Image.open(io.BytesIO(base64.b64decode(block["base64"])))
    assert shown.size[0] * shown.size[1] <= 200 * 28 * 28 and shown.size[0] % 28 == 0
    assert (out["images"][0]["width"], out["images"][0]["height"]) == (2000, 1000)


def test_dialect_resolution() -> None:
    from langchain_openai import ChatOpenAI

    from langchain_codevision.graph import resolve_dialect

    assert resolve_dialect(ChatOpenAI(model="gpt-4o", api_key="x")) == "tools"
    served = ChatOpenAI(model="codevision-7b", api_key="x", base_url="http://127.0.0.1:8000/v1")
    assert resolve_dialect(served) == "text"
    assert resolve_dialect(ScriptedChatModel(dialect="tools")) == "tools"
    with pytest.raises(ValueError, match="dialect must be"):
        resolve_dialect(ScriptedChatModel(), "xml")


def test_force_answer_keeps_every_input_image(pool, page) -> None:
    second = page.rotate(180)
    model, graph = build(
        pool,
        [
            text_call("result = image.crop((0, 0, 50, 50))"),
            text_call("result = image"),
            "<answer>two</answer>",
        ],
        max_turns=2,
        max_images_in_context=2,
    )
    out = graph.invoke({"image": [page, second], "question": "q"})
    assert out["stop_reason"] == "turn_limit" and out["answer"] == "two"
    final = model.received[-1]
    assert "You have used all your tool calls" in final[-1].text
    shown = [
        block["id"]
        for message in final
        if isinstance(message.content, list)
        for block in message.content
        if isinstance(block, dict) and block.get("type") == "image"
    ]
    assert shown == ["cv-image-0", "cv-image-1"]  # both inputs; the crop gave way


def test_several_tool_calls_in_one_reply_count_against_the_budget(pool, page) -> None:
    many = AIMessage(
        "",
        tool_calls=[
            {
                "name": "code_image_tool",
                "args": {"code": f"result = image.crop((0, 0, {10 + i}, 10))", "image_index": 0},
                "id": f"c{i}",
                "type": "tool_call",
            }
            for i in range(5)
        ],
    )
    model, graph = build(pool, [many, "<answer>x</answer>"], dialect="tools", max_turns=3)
    out = graph.invoke({"image": page, "question": "q"})
    assert [s["tool_call_id"] for s in out["steps"]] == ["c0", "c1"]  # turns 1 and 2
    assert out["turns"] == 3 and len(model.received) == 2  # the answer is turn 3
    replies = {m.tool_call_id: m for m in out["messages"] if isinstance(m, ToolMessage)}
    assert sorted(replies) == ["c0", "c1", "c2", "c3", "c4"]  # every call is answered
    assert all(
        replies[c].content == "Not run: the tool-call limit is reached." for c in ["c2", "c3", "c4"]
    )
    assert replies["c0"].status == "success"
    assert out["answer"] == "x"


def test_tool_calls_within_the_budget_all_run(pool, page) -> None:
    calls = [tools_call("result = image", call_id=f"k{i}").tool_calls[0] for i in range(3)]
    _model, graph = build(
        pool, [AIMessage("", tool_calls=calls), "<answer>y</answer>"], dialect="tools"
    )
    out = graph.invoke({"image": page, "question": "q"})
    assert [s["ok"] for s in out["steps"]] == [True, True, True]
    assert out["turns"] == 4 and out["stop_reason"] == "answer"
