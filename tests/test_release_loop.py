"""The release profile's loop rules, through the real graph and real kernels: bound names,
result lookup order, every reply text (exact strings of the release) and the turn rule."""

from __future__ import annotations

import json

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from PIL import Image, ImageDraw

from langchain_codevision import create_codevision_graph
from langchain_codevision.images import decode_trajectory_image
from langchain_codevision.kernel import KernelPool
from langchain_codevision.protocol import RELEASE, ReleaseReplies, make_failure
from tests.release_render import SUCCESS, TAIL
from tests.scripted_model import ScriptedChatModel, text_call

ANSWER = "<answer>done</answer>"


@pytest.fixture(scope="module")
def pool() -> KernelPool:
    with KernelPool(size=1) as shared:
        yield shared


@pytest.fixture(scope="module")
def page() -> Image.Image:
    image = Image.new("RGB", (120, 80), "white")
    ImageDraw.Draw(image).text((10, 10), "HI", fill="black")
    return image


def run(pool, page, replies, profile="release", **kwargs):
    model = ScriptedChatModel(replies=replies, dialect="text")
    graph = create_codevision_graph(model, profile=profile, pool=pool, **kwargs)
    return model, graph.invoke({"image": page, "question": "q"})


def tool_texts(out) -> list[str]:
    """The text of each tool reply, without the <tool_response> wrapping."""
    texts = []
    for message in out["messages"]:
        if isinstance(message, HumanMessage) and message.additional_kwargs.get(
            "codevision_tool_response"
        ):
            parts = [b["text"] for b in message.content if b.get("type") == "text"]
            assert parts[0] == "<tool_response>\n" and parts[-1] == "\n</tool_response>"
            texts.append("".join(parts[1:-1]))
    return texts


def raw_call(arguments: dict) -> str:
    payload = json.dumps({"name": "code_image_tool", "arguments": arguments})
    return f"<think>t</think>\n<tool_call>\n{payload}\n</tool_call>"


def test_release_names_are_bound(pool, page) -> None:
    code = (
        "assert PI == math.pi and E == math.e and cv is cv2 and numpy is np\n"
        "assert PIL.Image is Image and isinstance(img, PIL.Image.Image)\n"
        "result = image"
    )
    _, out = run(pool, page, [text_call(code), ANSWER])
    assert out["steps"][0]["ok"], out["steps"][0]["error"]
    assert tool_texts(out) == [SUCCESS]


def test_default_profile_does_not_bind_them(pool, page) -> None:
    _, out = run(pool, page, [text_call("x = PI\nresult = image"), ANSWER], profile="default")
    assert out["steps"][0]["error"].startswith("NameError")


@pytest.mark.parametrize(
    ("code", "size"),
    [
        ("processed_image = image.crop((0, 0, 30, 20))", (30, 20)),
        ("img = img.crop((0, 0, 40, 10))", (40, 10)),
        ("output = image.crop((0, 0, 10, 10))\nprocessed_image = image", (10, 10)),
        ("result = image.crop((0, 0, 5, 5))\noutput = image", (5, 5)),
        # `img` comes before `image` in the release's order: the untouched copy wins
        ("image = image.rotate(90, expand=True)", (120, 80)),
    ],
)
def test_release_result_lookup_order(pool, page, code, size) -> None:
    _, out = run(pool, page, [text_call(code), ANSWER])
    assert out["steps"][0]["ok"]
    assert decode_trajectory_image(out["images"][1]).size == size


def test_default_lookup_keeps_its_order(pool, page) -> None:
    _, out = run(pool, page, [text_call("img = img.crop((0, 0, 40, 10))"), ANSWER], "default")
    assert decode_trajectory_image(out["images"][1]).size == page.size


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (raw_call({"description": "d", "image_index": 0}), "missing_code"),
        (raw_call({"code": 5, "description": "d", "image_index": 0}), "missing_code"),
        (raw_call({"code": "result = image", "image_index": -1}), "bad_index"),
        (raw_call({"code": "result = image", "image_index": "one"}), "bad_index"),
        (raw_call({"code": "result = image", "image_index": 3}), "range"),
        (text_call("result = 1 / 0"), "zero"),
        (text_call("result = None\nimage = img = 5"), "no_image"),
        (text_call("result = image.resize((400, 1))"), "aspect"),
        (text_call("result = image.crop((5, 5, 5, 20))"), "empty"),
        (text_call("x = 1\n" + "#" * 2048), "too_long"),
    ],
)
def test_every_release_error_text(pool, page, reply, expected) -> None:
    texts = {
        "missing_code": "Error: 'code' parameter is missing or not a string." + TAIL,
        "bad_index": "Error: 'image_index' must be a non-negative integer." + TAIL,
        "range": "Error: image_index 3 is out of range. Available images: 0 to 0." + TAIL,
        "zero": "Error: Code execution error: division by zero." + TAIL,
        "no_image": "Error: Code must return a PIL Image object.",
        "aspect": (
            "Error: The result has an invalid image aspect ratio (400x1, aspect=400.00) >= "
            "200.0. Please check your code."
        ),
        "too_long": "Error: the code has 2054 characters; the limit is 2048." + TAIL,
        "empty": (
            "Error: The result has an invalid image size (0x15). Width and height must be "
            "positive. Please check your code."
        ),
    }
    _, out = run(pool, page, [reply, ANSWER])
    assert tool_texts(out) == [texts[expected]]
    assert out["steps"][0]["ok"] is False and out["answer"] == "done"


def test_release_texts_that_need_a_result_size() -> None:
    replies = ReleaseReplies()
    size = make_failure("BadImage", "empty", "bad_size", size=[0, 12])
    assert replies.failure(size, []) == (
        "Error: The result has an invalid image size (0x12). Width and height must be "
        "positive. Please check your code."
    )
    broken = make_failure("OSError", "cannot write mode F as PNG", "processing", image_index=1)
    assert replies.failure(broken, []) == (
        "Error processing image 1: cannot write mode F as PNG." + TAIL
    )
    assert replies.success([1], [(3, 4)], "printed", ["note"]) == SUCCESS


def test_tool_text_is_capped_at_10240_characters(pool, page) -> None:
    long_message = "raise ValueError('" + "x" * 11000 + "')"
    _, out = run(pool, page, [text_call(long_message), ANSWER], max_code_chars=20000)
    [text] = tool_texts(out)
    assert len(text) == RELEASE.max_tool_text_chars == 10_240
    assert text.startswith("Error: Code execution error: xxx")


def test_a_call_in_turn_12_is_not_run_and_nothing_more_is_asked(pool, page) -> None:
    model, out = run(pool, page, [text_call("result = image")])
    assert len(model.received) == 12  # twelve assistant turns, no extra request
    assert out["turns"] == 12 and len(out["steps"]) == 11
    assert out["stop_reason"] == "turn_limit" and out["answer"] is None
    assert isinstance(out["messages"][-1], AIMessage)
    assert "<tool_call>" in out["messages"][-1].text
    assert not any("all your tool calls" in m.text for m in out["messages"])


def test_an_answer_in_turn_12_is_kept(pool, page) -> None:
    model, out = run(pool, page, [text_call("result = image")] * 11 + [ANSWER])
    assert len(model.received) == 12 and out["answer"] == "done"
    assert out["stop_reason"] == "answer"


def test_a_reply_without_a_tool_call_ends_the_episode(pool, page) -> None:
    model, out = run(pool, page, ["I think it says HI.\nHI"])
    assert len(model.received) == 1
    assert out["stop_reason"] == "no_tool_call" and out["answer"] == "HI"


def test_release_in_the_tools_dialect_binds_its_schema(pool, page) -> None:
    from langchain_core.messages import ToolMessage

    from langchain_codevision.protocol import release_system_prompt, release_tool_schema
    from tests.scripted_model import tools_call

    model = ScriptedChatModel(
        replies=[tools_call("img = img.crop((0, 0, 20, 10))"), ANSWER], dialect="tools"
    )
    graph = create_codevision_graph(model, profile="release", pool=pool)
    out = graph.invoke({"image": page, "question": "q"})
    assert model.bound_tools == [release_tool_schema()]
    assert model.received[0][0].content == release_system_prompt()  # no block: tools are bound
    reply = out["messages"][3]
    assert isinstance(reply, ToolMessage)
    assert [b["type"] for b in reply.content] == ["image", "text"]
    assert reply.content[1]["text"] == SUCCESS
    assert decode_trajectory_image(out["images"][1]).size == (20, 10)


def test_an_answer_beside_the_unrun_last_call_is_kept(pool, page) -> None:
    last = text_call("result = image") + "\n<answer>7</answer>"
    model, out = run(pool, page, [text_call("result = image")] * 11 + [last])
    assert len(model.received) == 12 and len(out["steps"]) == 11
    assert out["stop_reason"] == "turn_limit" and out["answer"] == "7"


def test_the_default_pool_of_the_release_starts_kernels_with_its_names(page) -> None:
    from langchain_codevision.loop.kernels import default_pool

    model = ScriptedChatModel(replies=[text_call("assert PI and cv\nresult = image"), ANSWER])
    graph = create_codevision_graph(model, profile="release")
    out = graph.invoke({"image": page, "question": "q"})
    assert out["steps"][0]["ok"], out["steps"][0]["error"]
    pool = default_pool(RELEASE.preamble)
    assert pool is graph.codevision_nodes.kernels.pool
    assert pool.session_kwargs["preamble"] == RELEASE.preamble
