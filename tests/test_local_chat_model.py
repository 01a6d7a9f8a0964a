"""ChatLocalVLM on tiny random Qwen-VL checkpoints: prompts, tool calls, generation, errors."""

from __future__ import annotations

import asyncio
import base64
import copy
import io
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

import torch
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.utils.function_calling import convert_to_openai_tool
from PIL import Image

from langchain_codevision.models import ChatLocalVLM, _deps, build_tiny_lora_adapter
from langchain_codevision.models._templates import QWEN_VL_TOOLS_TEMPLATE
from langchain_codevision.models.tiny import tiny_chat_template

pytest_plugins = ("tests.local_fixtures",)

VISION = "<|vision_start|><|image_pad|><|vision_end|>"


def png_base64(size: tuple[int, int] = (64, 48), color: str = "red") -> str:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def image_block(size: tuple[int, int] = (64, 48), color: str = "red") -> dict[str, str]:
    return {"type": "image", "base64": png_base64(size, color), "mime_type": "image/png"}


def code_image_tool(code: str, description: str = "", image_index: int = 0) -> str:
    """Run Python code on the selected image and return the processed image."""
    return ""


TOOL = convert_to_openai_tool(code_image_tool)
TOOLS_BLOCK = (
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
    + json.dumps(TOOL, ensure_ascii=False)
    + "\n</tools>\n\nFor each function call, return a json object with function name and "
    "arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n"
    '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>'
)


def make(path: Path, **kwargs: Any) -> ChatLocalVLM:
    return ChatLocalVLM(model=str(path), **{"temperature": 0, "max_tokens": 12, **kwargs})


@pytest.fixture(scope="module")
def llm(tiny_vlm_path: Path) -> ChatLocalVLM:
    return make(tiny_vlm_path).load()


def tool_history() -> list[Any]:
    return [
        SystemMessage("Think, then call a tool or answer."),
        HumanMessage([{"type": "text", "text": "Read the sign."}, image_block()]),
        AIMessage(
            "<think>It is upside down.</think>",
            tool_calls=[
                {
                    "name": "code_image_tool",
                    "args": {"code": "result = img.rotate(180)", "image_index": 0},
                    "id": "call_1",
                    "type": "tool_call",
                }
            ],
        ),
        ToolMessage(
            [image_block((32, 32), "blue"), {"type": "text", "text": "Keep thinking."}],
            tool_call_id="call_1",
        ),
    ]


EXPECTED_HISTORY = (
    "<|im_start|>system\nThink, then call a tool or answer.\n\n" + TOOLS_BLOCK + "<|im_end|>\n"
    "<|im_start|>user\nRead the sign." + VISION + "<|im_end|>\n"
    "<|im_start|>assistant\n<think>It is upside down.</think>\n<tool_call>\n"
    '{"name": "code_image_tool", "arguments": {"code": "result = img.rotate(180)", '
    '"image_index": 0}}\n</tool_call><|im_end|>\n'
    "<|im_start|>user\n<tool_response>\n" + VISION + "Keep thinking.\n</tool_response><|im_end|>\n"
    "<|im_start|>assistant\n"
)


class Scripted:
    """Makes the loaded model 'generate' a fixed text (then <|im_end|>), streaming too."""

    def __init__(self, llm: ChatLocalVLM, monkeypatch: pytest.MonkeyPatch) -> None:
        self.loaded = llm._loaded(llm.model_name)
        self.monkeypatch = monkeypatch
        self.calls: list[int] = []

    def reply(self, text: str) -> None:
        tokenizer = self.loaded.tokenizer
        ids = tokenizer.encode(text, add_special_tokens=False)
        ids.append(tokenizer.convert_tokens_to_ids("<|im_end|>"))

        def generate(**kwargs: Any) -> torch.Tensor:
            input_ids = kwargs["input_ids"]
            self.calls.append(input_ids.shape[0])
            streamer = kwargs.get("streamer")
            if streamer is not None:
                streamer.put(input_ids)
                for token in ids:
                    streamer.put(torch.tensor([token]))
                streamer.end()
            new = torch.tensor([ids] * input_ids.shape[0])
            return torch.cat([input_ids, new], dim=1)

        self.monkeypatch.setattr(self.loaded.model, "generate", generate)


def collect(chunks: list[AIMessageChunk]) -> AIMessageChunk:
    full = chunks[0]
    for chunk in chunks[1:]:
        full = full + chunk
    return full


# ----------------------------------------------------------------------------- prompts


def test_system_and_human_with_image_render_exactly(llm: ChatLocalVLM) -> None:
    messages = [
        SystemMessage("You are careful."),
        HumanMessage([{"type": "text", "text": "Read this."}, image_block()]),
    ]
    assert llm.render_prompt(messages) == (
        "<|im_start|>system\nYou are careful.<|im_end|>\n"
        "<|im_start|>user\nRead this." + VISION + "<|im_end|>\n<|im_start|>assistant\n"
    )


def test_plain_string_renders_without_system(llm: ChatLocalVLM) -> None:
    assert llm.render_prompt("hi") == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


def test_tool_call_and_tool_image_render_exactly(llm: ChatLocalVLM) -> None:
    assert llm.render_prompt(tool_history(), tools=[TOOL]) == EXPECTED_HISTORY


def test_stock_qwen2_5_template_gets_the_same_prompt(tiny_vlm_stock_template_path: Path) -> None:
    stock = make(tiny_vlm_stock_template_path).load()
    features = stock._loaded(stock.model_name).features
    assert (features.tools, features.tool_calls, features.tool_role) == (False, False, False)
    assert stock.render_prompt(tool_history(), tools=[TOOL]) == EXPECTED_HISTORY
    # Without a system message the stock template's default one is replaced by the tools.
    assert stock.render_prompt("hi", tools=[TOOL]).startswith(
        "<|im_start|>system\n# Tools\n\nYou may call"
    )
    assert stock.render_prompt("hi") == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    )


def test_consecutive_tool_messages_share_one_user_turn(
    llm: ChatLocalVLM, tiny_vlm_stock_template_path: Path
) -> None:
    history = [
        HumanMessage("go"),
        AIMessage(
            "",
            tool_calls=[
                {"name": "a", "args": {}, "id": "1", "type": "tool_call"},
                {"name": "b", "args": {"x": "é"}, "id": "2", "type": "tool_call"},
            ],
        ),
        ToolMessage("one", tool_call_id="1"),
        ToolMessage("two", tool_call_id="2"),
    ]
    expected = (
        "<|im_start|>user\ngo<|im_end|>\n<|im_start|>assistant\n"
        '<tool_call>\n{"name": "a", "arguments": {}}\n</tool_call>\n'
        '<tool_call>\n{"name": "b", "arguments": {"x": "é"}}\n</tool_call><|im_end|>\n'
        "<|im_start|>user\n<tool_response>\none\n</tool_response>\n"
        "<tool_response>\ntwo\n</tool_response><|im_end|>\n<|im_start|>assistant\n"
    )
    assert llm.render_prompt(history) == expected
    stock = make(tiny_vlm_stock_template_path)
    default_system = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    assert stock.render_prompt(history) == default_system + expected


def test_image_sources_and_order(llm: ChatLocalVLM, tmp_path: Path) -> None:
    from langchain_codevision.models._messages import TemplateFeatures, convert_messages

    path = tmp_path / "green.png"
    Image.new("RGB", (20, 10), "green").save(path)
    data_url = f"data:image/png;base64,{png_base64((10, 20), 'blue')}"
    message = HumanMessage(
        [
            {"type": "image", "url": str(path)},
            {"type": "image_url", "image_url": {"url": data_url}},
            {"type": "text", "text": "compare"},
            {"type": "image", "url": path.as_uri()},
            image_block((5, 5), "white"),
        ]
    )
    prompt = convert_messages([message], features=TemplateFeatures())
    assert [image.size for image in prompt.images] == [(20, 10), (10, 20), (20, 10), (5, 5)]
    assert prompt.images[1].getpixel((0, 0)) == (0, 0, 255)
    assert llm.render_prompt([message]).count(VISION) == 4


def test_forced_tool_choice_prefills_the_answer(llm: ChatLocalVLM) -> None:
    named = llm.render_prompt("x", tools=[TOOL], tool_choice="code_image_tool")
    assert named.endswith(
        '<|im_start|>assistant\n<tool_call>\n{"name": "code_image_tool", "arguments": '
    )
    other = {**TOOL, "function": {**TOOL["function"], "name": "other"}}
    anyone = llm.render_prompt("x", tools=[TOOL, other], tool_choice="any")
    assert anyone.endswith('<|im_start|>assistant\n<tool_call>\n{"name": "')
    assert llm.render_prompt("x", tools=[TOOL], tool_choice="none").endswith(
        "<|im_start|>user\nx<|im_end|>\n<|im_start|>assistant\n"
    )
    with pytest.raises(ValueError, match="not one of the bound tools"):
        llm.bind_tools([code_image_tool], tool_choice="missing")


def test_own_template_renders_like_trl_qwen3_vl(llm: ChatLocalVLM) -> None:
    trl_templates = pytest.importorskip("trl.chat_template_utils")
    processor = llm._loaded(llm.model_name).processor
    conversations = [
        [{"role": "user", "content": "hi"}],
        [
            {"role": "system", "content": [{"type": "text", "text": "S"}]},
            {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "image"}]},
            {
                "role": "assistant",
                "content": "<think>x</think>",
                "tool_calls": [
                    {"type": "function", "function": {"name": "f", "arguments": {"c": "é\n"}}}
                ],
            },
            {"role": "tool", "content": [{"type": "image"}, {"type": "text", "text": "r"}]},
            {"role": "tool", "content": "s"},
            {"role": "assistant", "content": [{"type": "text", "text": "<answer>1</answer>"}]},
        ],
    ]
    for conversation in conversations:
        for tools in (None, [TOOL]):
            for vision_id in (False, True):
                kwargs = {"tools": tools, "tokenize": False, "add_vision_id": vision_id}
                ours = processor.apply_chat_template(
                    conversation, chat_template=QWEN_VL_TOOLS_TEMPLATE, **kwargs
                )
                theirs = processor.apply_chat_template(
                    conversation, chat_template=trl_templates.qwen3_vl_chat_template, **kwargs
                )
                assert ours == theirs
    assert tiny_chat_template("qwen3_vl") == trl_templates.qwen3_vl_chat_template


# ----------------------------------------------------------------------------- tool calls


def test_tool_calls_are_parsed_into_the_message(
    llm: ChatLocalVLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    scripted = Scripted(llm, monkeypatch)
    scripted.reply(
        '<think>rotate</think>\n<tool_call>\n{"name": "code_image_tool", "arguments": '
        '{"code": "result = img.rotate(90)", "image_index": 0}}\n</tool_call>'
    )
    bound = llm.bind_tools([code_image_tool])
    message = bound.invoke([HumanMessage([image_block(), {"type": "text", "text": "go"}])])
    assert isinstance(message, AIMessage)
    assert message.content == "<think>rotate</think>"
    assert [(c["name"], c["args"]) for c in message.tool_calls] == [
        ("code_image_tool", {"code": "result = img.rotate(90)", "image_index": 0})
    ]
    assert message.tool_calls[0]["id"].startswith("call_")
    assert message.response_metadata["finish_reason"] == "tool_calls"
    assert message.invalid_tool_calls == []

    chunks = list(bound.stream("go"))
    full = collect(chunks)
    assert full.content == message.content
    assert [(c["name"], c["args"]) for c in full.tool_calls] == [
        (c["name"], c["args"]) for c in message.tool_calls
    ]
    assert chunks[-1].chunk_position == "last"
    assert all("<tool_call>" not in str(chunk.content) for chunk in chunks)

    # Without bound tools the text is returned as is, for the caller to parse.
    raw = llm.invoke("go")
    assert "<tool_call>" in raw.text and raw.tool_calls == []


def test_repaired_and_invalid_tool_calls(
    llm: ChatLocalVLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    scripted = Scripted(llm, monkeypatch)
    bound = llm.bind_tools([code_image_tool])

    scripted.reply("Let me look.\n```python\nresult = img.crop((0, 0, 4, 4))\n```")
    fenced = bound.invoke("go")
    assert fenced.tool_calls[0]["args"] == {"code": "result = img.crop((0, 0, 4, 4))"}
    assert fenced.content == "Let me look."
    assert collect(list(bound.stream("go"))).content == "Let me look."

    scripted.reply(
        '<tool_call>\n{"name": "code_image_tool", "arguments": {"code": "x = (</tool_call>'
    )
    broken = bound.invoke("go")
    assert broken.tool_calls == []
    assert broken.invalid_tool_calls[0]["name"] == "code_image_tool"
    assert "not valid JSON" in broken.invalid_tool_calls[0]["error"]
    assert broken.invalid_tool_calls[0]["args"].startswith("<tool_call>")
    streamed = collect(list(bound.stream("go")))
    assert streamed.tool_calls == []
    assert streamed.invalid_tool_calls[0]["args"] == broken.invalid_tool_calls[0]["args"]
    assert streamed.content == broken.content

    scripted.reply('<tool_call>\n{"name": "code_image_tool", "arguments": {"code": "a"}}')
    assert bound.invoke("go").tool_calls[0]["args"] == {"code": "a"}


def test_forced_tool_choice_parses_prefill_plus_generation(
    llm: ChatLocalVLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    Scripted(llm, monkeypatch).reply('{"code": "result = img"}}\n</tool_call>')
    bound = llm.bind_tools([code_image_tool], tool_choice="code_image_tool")
    message = bound.invoke("go")
    assert message.tool_calls[0]["args"] == {"code": "result = img"}
    assert message.content == ""
    assert collect(list(bound.stream("go"))).tool_calls[0]["args"] == {"code": "result = img"}


# ----------------------------------------------------------------------------- generation


def test_invoke_returns_text_usage_and_metadata(llm: ChatLocalVLM) -> None:
    message = llm.invoke([HumanMessage([image_block(), {"type": "text", "text": "Describe."}])])
    assert isinstance(message.content, str) and message.content
    usage = message.usage_metadata
    assert usage is not None
    assert usage["input_tokens"] > 10 and 0 < usage["output_tokens"] <= 12
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert message.response_metadata["model_name"] == llm.model_name
    assert message.response_metadata["finish_reason"] in ("stop", "length")


def test_token_budget_gives_length_finish(llm: ChatLocalVLM) -> None:
    message = llm.invoke("Hello", max_tokens=3)
    assert message.usage_metadata["output_tokens"] == 3
    assert message.response_metadata["finish_reason"] == "length"


@pytest.mark.parametrize("with_image", [False, True])
def test_stream_adds_up_to_invoke(llm: ChatLocalVLM, with_image: bool) -> None:
    content: Any = "Tell me a story."
    if with_image:
        content = [image_block(), {"type": "text", "text": "What is this?"}]
    messages = [HumanMessage(content)]
    expected = llm.invoke(messages, max_tokens=24)
    chunks = list(llm.stream(messages, max_tokens=24))
    assert len(chunks) > 3
    full = collect(chunks)
    assert full.content == expected.content
    assert chunks[-1].chunk_position == "last"
    assert full.usage_metadata == expected.usage_metadata
    assert full.response_metadata["finish_reason"] == expected.response_metadata["finish_reason"]
    assert full.response_metadata["model_name"] == llm.model_name
    assert sum(1 for c in chunks if c.usage_metadata) == 1


def test_astream_and_ainvoke_match(llm: ChatLocalVLM) -> None:
    async def run() -> tuple[str, str]:
        chunks = [chunk async for chunk in llm.astream("Hello there", max_tokens=16)]
        message = await llm.ainvoke("Hello there", max_tokens=16)
        return collect(chunks).text, message.text

    streamed, invoked = asyncio.run(run())
    assert streamed == invoked


def test_batch_runs_in_one_generate_and_matches_invoke(llm: ChatLocalVLM) -> None:
    inputs: list[Any] = [
        "Hello",
        [HumanMessage([image_block(), {"type": "text", "text": "What?"}])],
        "A longer prompt that needs more padding than the others",
    ]
    singles = [llm.invoke(item).content for item in inputs]
    batcher = llm._batcher(llm.model_name)
    before = len(batcher.batch_sizes)
    results = llm.batch(inputs)
    assert [r.content for r in results] == singles
    assert batcher.batch_sizes[before:] == [3]
    assert all(r.usage_metadata["output_tokens"] > 0 for r in results)

    async def run() -> list[Any]:
        return await llm.abatch(inputs)

    before = len(batcher.batch_sizes)
    assert [r.content for r in asyncio.run(run())] == singles
    assert max(batcher.batch_sizes[before:]) > 1


def test_stop_sequences_cut_the_answer(llm: ChatLocalVLM) -> None:
    free = llm.invoke("Hello", max_tokens=30).text
    stop = free[len(free) // 2 : len(free) // 2 + 2]
    assert stop.strip(), free
    expected = free[: free.find(stop)]
    cut = llm.invoke("Hello", max_tokens=30, stop=[stop])
    assert cut.text == expected
    assert cut.response_metadata["finish_reason"] == "stop"
    assert collect(list(llm.stream("Hello", max_tokens=30, stop=[stop]))).text == expected
    assert make(Path(llm.model_name), stop=[stop], max_tokens=30).invoke("Hello").text == expected


def test_sampling_with_seed_is_reproducible(llm: ChatLocalVLM) -> None:
    first = llm.invoke("Hello", temperature=1.0, seed=7, max_tokens=16).text
    second = llm.invoke("Hello", temperature=1.0, seed=7, max_tokens=16).text
    assert first == second


def test_model_override_per_call(llm: ChatLocalVLM, tiny_vlm_other_path: Path) -> None:
    other = str(tiny_vlm_other_path)
    message = llm.invoke("Hello", model=other)
    assert message.response_metadata["model_name"] == other
    assert message.text != llm.invoke("Hello").text
    assert llm._get_ls_params(model=other)["ls_model_name"] == other


def test_qwen3_vl_checkpoint(tiny_qwen3_vl_path: Path) -> None:
    model = make(tiny_qwen3_vl_path)
    message = model.invoke([HumanMessage([image_block((70, 40)), {"type": "text", "text": "?"}])])
    assert message.usage_metadata["output_tokens"] > 0
    streamed = collect(list(model.stream([HumanMessage([image_block((70, 40)), "?"])])))
    assert streamed.text == message.text


def test_pixel_budget_bounds_image_tokens(tiny_vlm_path: Path) -> None:
    prompt = [HumanMessage([image_block((560, 560)), "?"])]
    small = make(tiny_vlm_path, max_pixels=28 * 28 * 4, max_tokens=1).invoke(prompt)
    large = make(tiny_vlm_path, max_pixels=28 * 28 * 16, max_tokens=1).invoke(prompt)
    # 2x2 vs 4x4 merged patches of 28 px.
    assert large.usage_metadata["input_tokens"] - small.usage_metadata["input_tokens"] == 12


def test_device_dtype_and_generation_options(tiny_vlm_path: Path) -> None:
    model = make(tiny_vlm_path, device="cpu", torch_dtype="float32", timeout=30, top_k=5)
    loaded = model._loaded(model.model_name)
    assert str(loaded.device) == "cpu"
    assert next(loaded.model.parameters()).dtype == torch.float32
    assert (
        model.invoke("Hello", min_new_tokens=5, max_tokens=5).usage_metadata["output_tokens"] == 5
    )
    with pytest.raises(ValueError, match="unknown torch_dtype"):
        make(tiny_vlm_path, torch_dtype="float99").invoke("x")


def test_micro_batcher_groups_by_key_and_propagates_errors() -> None:
    import threading

    from langchain_codevision.models._batching import MicroBatcher

    seen: list[list[int]] = []

    def run(batch: list[int]) -> list[int]:
        seen.append(list(batch))
        if -1 in batch:
            raise RuntimeError("boom")
        return [x * 10 for x in batch]

    batcher: MicroBatcher[int, int] = MicroBatcher(run, max_batch=3, max_wait_s=1.0)
    results: dict[int, Any] = {}

    def call(value: int, key: str) -> None:
        try:
            results[value] = batcher.submit(key, value)
        except RuntimeError as exc:
            results[value] = exc

    with batcher.expecting(5):
        threads = [
            threading.Thread(target=call, args=(v, "odd" if v % 2 else "even"))
            for v in (1, 2, 3, 4, 5)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert {k: v for k, v in results.items()} == {1: 10, 2: 20, 3: 30, 4: 40, 5: 50}
    assert sorted(sorted(batch) for batch in seen) == [[1, 3, 5], [2, 4]]
    call(-1, "odd")
    assert isinstance(results[-1], RuntimeError)
    assert batcher.submit("odd", 7) == 70  # a failed batch leaves the batcher usable


# ----------------------------------------------------------------------------- adapters


def test_lora_adapter_changes_output_and_merging_keeps_it(
    tiny_vlm_path: Path, tiny_lora_path: Path
) -> None:
    prompt = [HumanMessage([image_block(), {"type": "text", "text": "Describe the image."}])]
    base = make(tiny_vlm_path, max_tokens=16).invoke(prompt).text
    adapted = make(tiny_vlm_path, adapter=str(tiny_lora_path), max_tokens=16)
    unmerged = adapted.invoke(prompt).text
    assert unmerged != base
    assert type(adapted._loaded(adapted.model_name).model).__name__ == "PeftModel"
    merged_model = make(
        tiny_vlm_path, adapter=str(tiny_lora_path), merge_adapter=True, max_tokens=16
    )
    assert merged_model.invoke(prompt).text == unmerged
    assert "Peft" not in type(merged_model._loaded(merged_model.model_name).model).__name__


# ----------------------------------------------------------------------------- errors


def test_construction_is_lazy_and_fast(tiny_vlm_path: Path) -> None:
    start = time.perf_counter()
    models = [ChatLocalVLM(model=str(tiny_vlm_path)) for _ in range(10)]
    assert time.perf_counter() - start < 0.5
    assert all(not m._models for m in models)
    assert ChatLocalVLM(model_id="x").model_name == "x"
    assert ChatLocalVLM(model="x", max_tokens=5, dtype="bfloat16").max_new_tokens == 5


def test_instances_share_loaded_weights(tiny_vlm_path: Path) -> None:
    first, second = make(tiny_vlm_path).load(), make(tiny_vlm_path, max_tokens=3).load()
    assert first._loaded(first.model_name) is second._loaded(second.model_name)
    other = make(tiny_vlm_path, torch_dtype="bfloat16").load()
    assert other._loaded(other.model_name) is not first._loaded(first.model_name)
    clone = copy.deepcopy(first)
    assert clone.max_new_tokens == first.max_new_tokens and not clone._models
    assert clone.invoke("Hello").text == first.invoke("Hello").text
    assert clone._loaded(clone.model_name) is first._loaded(first.model_name)


def test_unknown_arguments_go_to_model_kwargs() -> None:
    with pytest.warns(UserWarning, match="model_kwargs"):
        model = ChatLocalVLM(model="x", no_repeat_ngram_size=3)
    assert model.model_kwargs == {"no_repeat_ngram_size": 3}


def test_missing_path_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        ChatLocalVLM(model=str(tmp_path / "nope")).invoke("hi")
    with pytest.raises(ValueError, match=r"without config\.json"):
        ChatLocalVLM(model=str(tmp_path)).invoke("hi")


def test_bad_adapters_are_clear_errors(
    tiny_vlm_path: Path, tiny_qwen3_vl_path: Path, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match=r"adapter_config\.json"):
        make(tiny_vlm_path, adapter=str(tmp_path)).invoke("hi")
    foreign = build_tiny_lora_adapter(tiny_qwen3_vl_path, tmp_path / "qwen3-lora")
    with pytest.raises(ValueError, match="model_type"):
        make(tiny_vlm_path, adapter=str(foreign)).invoke("hi")


def test_unreadable_and_remote_images_are_clear_errors(llm: ChatLocalVLM) -> None:
    garbage = {"type": "image", "base64": "bm90IGFuIGltYWdl", "mime_type": "image/png"}
    with pytest.raises(ValueError, match="not a recognised image format"):
        llm.invoke([HumanMessage([garbage, "?"])])
    with pytest.raises(ValueError, match="image file not found"):
        llm.invoke([HumanMessage([{"type": "image", "url": "/no/such/file.png"}])])
    remote = {"type": "image", "url": "https://example.com/cat.png"}
    with pytest.raises(ValueError, match="offline"):
        llm.invoke([HumanMessage([remote])])
    with pytest.raises(ValueError, match="not supported"):
        llm.invoke([HumanMessage([{"type": "audio", "base64": "AAAA", "mime_type": "audio/wav"}])])


def test_image_loader_fetches_remote_urls(tiny_vlm_path: Path) -> None:
    seen = []

    def loader(url: str) -> Image.Image:
        seen.append(url)
        return Image.new("RGB", (40, 40), "yellow")

    model = make(tiny_vlm_path, image_loader=loader)
    message = model.invoke([HumanMessage([{"type": "image", "url": "https://x/y.png"}, "?"])])
    assert seen == ["https://x/y.png"] and message.usage_metadata["input_tokens"] > 0


def test_image_the_processor_rejects(llm: ChatLocalVLM) -> None:
    with pytest.raises(ValueError, match="rejected the input"):
        llm.invoke([HumanMessage([image_block((600, 2)), "?"])])


def test_missing_torch_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_deps, "_CACHE", {})
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ImportError, match=r"langchain-codevision\[local\]"):
        ChatLocalVLM(model="/nowhere").invoke("hi")


def test_no_warnings_from_greedy_generation(llm: ChatLocalVLM) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        llm.invoke("Hello", max_tokens=4)
