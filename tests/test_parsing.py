"""The text-protocol parser: exact cases for every tolerance, round trips, and fuzzing."""

from __future__ import annotations

import json
import random
import string

import pytest

from langchain_codevision.parsing import (
    DEFAULT_TOOL_NAME,
    ParsedOutput,
    ParsedToolCall,
    format_tool_call,
    parse_model_output,
)

CANONICAL = (
    "<think>The page is upside down.</think>\n<tool_call>\n"
    '{"name": "code_image_tool", "arguments": {"code": "result = img.rotate(180)", '
    '"description": "rotate", "image_index": 0}}\n</tool_call>'
)
ARGS = {"code": "result = img.rotate(180)", "description": "rotate", "image_index": 0}


def only_call(out: ParsedOutput) -> ParsedToolCall:
    assert out.kind == "tool_call", out
    assert len(out.tool_calls) == 1, out.tool_calls
    return out.tool_calls[0]


# ----------------------------------------------------------------------------- canonical


def test_canonical_tool_call() -> None:
    out = parse_model_output(CANONICAL)
    call = only_call(out)
    assert call.name == "code_image_tool"
    assert call.arguments == ARGS
    assert call.repaired == ()
    assert out.think == "The page is upside down."
    assert out.answer is None and out.errors == [] and out.malformed_calls == []
    assert out.content == "<think>The page is upside down.</think>"
    assert CANONICAL[call.span[0] : call.span[1]].startswith("<tool_call>")
    assert CANONICAL[call.span[0] : call.span[1]].endswith("</tool_call>")


def test_answer() -> None:
    out = parse_model_output("<think>It says 42.</think>\n<answer> 42 </answer>")
    assert out.kind == "answer"
    assert out.answer == "42"
    assert out.think == "It says 42."
    assert out.tool_calls == [] and out.errors == []


def test_answer_cut_by_stop_sequence_is_accepted() -> None:
    out = parse_model_output("<think>ok</think><answer>Paris")
    assert (out.kind, out.answer, out.errors) == ("answer", "Paris", [])


def test_last_answer_wins() -> None:
    assert parse_model_output("<answer>a</answer> then <answer>b</answer>").answer == "b"


def test_plain_text() -> None:
    out = parse_model_output("Just chatting.")
    assert (out.kind, out.think, out.answer, out.tool_calls, out.errors) == (
        "plain",
        None,
        None,
        [],
        [],
    )


def test_think_prefilled_by_the_template() -> None:
    out = parse_model_output("reasoning here</think><answer>x</answer>")
    assert out.think == "reasoning here" and out.answer == "x"


def test_unclosed_think_is_reported() -> None:
    out = parse_model_output("<think>still thinking")
    assert out.kind == "malformed"
    assert out.think == "still thinking"
    assert out.errors == ["<think> is never closed with </think>"]


def test_tool_call_inside_think_is_ignored() -> None:
    text = (
        '<think>maybe <tool_call>{"name": "x", "arguments": {}}</tool_call></think>'
        "<answer>1</answer>"
    )
    out = parse_model_output(text)
    assert out.kind == "answer" and out.tool_calls == []


# ----------------------------------------------------------------------------- tolerance


def test_missing_closing_tag() -> None:
    text = '<tool_call>\n{"name": "code_image_tool", "arguments": {"code": "x = 1"}}\n'
    call = only_call(parse_model_output(text))
    assert call.arguments == {"code": "x = 1"}
    assert call.repaired == ("missing </tool_call>",)


def test_single_quotes() -> None:
    text = (
        "<tool_call>{'name': 'code_image_tool', 'arguments': {'code': 'print(\"hi\")'}}</tool_call>"
    )
    call = only_call(parse_model_output(text))
    assert call.arguments == {"code": 'print("hi")'}
    assert call.repaired == ("single quotes",)


def test_escaped_single_quote_inside_single_quotes() -> None:
    text = r"<tool_call>{'name': 't', 'arguments': {'s': 'it\'s'}}</tool_call>"
    assert only_call(parse_model_output(text)).arguments == {"s": "it's"}


def test_trailing_commas() -> None:
    text = '<tool_call>{"name": "t", "arguments": {"a": [1, 2,], "b": 3,},}</tool_call>'
    call = only_call(parse_model_output(text))
    assert call.arguments == {"a": [1, 2], "b": 3}
    assert call.repaired == ("trailing comma",)


def test_python_literals() -> None:
    text = '<tool_call>{"name": "t", "arguments": {"a": True, "b": False, "c": None}}</tool_call>'
    call = only_call(parse_model_output(text))
    assert call.arguments == {"a": True, "b": False, "c": None}
    assert call.repaired == ("python literals",)


def test_python_literal_words_inside_strings_are_untouched() -> None:
    text = '<tool_call>{"name": "t", "arguments": {"s": "None True", "b": True}}</tool_call>'
    assert only_call(parse_model_output(text)).arguments == {"s": "None True", "b": True}


def test_arguments_as_json_string() -> None:
    inner = json.dumps({"code": "x = 1", "image_index": 1})
    text = (
        "<tool_call>" + json.dumps({"name": "code_image_tool", "arguments": inner}) + "</tool_call>"
    )
    call = only_call(parse_model_output(text))
    assert call.arguments == {"code": "x = 1", "image_index": 1}
    assert call.repaired == ("arguments as JSON string",)


def test_raw_newlines_and_tabs_inside_strings() -> None:
    text = (
        '<tool_call>\n{"name": "code_image_tool", "arguments": {"code": "import numpy as np\n'
        'for i in range(2):\n\tprint(i)\nresult = img"}}\n</tool_call>'
    )
    call = only_call(parse_model_output(text))
    assert (
        call.arguments["code"] == "import numpy as np\nfor i in range(2):\n\tprint(i)\nresult = img"
    )
    assert call.repaired == ("raw control characters in strings",)


def test_code_fence_wrapping_the_json() -> None:
    text = '<tool_call>\n```json\n{"name": "t", "arguments": {"a": 1}}\n```\n</tool_call>'
    call = only_call(parse_model_output(text))
    assert call.arguments == {"a": 1}
    assert call.repaired == ("code fence",)


def test_code_fence_inside_the_code_string() -> None:
    text = (
        '<tool_call>{"name": "code_image_tool", "arguments": '
        '{"code": "```python\\nresult = img.rotate(90)\\n```"}}</tool_call>'
    )
    call = only_call(parse_model_output(text))
    assert call.arguments == {"code": "result = img.rotate(90)"}
    assert call.repaired == ("code fence in code",)


def test_python_block_without_tool_call() -> None:
    text = "<think>rotate it</think>\nI will run:\n```python\nresult = img.rotate(90)\n```\n"
    out = parse_model_output(text)
    call = only_call(out)
    assert call.name == DEFAULT_TOOL_NAME
    assert call.arguments == {"code": "result = img.rotate(90)"}
    assert call.repaired == ("python code block without tool_call",)
    assert out.content == "<think>rotate it</think>\nI will run:"


def test_python_block_fallback_can_be_switched_off() -> None:
    out = parse_model_output("```python\nx = 1\n```", fallback_tool_name=None)
    assert out.kind == "plain"


def test_python_block_next_to_answer_is_not_a_call() -> None:
    out = parse_model_output("```python\nx = 1\n```\n<answer>1</answer>")
    assert out.kind == "answer" and out.tool_calls == []


def test_bare_json_without_tags() -> None:
    text = 'Calling: {"name": "code_image_tool", "arguments": {"code": "x"}} now'
    call = only_call(parse_model_output(text))
    assert call.arguments == {"code": "x"}
    assert call.repaired == ("JSON without <tool_call> tags", "text after JSON")


def test_unescaped_quotes_inside_code() -> None:
    text = (
        '<tool_call>{"name": "code_image_tool", "arguments": {"code": "print("hi")"}}</tool_call>'
    )
    call = only_call(parse_model_output(text))
    assert call.arguments == {"code": 'print("hi")'}
    assert call.repaired == ("unescaped quotes in strings",)


def test_invalid_escapes_in_regex_code() -> None:
    text = r'<tool_call>{"name": "t", "arguments": {"code": "re.findall(\d+, s)"}}</tool_call>'
    call = only_call(parse_model_output(text))
    assert call.arguments == {"code": r"re.findall(\d+, s)"}
    assert call.repaired == ("invalid escapes",)


def test_several_tool_calls_are_all_returned() -> None:
    text = (
        '<tool_call>{"name": "a", "arguments": {"x": 1}}</tool_call>\n'
        '<tool_call>{"name": "b", "arguments": {}}</tool_call>'
    )
    out = parse_model_output(text)
    assert [(c.name, c.arguments) for c in out.tool_calls] == [("a", {"x": 1}), ("b", {})]
    assert out.content == ""


def test_list_of_calls_in_one_tag_and_wrappers() -> None:
    text = (
        '<tool_call>[{"name": "a", "arguments": {}}, '
        '{"function": {"name": "b", "arguments": "{\\"y\\": 2}"}}, '
        '{"name": "c", "parameters": {"z": 3}}]</tool_call>'
    )
    calls = parse_model_output(text).tool_calls
    assert [(c.name, c.arguments) for c in calls] == [("a", {}), ("b", {"y": 2}), ("c", {"z": 3})]
    assert "function wrapper" in calls[1].repaired
    assert "parameters key" in calls[2].repaired


def test_combined_repairs() -> None:
    text = (
        "<tool_call>```json\n{'name': 'code_image_tool', 'arguments': {'code': 'a = 1\nb = None',"
        " 'flag': True,},}\n```"
    )
    call = only_call(parse_model_output(text))
    assert call.arguments == {"code": "a = 1\nb = None", "flag": True}
    assert set(call.repaired) == {
        "missing </tool_call>",
        "code fence",
        "single quotes",
        "raw control characters in strings",
        "python literals",
        "trailing comma",
    }


# ----------------------------------------------------------------------------- problems


def test_malformed_json_reports_the_position() -> None:
    text = (
        '<tool_call>{"name": "code_image_tool", "arguments": {"code": "x", "n": 1 2}}</tool_call>'
    )
    out = parse_model_output(text)
    assert out.kind == "malformed"
    assert out.tool_calls == []
    assert out.errors == [
        "<tool_call> #1 is not valid JSON: Expecting ',' delimiter at line 1 column 63 "
        """(near '"code": "x", "n": 1 2}}')"""
    ]
    bad = out.malformed_calls[0]
    assert bad.name == "code_image_tool"
    assert text[bad.span[0] : bad.span[1]] == text
    assert out.content == text


def test_unknown_structure() -> None:
    out = parse_model_output('<tool_call>{"tool": "x"}</tool_call>')
    assert out.kind == "malformed"
    assert out.errors == ['<tool_call> #1: the object has no "name" string']
    out = parse_model_output("<tool_call>[1, 2]</tool_call>")
    assert out.kind == "malformed" and len(out.errors) == 2


def test_empty_tool_call_and_non_object_arguments() -> None:
    assert parse_model_output("<tool_call>  </tool_call>").errors == ["<tool_call> #1 is empty"]
    out = parse_model_output('<tool_call>{"name": "t", "arguments": [1]}</tool_call>')
    assert out.errors == ['<tool_call> #1: "arguments" must be an object, got list']
    out = parse_model_output('<tool_call>{"name": "t", "arguments": "not json"}</tool_call>')
    assert out.kind == "malformed" and "is a string that is not a JSON object" in out.errors[0]


def test_no_json_at_all() -> None:
    out = parse_model_output("<tool_call>rotate the image please</tool_call>")
    assert out.kind == "malformed"
    assert out.errors == [
        "<tool_call> #1 is not valid JSON: no JSON object found in 'rotate the image please'"
    ]


def test_both_tool_call_and_answer() -> None:
    out = parse_model_output(CANONICAL + "\n<answer>42</answer>")
    assert out.kind == "tool_call"
    assert out.answer == "42"
    assert out.errors == [
        "the turn has both a <tool_call> and an <answer>: call a tool OR answer, not both"
    ]


def test_empty_answer() -> None:
    out = parse_model_output("<think>x</think><answer>  </answer>")
    assert out.kind == "malformed"
    assert out.answer == ""
    assert out.errors == ["<answer></answer> is empty: put the final answer between the tags"]


def test_missing_arguments_is_tolerated() -> None:
    call = only_call(parse_model_output('<tool_call>{"name": "ping"}</tool_call>'))
    assert call.arguments == {} and call.repaired == ("missing arguments",)


def test_non_string_input_never_raises() -> None:
    assert parse_model_output(None).kind == "plain"  # type: ignore[arg-type]
    assert parse_model_output(123).text == "123"  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- round trip


@pytest.mark.parametrize(
    "arguments",
    [
        ARGS,
        {},
        {"code": 'print("quote") \\ backslash\n\ttab', "unicode": "你好 é ☃", "n": [1.5, None]},
        {"nested": {"a": {"b": [True, False]}}, "empty": ""},
    ],
)
def test_format_round_trips(arguments: dict[str, object]) -> None:
    text = format_tool_call("code_image_tool", arguments)
    assert text.startswith("<tool_call>\n{") and text.endswith("}\n</tool_call>")
    call = only_call(parse_model_output(text))
    assert (call.name, call.arguments, call.repaired) == ("code_image_tool", arguments, ())


def test_closing_tag_inside_a_string_ends_the_call() -> None:
    # As in hermes parsers (vLLM, TRL): the first </tool_call> closes the block.
    text = format_tool_call("t", {"code": "s = '</tool_call>'"})
    assert parse_model_output(text).kind == "malformed"


def test_format_matches_qwen_templates() -> None:
    assert format_tool_call("f", {"x": "é"}) == (
        '<tool_call>\n{"name": "f", "arguments": {"x": "é"}}\n</tool_call>'
    )


# ----------------------------------------------------------------------------- fuzz

PIECES = [
    "<think>",
    "</think>",
    "<tool_call>",
    "</tool_call>",
    "<answer>",
    "</answer>",
    "```",
    "```python\n",
    "{",
    "}",
    "[",
    "]",
    '"',
    "'",
    "\\",
    ",",
    ":",
    '"name"',
    '"arguments"',
    '{"name": "code_image_tool", "arguments": {',
    '"code": "',
    "True",
    "None",
    "\n",
    "\t",
    "\x00",
    "\\u12",
    "\\ud800",
    "é",
    "你",
    "1e999999",
    "9" * 5000,
    "[" * 3000,
]


def mangle(rng: random.Random, text: str) -> str:
    chars = list(text)
    for _ in range(rng.randint(1, 6)):
        op = rng.random()
        position = rng.randint(0, len(chars))
        if op < 0.4 and chars:
            del chars[min(position, len(chars) - 1)]
        elif op < 0.8:
            chars.insert(position, rng.choice(PIECES))
        else:
            chars[position:position] = list(rng.choice(string.printable) * rng.randint(1, 4))
    return "".join(chars)


def test_fuzz_never_raises() -> None:
    rng = random.Random(20251203)
    seeds = [
        CANONICAL,
        CANONICAL + "<answer>x</answer>",
        "<think>a</think><answer>b</answer>",
        "```python\nresult = img\n```",
        format_tool_call("t", {"code": "a\nb", "x": [1, {"y": None}]}),
        '{"name": "t", "arguments": {"a": 1}}',
    ]
    for round_ in range(600):
        if round_ % 3 == 0:
            text = "".join(rng.choice(PIECES) for _ in range(rng.randint(0, 25)))
        elif round_ % 3 == 1:
            text = mangle(rng, rng.choice(seeds))
        else:
            text = "".join(chr(rng.randint(0, 0x2FFF)) for _ in range(rng.randint(0, 200)))
        out = parse_model_output(text)
        assert out.kind in ("tool_call", "answer", "malformed", "plain")
        assert out.text == text
        assert isinstance(out.content, str)
        for call in out.tool_calls:
            assert isinstance(call.name, str) and isinstance(call.arguments, dict)
            json.dumps(call.arguments)  # decoded arguments are plain JSON data
