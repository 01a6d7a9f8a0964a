"""Trajectories from real graph runs exported to every format, and loaded back."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from datasets import load_dataset
from langchain_core.messages import AIMessage
from PIL import Image, ImageDraw

from langchain_codevision import create_codevision_graph
from langchain_codevision.data.export import export_openai, export_sharegpt, export_trl
from langchain_codevision.data.trajectory import ExportError, Turn, trajectory_from_state
from langchain_codevision.kernel import KernelPool
from tests.scripted_model import ScriptedChatModel, text_call, tools_call


@pytest.fixture(scope="module")
def pool():
    with KernelPool(size=1) as shared:
        yield shared


@pytest.fixture(scope="module")
def page() -> Image.Image:
    image = Image.new("RGB", (300, 200), "white")
    ImageDraw.Draw(image).text((10, 10), "TOTAL 9", fill="black")
    return image


@pytest.fixture(scope="module")
def runs(pool, page):
    text_model = ScriptedChatModel(
        replies=[
            text_call("result = image.rotate(270, expand=True)", think="rotated"),
            text_call("result = image.crop((0, 0, 100, 60))", image_index=1),
            "<think>read</think><answer>TOTAL 9</answer>",
        ],
        dialect="text",
    )
    tools_model = ScriptedChatModel(
        replies=[
            tools_call("result = image.rotate(270, expand=True)"),
            AIMessage("<answer>TOTAL 9</answer>"),
        ],
        dialect="tools",
    )
    limited = ScriptedChatModel(
        replies=[text_call("result = image")] * 2 + ["no idea"], dialect="text"
    )
    rotated = page.rotate(90, expand=True)
    states = [
        create_codevision_graph(text_model, pool=pool).invoke(
            {"image": rotated, "question": "Total?"}
        ),
        create_codevision_graph(tools_model, pool=pool).invoke(
            {"image": rotated, "question": "Total?"}
        ),
        create_codevision_graph(limited, pool=pool, max_turns=2).invoke(
            {"image": rotated, "question": "Total?"}
        ),
    ]
    return [
        trajectory_from_state(s, name=f"ep-{i}", metadata={"i": i}) for i, s in enumerate(states)
    ]


def test_trajectory_shape(runs, page) -> None:
    text_run, tools_run, limited = runs
    assert [t.role for t in text_run.turns] == [
        "user",
        "assistant",
        "tool",
        "assistant",
        "tool",
        "assistant",
    ]
    assert text_run.turns[0].text == "<image>Total?"
    assert text_run.turns[2].text.startswith("<image>The code ran. Result: image 1 (300x200).")
    assert "<tool_response>" not in text_run.turns[2].text
    assert len(text_run.images) == 3
    assert np.array_equal(np.asarray(text_run.images[1]), np.asarray(page))  # full resolution
    assert '<tool_call>\n{"name": "code_image_tool"' in tools_run.turns[1].text
    assert limited.truncated and not text_run.truncated


def test_sharegpt_export_loads_and_counts_match(runs, tmp_path) -> None:
    report = export_sharegpt(runs, tmp_path, dataset_name="cv")
    assert report.written == 3 and report.skipped == []
    info = json.loads((tmp_path / "dataset_info.json").read_text())
    assert (
        info["cv"]["formatting"] == "sharegpt"
        and info["cv"]["tags"]["observation_tag"] == "observation"
    )
    rows = load_dataset("json", data_files=str(report.path), split="train")
    first = rows[0]
    assert [c["from"] for c in first["conversations"]] == [
        "human",
        "gpt",
        "observation",
        "gpt",
        "observation",
        "gpt",
    ]
    placeholders = sum(c["value"].count("<image>") for c in first["conversations"])
    assert placeholders == len(first["images"]) == 3
    assert all((tmp_path / p).is_file() for p in first["images"])
    assert Image.open(tmp_path / first["images"][1]).size == (300, 200)
    assert first["system"].startswith("You are a careful visual reasoner")
    assert rows[2]["truncated"] is True and json.loads(rows[2]["metadata"]) == {"i": 2}


def test_trl_export_keeps_tool_turns_with_inline_images(runs, tmp_path) -> None:
    report = export_trl(runs, tmp_path)
    rows = load_dataset("json", data_files=str(report.path), split="train")
    messages = rows[0]["messages"]
    assert [m["role"] for m in messages] == [
        "system",
        "user",
        "assistant",
        "tool",
        "assistant",
        "tool",
        "assistant",
    ]
    user_images = [p for p in messages[1]["content"] if p["type"] == "image"]
    assert len(user_images) == len(rows[0]["images"]) == 1 and user_images[0]["image"] is None
    tool_images = [p["image"] for p in messages[3]["content"] if p["type"] == "image"]
    assert len(tool_images) == 1 and (tmp_path / tool_images[0]).is_file()


def test_openai_export_uses_decodable_data_urls(runs, tmp_path) -> None:
    report = export_openai(runs, tmp_path / "ft.jsonl")
    lines = (tmp_path / "ft.jsonl").read_text().splitlines()
    assert len(lines) == 3
    row = json.loads(lines[0])
    assert [m["role"] for m in row["messages"]] == [
        "system",
        "user",
        "assistant",
        "user",
        "assistant",
        "user",
        "assistant",
    ]
    urls = [
        p["image_url"]["url"]
        for m in row["messages"]
        if m["role"] == "user"
        for p in m["content"]
        if p["type"] == "image_url"
    ]
    assert len(urls) == 3
    image = Image.open(io.BytesIO(base64.b64decode(urls[1].split(",", 1)[1])))
    assert image.format == "PNG" and image.size == (300, 200)
    assert row["messages"][3]["content"][0]["text"].startswith("<tool_response>")
    assert load_dataset("json", data_files=str(report.path), split="train").num_rows == 3


def test_mismatched_placeholders_are_reported_and_skipped(runs, tmp_path) -> None:
    broken = trajectory_from_state.__globals__["Trajectory"](
        system="",
        turns=[Turn("user", "<image><image>two?", [Image.new("RGB", (4, 4))])],
        name="bad-one",
    )
    with pytest.raises(ExportError, match=r"bad-one: .*2 <image> placeholders but 1 images"):
        export_sharegpt([broken], tmp_path)
    report = export_sharegpt([runs[0], broken, runs[1]], tmp_path, on_error="skip")
    assert report.written == 2 and report.skipped[0][0] == "bad-one"
    assert len(json.loads(report.path.read_text())) == 2


def test_state_without_messages_is_an_error() -> None:
    with pytest.raises(ExportError, match="no messages"):
        trajectory_from_state({"messages": []}, name="empty")
