"""Hints, code repair and protocol texts, on exact strings."""

from __future__ import annotations

import json

import pytest

from langchain_codevision.protocol import (
    TOOL_NAME,
    error_text,
    hint_for,
    load_system_prompt,
    make_failure,
    success_text,
    tool_schema,
    trim_for_model,
)
from langchain_codevision.reflect import failure_reply
from langchain_codevision.repair import guard_crops, repair_code, strip_fences


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        (
            make_failure("IndexError", "image_index '4' does not exist"),
            "Valid image_index values are 0 to 2.",
        ),
        (
            make_failure("AttributeError", "'numpy.ndarray' object has no attribute 'crop'"),
            "numpy array",
        ),
        (
            make_failure("AttributeError", "'Image' object has no attribute 'shape'"),
            "np.array(image)",
        ),
        (
            make_failure(
                "error", "OpenCV(4.8) :-1: error: (-5:Bad argument) in function 'cv::cvtColor'"
            ),
            "OpenCV",
        ),
        (make_failure("ValueError", "Coordinate 'right' is less than 'left'"), "Crop boxes are"),
        (make_failure("NameError", "name 'foo' is not defined"), "Names available without import"),
        (make_failure("SyntaxError", "invalid syntax"), "plain Python"),
        (make_failure("Timeout", "exceeded"), "numpy or cv2"),
        (make_failure("MemoryError", ""), "Crop or downscale"),
        (make_failure("KernelDied", "exit code 1"), "variables are gone"),
        (make_failure("NoImage", "none"), "Assign the processed PIL image to `result`."),
    ],
)
def test_hints(failure, expected) -> None:
    assert expected in (hint_for(failure, image_count=3, image_size=(40, 30)) or "")


def test_no_hint_for_an_ordinary_error() -> None:
    assert hint_for(make_failure("ZeroDivisionError", "division by zero")) is None


def test_failure_reply_exact_text() -> None:
    images = [{"width": 40, "height": 30}]
    item = {
        "kind": "ValueError",
        "message": "bad box",
        "code": "result = image.crop((5, 0, 1, 1))",
        "image_index": 0,
    }
    assert failure_reply(item, images) == (
        "Error: ValueError: bad box\n"
        "Hint: Crop boxes are (left, upper, right, lower) with left < right and upper < lower, "
        "inside the image. The selected image is 40x30 (width x height).\n"
        "Fix the problem and call the tool again, or give the final answer."
    )


def test_trim_for_model_keeps_the_tail() -> None:
    trace = "\n".join(f"line {i}" for i in range(100))
    trimmed = trim_for_model(trace)
    assert trimmed.startswith("...") and trimmed.endswith("line 99") and "line 50" not in trimmed


def test_repairs() -> None:
    assert strip_fences("```python\nx = 1\n```") == "x = 1"
    assert strip_fences("x = 1") == "x = 1"
    code, count = guard_crops("a = image.crop((0, 0, 5, 5))\nb = a.crop(box)")
    assert count == 2 and code.count("__cv_runtime__.clamp_box(") == 2
    assert guard_crops("not python (")[1] == 0
    fixed, notes = repair_code("```\n    result = image.crop((-1, -1, 9, 9))\n```")
    assert notes == [
        "removed Markdown code fences",
        "removed common indentation",
        "clamped 1 crop box(es) to the image bounds",
    ]
    assert fixed == "result = image.crop(__cv_runtime__.clamp_box(image, (-1, -1, 9, 9)))"


def test_clamp_box_in_a_real_kernel(kernel) -> None:
    from PIL import Image

    kernel.put_image(0, Image.new("RGB", (50, 40)))
    out = kernel.execute(
        "print(__cv_runtime__.clamp_box(image, (-10, 5, 500, 5)), "
        "__cv_runtime__.clamp_box(image, (60, 60, 70, 70)))",
        image=0,
    )
    assert out.stdout.strip() == "(0, 5, 50, 6) (49, 39, 50, 40)"


def test_protocol_texts_and_schema(tmp_path) -> None:
    schema = tool_schema()
    assert schema["function"]["name"] == TOOL_NAME
    assert schema["function"]["parameters"]["required"] == ["code"]
    assert success_text([2], [(10, 20)], "hi\n", []).startswith(
        "The code ran. Result: image 2 (10x20).\nPrinted output:\nhi\n"
    )
    assert error_text("boom", None).startswith("Error: boom\n")
    path = tmp_path / "prompt.json"
    path.write_text(json.dumps({"system_prompt": "Be brief."}))
    assert load_system_prompt(path) == "Be brief."
    (tmp_path / "p.txt").write_text("  Plain prompt \n")
    assert load_system_prompt(tmp_path / "p.txt") == "Plain prompt"
    with pytest.raises(FileNotFoundError):
        load_system_prompt(tmp_path / "missing.txt")
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="expected a JSON string or object"):
        load_system_prompt(tmp_path / "bad.json")


def test_tools_block_round_trip_and_refusals() -> None:
    from langchain_codevision.protocol import (
        RELEASE,
        render_tools_block,
        split_tools_block,
    )

    text = RELEASE.system_message("text")
    prompt, tools = split_tools_block(text)
    assert prompt == RELEASE.system_prompt and tools == [RELEASE.tool_schema]
    assert prompt + render_tools_block(tools) == text
    assert split_tools_block(RELEASE.system_prompt) is None
    assert split_tools_block(text.replace('"code_image_tool"', '"code_image_tool" ')) is None
    assert RELEASE.system_message("tools") == RELEASE.system_prompt


def test_profiles_resolve_and_lay_out_the_question() -> None:
    import dataclasses

    from langchain_codevision.protocol import DEFAULT, RELEASE, get_profile

    assert get_profile("release") is RELEASE and get_profile(None) is DEFAULT
    with pytest.raises(ValueError, match="unknown protocol profile"):
        get_profile("legacy")
    blocks = [{"type": "image", "id": "a"}]
    assert DEFAULT.question_content(blocks, "Q") == [*blocks, {"type": "text", "text": "Q"}]
    assert RELEASE.question_content(blocks, "Q") == [*blocks, {"type": "text", "text": "\nQ"}]
    with pytest.raises(ValueError, match="stray"):
        RELEASE.question_content(blocks, "see <image>")
    capped = dataclasses.replace(RELEASE, max_tool_text_chars=5)
    assert capped.cap_text("abcdefgh") == "abcde" and DEFAULT.cap_text("x" * 99) == "x" * 99
    assert RELEASE.schema() == RELEASE.tool_schema and RELEASE.schema() is not RELEASE.tool_schema
