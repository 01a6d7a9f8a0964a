"""What does ChatLocalVLM cost on top of calling ``model.generate`` yourself?

Same checkpoint, same inputs, same greedy settings, interleaved in one process:

* ``generate``: ``model.generate`` on inputs encoded beforehand (the floor);
* ``manual``: what a user writes by hand: chat template, processor (image included),
  ``generate``, ``decode``;
* ``invoke`` / ``stream``: ``ChatLocalVLM`` from LangChain messages (base64 image block);
* ``batch``: four different prompts through ``ChatLocalVLM.batch`` (one padded
  ``generate``) against four sequential ``invoke`` calls.

Every generation is forced to the same length (``min_new_tokens``), so the ratios compare
equal work. Memory: Python-level peak per call (tracemalloc) and process RSS growth.

Usage::

    python bench/local_adapter.py                      # tiny random Qwen2.5-VL, built here
    python bench/local_adapter.py --model /models/Qwen2.5-VL-3B-Instruct --tokens 64

Writes ``bench/results/local_adapter.json`` and ``.md`` (through ``bench/_common.py``).
"""

from __future__ import annotations

import argparse
import base64
import io
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import psutil
import torch
from langchain_core.messages import HumanMessage
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import write_report
from langchain_codevision.models import ChatLocalVLM, build_tiny_qwen2_5_vl


def make_image() -> Image.Image:
    image = Image.new("RGB", (320, 240), "white")
    draw = ImageDraw.Draw(image)
    for row in range(8):
        draw.text((10, 10 + 28 * row), f"line {row}: the quick brown fox", fill="black")
    return image


def png_b64(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def median_ms(samples: list[float]) -> float:  # seconds in, ms out
    return round(statistics.median(samples) * 1000, 3)


def timed(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def python_peak_kib(fn: Any) -> float:
    tracemalloc.start()
    try:
        fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return round(peak / 1024, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="checkpoint directory (default: a tiny random one)")
    parser.add_argument("--tokens", type=int, default=48, help="new tokens per generation")
    parser.add_argument("--repeats", type=int, default=25)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as scratch:
        path = args.model or str(build_tiny_qwen2_5_vl(Path(scratch) / "tiny", seed=0))
        rows, extra = run(path, args.tokens, args.repeats, args.threads, tiny=args.model is None)
    report = write_report("local_adapter", "ChatLocalVLM overhead", rows, extra)
    print(report.read_text())


def run(
    path: str, tokens: int, repeats: int, threads: int, *, tiny: bool
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    process = psutil.Process()
    rss_start = process.memory_info().rss
    llm = ChatLocalVLM(
        model=path, temperature=0, max_tokens=tokens, model_kwargs={"min_new_tokens": tokens}
    ).load()
    loaded = llm._loaded(llm.model_name)
    model, processor = loaded.model, loaded.processor
    rss_loaded = process.memory_info().rss

    image = make_image()
    question = "Read every line of the page."
    messages = [
        HumanMessage(
            [
                {"type": "image", "base64": png_b64(image), "mime_type": "image/png"},
                {"type": "text", "text": question},
            ]
        )
    ]
    conversation = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}
    ]
    config = llm._settings(None, {}).generation_config(
        model.generation_config, loaded.eos_token_ids, loaded.pad_token_id
    )

    def manual() -> str:
        text = processor.apply_chat_template(
            conversation, add_generation_prompt=True, tokenize=False
        )
        inputs = processor(text=[text], images=[image], return_tensors="pt").to(model.device)
        with torch.inference_mode():
            out = model.generate(**inputs, generation_config=config)
        return processor.tokenizer.decode(
            out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True
        )

    prompt_text = processor.apply_chat_template(
        conversation, add_generation_prompt=True, tokenize=False
    )
    encoded = processor(text=[prompt_text], images=[image], return_tensors="pt").to(model.device)

    def generate_only() -> Any:
        with torch.inference_mode():
            return model.generate(**encoded, generation_config=config)

    def invoke() -> str:
        return llm.invoke(messages).text

    def stream() -> str:
        return "".join(chunk.text for chunk in llm.stream(messages))

    # Same output from every path.
    reference = manual()
    assert invoke() == reference, "invoke differs from the hand-written pipeline"
    assert stream() == reference, "stream differs from invoke"

    # Interleaved rounds, so load drift hits every path alike; ratios are taken per round
    # (the paths run back to back) and their median reported, which shared CPUs disturb least.
    paths = {"generate": generate_only, "manual": manual, "invoke": invoke, "stream": stream}
    for fn in paths.values():
        fn()
    samples: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(repeats):
        for name, fn in paths.items():
            samples[name].append(timed(fn))
    times = {name: median_ms(values) for name, values in samples.items()}

    def paired(a: str, b: str) -> float:
        return round(
            statistics.median(x / y for x, y in zip(samples[a], samples[b], strict=True)), 3
        )

    prompts = [
        messages,
        "Describe a rotated page.",
        [HumanMessage("What is the capital of France? Answer in one word, please.")],
        "Count the lines.",
    ]
    batcher = llm._batcher(llm.model_name)
    sequential, batched = [], []
    for _ in range(max(3, repeats // 3)):
        sequential.append(timed(lambda: [llm.invoke(p) for p in prompts]))
        before = len(batcher.batch_sizes)
        batched.append(timed(lambda: llm.batch(prompts)))
        batch_sizes = batcher.batch_sizes[before:]

    python_peak = {
        name: python_peak_kib(fn)
        for name, fn in (("manual", manual), ("invoke", invoke), ("stream", stream))
    }
    rss_growth = (process.memory_info().rss - rss_loaded) / 2**20
    invoke_ratio = paired("invoke", "manual")
    rows = [
        {
            "metric": "model.generate on pre-encoded inputs",
            "value": times["generate"],
            "unit": "ms",
        },
        {
            "metric": "manual: template + processor + generate + decode",
            "value": times["manual"],
            "unit": "ms",
        },
        {
            "metric": "ChatLocalVLM.invoke, base64 image block",
            "value": times["invoke"],
            "unit": "ms",
        },
        {"metric": "ChatLocalVLM.stream", "value": times["stream"], "unit": "ms"},
        {
            "metric": "invoke / manual",
            "value": invoke_ratio,
            "target": "<= 1.05",
            "ok": invoke_ratio <= 1.05,
        },
        {"metric": "stream / manual", "value": paired("stream", "manual")},
        {"metric": "invoke / generate", "value": paired("invoke", "generate")},
        {"metric": "manual / generate", "value": paired("manual", "generate")},
        {
            "metric": f"batch of {len(prompts)}: ChatLocalVLM.batch",
            "value": median_ms(batched),
            "unit": "ms",
        },
        {
            "metric": f"batch of {len(prompts)}: sequential invoke",
            "value": median_ms(sequential),
            "unit": "ms",
        },
        {
            "metric": "batch speedup",
            "value": round(statistics.median(sequential) / statistics.median(batched), 2),
            "unit": "x",
        },
        {"metric": "generate calls per batch", "value": str(batch_sizes)},
        {"metric": "Python peak per call: manual", "value": python_peak["manual"], "unit": "KiB"},
        {"metric": "Python peak per call: invoke", "value": python_peak["invoke"], "unit": "KiB"},
        {"metric": "Python peak per call: stream", "value": python_peak["stream"], "unit": "KiB"},
        {
            "metric": "RSS growth: model load",
            "value": round((rss_loaded - rss_start) / 2**20, 1),
            "unit": "MiB",
        },
        {"metric": "RSS growth: after all runs", "value": round(rss_growth, 1), "unit": "MiB"},
        {"metric": "RSS peak (ru_maxrss)", "value": round(_peak_rss_mib(), 1), "unit": "MiB"},
    ]
    extra = {
        "model": "tiny random Qwen2.5-VL (built locally)" if tiny else path,
        "parameters": sum(p.numel() for p in model.parameters()),
        "prompt_tokens": int(encoded["input_ids"].shape[1]),
        "image": "320x240 PNG, base64 content block",
        "new_tokens": f"{tokens} (forced with min_new_tokens), greedy",
        "device": str(model.device),
        "torch": torch.__version__,
        "torch_threads": threads,
        "cpus": psutil.cpu_count(),
        "timing": f"medians of {repeats} interleaved rounds; ratios: median of per-round ratios",
        "load_average_1min": round(psutil.getloadavg()[0], 2),
    }
    return rows, extra


def _peak_rss_mib() -> float:
    try:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    except ImportError:  # pragma: no cover - not on Windows
        return psutil.Process().memory_info().rss / 2**20


if __name__ == "__main__":
    main()
