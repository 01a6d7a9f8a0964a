"""The offline OCR policy: real kernels, real graphs, rendered pages with known text."""

from __future__ import annotations

import numpy as np
import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from PIL import Image, ImageDraw

from langchain_codevision import OfflineOCRModel, create_codevision_graph
from langchain_codevision.data.fonts import load_font
from langchain_codevision.data.transforms import parse_transform
from langchain_codevision.eval.scoring import read_choice
from langchain_codevision.kernel import KernelLimits, KernelPool
from langchain_codevision.model_spec import load_chat_model
from langchain_codevision.models._ocr_code import READ_PAGE_CODE, zoom_code
from langchain_codevision.models._ocr_rules import (
    NO_TEXT,
    OcrLine,
    answer_question,
    parse_lines,
    parse_orientation_scores,
    parse_question,
)
from langchain_codevision.protocol import TOOL_TURN_MARK, answers_match, normalised_match
from langchain_codevision.tool import ImageCodeTool

pytest.importorskip("rapidocr")
pytest.importorskip("onnxruntime")

LINES = [
    "Invoice number 4471",
    "Ship to Berlin Germany",
    "Total due 123.45 EUR",
    "Thank you for the order",
]
LIMITS = KernelLimits(timeout=300.0)  # OCR on a shared, loaded machine can be slow


@pytest.fixture(scope="module")
def pool() -> KernelPool:
    with KernelPool(size=1, limits=LIMITS) as shared:
        yield shared


@pytest.fixture(scope="module")
def page() -> Image.Image:
    font = load_font("DejaVuSans", 26)
    image = Image.new("RGB", (560, 300), "white")
    draw = ImageDraw.Draw(image)
    for i, text in enumerate(LINES):
        draw.text((30, 30 + 62 * i), text, fill="black", font=font)
    return image


def transformed(page: Image.Image, name: str) -> Image.Image:
    return page if name == "none" else parse_transform(name).bind(page.size).apply(page)


def code_calls(state: dict) -> int:
    return len(state["steps"])


def only_records(state: dict) -> bool:
    """Every printed line is a record: no engine log text reaches the tool output."""
    printed = [line for step in state["steps"] for line in step["stdout"].splitlines()]
    return all(line.startswith(("LINE ", "ORIENTATION ")) for line in printed if line.strip())


# -- whole episodes through the graph -------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "question", "truth"),
    [
        ("none", "What is the invoice number?", "4471"),
        ("rotate_90", "What is the word after 'Berlin'?", "Germany"),
        ("rotate_180", "What is the total?", "123.45"),
        ("rotate_270", "What is the last word on the line that starts with 'Thank you'?", "order"),
        ("flip_horizontal", 'How many times does the letter "e" appear on line 2?', "2"),
        ("flip_vertical", "Read the line that starts with 'Ship to'.", "Ship to Berlin Germany"),
    ],
)
def test_graph_answers_on_rotated_and_mirrored_pages(pool, page, name, question, truth) -> None:
    graph = create_codevision_graph(OfflineOCRModel(), pool=pool)
    state = graph.invoke({"image": transformed(page, name), "question": question})
    assert answers_match(state["answer"], truth) or normalised_match(state["answer"], truth)
    assert 1 <= code_calls(state) <= 2
    first = state["steps"][0]
    assert f"ORIENTATION {name} " in first["stdout"]
    assert only_records(state)
    assert all(f"| {text}\n" in first["stdout"] for text in LINES)  # words kept apart
    fixed = state["images"][first["output_indices"][0]]
    assert (fixed["width"], fixed["height"]) == page.size  # the output is the page set upright


def test_orientation_question_uses_the_transform_names(pool, page) -> None:
    graph = create_codevision_graph(OfflineOCRModel(), pool=pool)
    question = "This image was rotated or mirrored. Which transform was applied?"
    state = graph.invoke({"image": transformed(page, "rotate_270"), "question": question})
    assert state["answer"] == "rotate_270"
    assert read_choice(state["answer"], ["rotate_90", "rotate_270", "flip_vertical"])[0] == (
        "rotate_270"
    )
    assert code_calls(state) == 1


def test_tools_dialect_and_release_profile(pool, page) -> None:
    image = transformed(page, "rotate_180")
    tools = create_codevision_graph(OfflineOCRModel(), pool=pool, dialect="tools")
    state = tools.invoke({"image": image, "question": "What is the invoice number?"})
    assert state["answer"] == "4471" and code_calls(state) == 1
    release = create_codevision_graph(OfflineOCRModel(), pool=pool, profile="release")
    state = release.invoke({"image": image, "question": "Which transform was applied?"})
    assert state["answer"] == "rotate_180"  # printed output is hidden: read from the image
    state = release.invoke({"image": image, "question": "What is the word after 'Ship'?"})
    assert state["answer"] == "to"


def test_create_agent_with_the_image_code_tool(page) -> None:
    from langchain.agents import create_agent

    tool = ImageCodeTool(images=[transformed(page, "flip_horizontal")], kernel_limits=LIMITS)
    try:
        agent = create_agent(OfflineOCRModel(), tools=[tool])
        out = agent.invoke({"messages": [HumanMessage("What is the total?")]})
    finally:
        tool.close()
    calls = [m for m in out["messages"] if isinstance(m, ToolMessage)]
    assert len(calls) == 1 and "ORIENTATION flip_horizontal" in calls[0].text
    assert answers_match(out["messages"][-1].text, "123.45")


@pytest.mark.parametrize("kind", ["blank", "noise"])
def test_pages_without_text_still_get_an_answer(pool, kind) -> None:
    if kind == "blank":
        image = Image.new("RGB", (320, 240), "white")
    else:
        noise = np.random.default_rng(0).integers(0, 256, (240, 320, 3), dtype=np.uint8)
        image = Image.fromarray(noise)
    graph = create_codevision_graph(OfflineOCRModel(), pool=pool)
    state = graph.invoke({"image": image, "question": "What is the invoice number?"})
    assert state["stop_reason"] == "answer" and isinstance(state["answer"], str)
    assert state["answer"].strip() and code_calls(state) <= 2
    assert only_records(state)  # "nothing detected" is not logged into the output


# -- replies to failures, without a kernel ---------------------------------------------------
def _reply(messages: list) -> AIMessage:
    return OfflineOCRModel().invoke(messages)


def test_errors_get_a_simpler_retry_then_an_answer() -> None:
    asked = HumanMessage("What is the total?")
    first = _reply([asked])
    assert "<tool_call>" in first.text and "RapidOCR" in first.text
    failed = HumanMessage(
        "Error: MemoryError: out of memory", additional_kwargs={TOOL_TURN_MARK: True}
    )
    second = _reply([asked, first, failed])
    assert "read the image as given" in second.text and "ORIENTATION unknown" in second.text
    third = _reply([asked, first, failed, second, failed])
    assert "<answer>" in third.text and NO_TEXT in third.text


def test_malformed_tool_output_gets_an_answer() -> None:
    asked = HumanMessage("What does the text say?")
    call = _reply([asked])
    junk = HumanMessage(
        "The code ran.\nLINE x,y | ??\x00", additional_kwargs={TOOL_TURN_MARK: True}
    )
    reply = _reply([asked, call, junk])
    assert "<answer>" in reply.text and "</answer>" in reply.text


def test_native_tool_calls_after_bind_tools() -> None:
    bound = OfflineOCRModel().bind_tools([ImageCodeTool()])
    reply = bound.invoke([HumanMessage("What is the total?")])
    assert reply.tool_calls[0]["name"] == "code_image_tool"
    assert reply.tool_calls[0]["args"]["code"] == READ_PAGE_CODE


def test_offline_spec_is_the_ocr_policy() -> None:
    assert isinstance(load_chat_model("offline"), OfflineOCRModel)


# -- the rules -------------------------------------------------------------------------------
GLUED = [
    OcrLine("Invoicenumber 4471", (0, 0, 200, 20), 0.95),
    OcrLine("Price of apples 3.20", (0, 30, 200, 50), 0.97),
    OcrLine("continuous/integerrepresentation of all", (0, 60, 200, 80), 0.9),
    OcrLine("Total 17.60", (0, 90, 200, 110), 0.99),
]


@pytest.mark.parametrize(
    ("question", "kind", "truth"),
    [
        ("What is the invoice number?", "value", "4471"),
        ("What is the price of apples?", "value", "3.20"),
        ("What is the total?", "value", "17.60"),
        ('What is the word after "integer"?', "word_after", "representation"),
        ("What is the shortest word on line 3?", "shortest_word", "of"),
        ("What is the last word on the last line?", "last_word", "17.60"),
        (
            'How many times does the letter "o" appear on the line starting with "Price"?',
            "count_letter",
            "1",
        ),
        ("Read line 1.", "read_line", "Invoicenumber 4471"),
        ("Describe the weather.", "unknown", "Total 17.60"),
    ],
)
def test_question_rules(question, kind, truth) -> None:
    parsed = parse_question(question)
    assert parsed.kind == kind
    assert answer_question(parsed, GLUED) == truth


def test_records_parse_and_code_fits_the_protocol_limit() -> None:
    text = "ORIENTATION none\nLINE 1,2,30,40 0.875 | Hello world\nLINE bad\nLINE 1,2,3,4 0.5 | "
    assert parse_lines(text) == [OcrLine("Hello world", (1, 2, 30, 40), 0.875)]
    assert len(READ_PAGE_CODE) <= 2048 and len(zoom_code((0, 0, 10, 10))) <= 2048


def test_a_question_that_says_the_page_was_transformed_never_gets_upright() -> None:
    """Judged upright, but the question says it was transformed: the best allowed candidate."""
    record = "ORIENTATION none none=0.840 rotate_180=0.724 flip_horizontal=0.719 flip_vertical=0.7"
    scores = parse_orientation_scores("LINE 1,2,3,4 0.9 | x\n" + record)
    assert scores == {
        "none": 0.84,
        "rotate_180": 0.724,
        "flip_horizontal": 0.719,
        "flip_vertical": 0.7,
    }
    listed = parse_question(
        "This photo was rotated or flipped. Which transform was applied? "
        "Answer with one of rotate_90, flip_horizontal or flip_vertical."
    )
    assert answer_question(listed, [], "none", scores) == "flip_horizontal"
    said = parse_question("The page was mirrored. Which transform?")
    assert answer_question(said, [], "none", scores) == "rotate_180"
    open_question = parse_question("Which rotation was applied?")
    assert answer_question(open_question, [], "none", scores) == "rotate_0"
    assert answer_question(parse_question("Which transform?"), [], "none", scores) == "none"
    assert answer_question(listed, [], "rotate_270", scores) == "rotate_270"
