"""Benchmark: what the graph adds per tool step beyond model time and kernel time.

Run: ``python bench/graph.py [--episodes N] [--before REV]``. Writes
``bench/results/graph.{json,md}``.

Each episode sends a 1000x1000 rendered page through the graph with a scripted model: two
tool calls (rotate, then crop-and-enlarge) and an answer. Model time is measured inside the
model, kernel time is the kernel round trip of each step; the rest is the graph's own work:
parsing, validation, state updates, and the image the model gets (resized into its pixel
budget, encoded once). Measured in the same run:

* the same episode on the package as it was at ``--before`` (a ``git archive`` copy run in a
  subprocess), for the before/after rows;
* the kernel step against the same work in-process (op + the same PNG encode);
* the start of a fresh episode on a warm pool (a fresh kernel lent and loaded with the page);
* episodes per second with one and with two workers (threads sharing one graph and pool),
  with the cores the machine and this process kept busy meanwhile: one worker's episodes
  already overlap host and kernel work, so two can gain at most cores / cores busy at one;
* the same with one and two worker processes (each its own graph and one-kernel pool, as
  the evaluation runner's workers), with fresh kernels (the default: each episode's kernel
  is started, jailed, and torn down, on the same cores) and with kernels reset;
* that the faster PNG loses nothing: OCR (RapidOCR) of the image sent to the model equals
  OCR of a PNG level 6 copy of it, on rendered pages.
"""

from __future__ import annotations

import argparse
import base64
import collections
import functools
import io
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if os.environ.get("CODEVISION_BENCH_TREE"):  # the --before copy: import it, not the checkout
    sys.path.insert(0, os.environ["CODEVISION_BENCH_TREE"])
sys.path.insert(1, str(ROOT))

from langchain_core.messages import AIMessage  # noqa: E402
from langchain_core.outputs import ChatGeneration, ChatResult  # noqa: E402
from PIL import Image  # noqa: E402

import langchain_codevision  # noqa: E402
from langchain_codevision import create_codevision_graph  # noqa: E402
from langchain_codevision import images as codec  # noqa: E402
from langchain_codevision.demo import render_page  # noqa: E402
from langchain_codevision.kernel import KernelPool  # noqa: E402
from langchain_codevision.loop.kernels import EpisodeKernels  # noqa: E402
from tests.scripted_model import ScriptedChatModel, text_call  # noqa: E402

CALLS = [
    "result = image.rotate(270, expand=True)",
    "result = image.crop((0, 0, 500, 500)).resize((1000, 1000))",
]
BEFORE = "ae47f41"
"""The commit the before rows are measured on (the package before the lean hot path)."""


class TimedModel(ScriptedChatModel):
    """The scripted model, timing its own calls and when it was first asked."""

    spent: float = 0.0
    first_call: float | None = None

    def _generate(self, messages, stop=None, run_manager=None, **kwargs):  # type: ignore[override]
        start = time.perf_counter()
        if self.first_call is None:
            self.first_call = start
        try:
            return super()._generate(messages, stop, run_manager, **kwargs)
        finally:
            self.spent += time.perf_counter() - start


class Counters:
    """Counts PNG encodes and resizes in this process (wrapping the codec's functions).

    A one-pass view (``encode_view``: resize straight into the PNG rows) counts as one
    resize and one encode; what it calls inside is not counted again.
    """

    def __init__(self) -> None:
        self.counts: collections.Counter[str] = collections.Counter()
        self.depth = 0
        self._install()

    def _wrap(self, function, count):
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            outermost = self.depth == 0
            self.depth += 1
            try:
                result = function(*args, **kwargs)
            finally:
                self.depth -= 1
            if outermost:
                count(result)
            return result

        return wrapper

    def _add(self, *names: str):
        def count(_result) -> None:
            self.counts.update(names)

        return count

    def _install(self) -> None:
        wrapped = {
            "encode_image": self._add("encode"),
            "encode_view": lambda r: self.counts.update(["encode"] + ["resize"] * r[1]),
            "resize_image": self._add("resize"),
        }
        originals = {name: getattr(codec, name) for name in wrapped if hasattr(codec, name)}
        replacements = {
            name: self._wrap(function, wrapped[name]) for name, function in originals.items()
        }
        for name, module in list(sys.modules.items()):
            if not name.startswith("langchain_codevision"):
                continue
            for attr, original in originals.items():
                if getattr(module, attr, None) is original:
                    setattr(module, attr, replacements[attr])
        Image.Image.resize = self._wrap(Image.Image.resize, self._add("resize"))  # type: ignore[method-assign]


class StartTimer:
    """Times ``EpisodeKernels.aget`` when it lends a kernel (a fresh episode's start)."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        original = EpisodeKernels.aget

        async def aget(kernels, episode_id, images):
            fresh = kernels._take(episode_id) is None
            start = time.perf_counter()
            try:
                return await original(kernels, episode_id, images)
            finally:
                if fresh:
                    self.samples.append(time.perf_counter() - start)

        EpisodeKernels.aget = aget  # type: ignore[method-assign]


def scripted() -> TimedModel:
    return TimedModel(
        replies=[
            text_call(CALLS[0]),
            text_call(CALLS[1], image_index=1),
            AIMessage("<answer>x</answer>"),
        ],
        dialect="text",
    )


def run_episode(pool: KernelPool, page: Image.Image) -> dict[str, float]:
    """One graph episode; its wall, model and kernel time and where the start went."""
    model = scripted()
    graph = create_codevision_graph(model, pool=pool)
    pool.wait_ready()
    start = time.perf_counter()
    out = graph.invoke({"image": page, "question": "q"})
    total = time.perf_counter() - start
    assert [s["ok"] for s in out["steps"]] == [True, True], out["steps"]
    kernel = sum(s["duration_s"] for s in out["steps"])
    return {
        "total": total,
        "model": model.spent,
        "kernel": kernel,
        "steps": len(out["steps"]),
        "to_first_model_call": (model.first_call or start) - start,
    }


def episode_stats(episodes: int, recycle: str = "replace") -> dict[str, Any]:
    """Median episode figures on the imported package (runs in the --before copy too).

    ``recycle``: how the pool recycles kernels between episodes (``"replace"``, the
    default: a fresh kernel per episode, started in the background meanwhile).
    """
    page, _ = render_page(size=(1000, 1000))
    rotated = page.rotate(90, expand=True)
    counters = Counters()
    starts = StartTimer()
    rows = []
    with KernelPool(size=1, recycle=recycle) as pool:
        pool.wait_ready()
        for episode in range(episodes + 1):
            counters.counts.clear()
            faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            row = run_episode(pool, rotated)
            row["faults"] = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
            if episode:  # the first is a warm-up
                rows.append({**row, **counters.counts})
    starts.samples = starts.samples[1:]

    def med(key: str) -> float:
        return statistics.median(row.get(key, 0) for row in rows)

    overhead = [(r["total"] - r["model"] - r["kernel"]) / r["steps"] for r in rows]
    lend = statistics.median(starts.samples) if starts.samples else 0.0
    beyond_waits = [o - lend / r["steps"] for o, r in zip(overhead, rows, strict=True)]
    return {
        "package": str(Path(langchain_codevision.__file__).parent),
        "episode_ms": med("total") * 1000,
        "model_ms": med("model") * 1000,
        "kernel_ms": med("kernel") * 1000,
        "overhead_per_step_ms": statistics.median(overhead) * 1000,
        "overhead_beyond_waits_ms": statistics.median(beyond_waits) * 1000,
        "to_first_model_call_ms": med("to_first_model_call") * 1000,
        "fresh_start_ms": statistics.median(starts.samples) * 1000 if starts.samples else None,
        "encodes": med("encode"),
        "resizes": med("resize"),
        "faults": med("faults"),
    }


CHANGED = (
    "langchain_codevision/images.py",
    "langchain_codevision/loop/checkpointing.py",
    "langchain_codevision/loop/executor.py",
    "langchain_codevision/loop/messages.py",
    "langchain_codevision/loop/nodes.py",
    "langchain_codevision/loop/state.py",
)
"""The files of the hot-path change: the before copy has these as they were at ``rev``."""


def before_stats(rev: str, episodes: int) -> dict[str, Any]:
    """:func:`episode_stats` with :data:`CHANGED` as at ``rev`` (same machine, same run).

    The rest of the package (kernels, pool) is the checkout's, so the rows compare the
    hot-path change alone.
    """
    with tempfile.TemporaryDirectory(prefix="graph-bench-") as tree:
        for part in ("langchain_codevision", "tests"):
            shutil.copytree(
                ROOT / part, Path(tree) / part, ignore=shutil.ignore_patterns("__pycache__")
            )
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", rev, *CHANGED],
            check=True,
            capture_output=True,
        ).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(tree, filter="data")
        return stats_in_subprocess(episodes, {"CODEVISION_BENCH_TREE": tree})


def stats_in_subprocess(
    episodes: int, env: dict[str, str], recycle: str = "replace"
) -> dict[str, Any]:
    """:func:`episode_stats` in a fresh process with ``env`` added to its environment."""
    done = subprocess.run(
        [sys.executable, __file__, "--episode-stats", str(episodes), "--recycle", recycle],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, **env},
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def kernel_step(pool: KernelPool, page: Image.Image, repeat: int) -> dict[str, float]:
    """Kernel execute step + encode vs the same op + the same encode in-process."""
    from bench._common import measure_interleaved

    budget = codec.PixelBudget()

    def view(image: codec.PixelSource) -> None:  # what the graph encodes after each step
        codec.encode_view(image, budget, "png")

    pixels = codec.frozen_pixels(page)  # the graph encodes its views from arrays
    kept: collections.deque[Image.Image] = collections.deque(maxlen=4)

    def process_kept() -> bytes:  # as an episode does: each step's image stays in use
        kept.append(page.rotate(270, expand=True))
        return codec.encode_image(kept[-1], "png")

    with pool.session() as kernel:
        kernel.put_image(0, page)

        def run() -> codec.PixelSource:
            out = kernel.execute(CALLS[0], image=0, collect=("result",), register_as=1)
            return out.result_images[0].pixels  # as the graph takes it: an array

        timed = measure_interleaved(
            {
                "kernel": lambda: codec.encode_image(run(), "png"),
                "process": lambda: codec.encode_image(page.rotate(270, expand=True), "png"),
                "process_kept": process_kept,
                "kernel_view": lambda: view(run()),
                "process_view": lambda: view(page.rotate(270, expand=True)),
                "op": lambda: page.rotate(270, expand=True),
                "view_only": lambda: view(pixels),
            },
            repeat,
        )
    return {name: value["median_ms"] for name, value in timed.items()}


class TurnScriptedModel(ScriptedChatModel):
    """The episode's script, by turn: the reply is picked by the AI turns so far.

    One model (and so one graph) serves every episode and thread, as in an evaluation
    run; nothing is recorded, so a long run keeps no history.
    """

    def _generate(self, messages, stop=None, run_manager=None, **kwargs):  # type: ignore[override]
        turn = sum(message.type == "ai" for message in messages)
        reply = self.replies[min(turn, len(self.replies) - 1)]
        message = reply if isinstance(reply, AIMessage) else AIMessage(reply)
        return ChatResult(generations=[ChatGeneration(message=message)])


def throughput(page: Image.Image, workers: int, episodes: int) -> dict[str, float]:
    """Episodes per second with ``workers`` threads sharing one graph and a pool of
    ``workers`` kernels (built once, as :func:`~langchain_codevision.eval.evaluate` does),
    and the cores that kept busy meanwhile: the whole machine's and this process's."""
    from bench._common import machine_busy_s

    replies = [text_call(CALLS[0]), text_call(CALLS[1], image_index=1), "<answer>x</answer>"]
    with KernelPool(size=workers, recycle="reset") as pool:
        pool.wait_ready()
        model = TurnScriptedModel(replies=replies, dialect="text")
        graph = create_codevision_graph(model, pool=pool)
        per_worker = max(1, episodes // workers)

        def work(count: int) -> None:
            for _ in range(count):
                out = graph.invoke({"image": page, "question": "q"})
                assert [s["ok"] for s in out["steps"]] == [True, True], out["steps"]

        warm = [threading.Thread(target=work, args=(1,)) for _ in range(workers)]
        for thread in warm:
            thread.start()
        for thread in warm:
            thread.join()
        threads = [threading.Thread(target=work, args=(per_worker,)) for _ in range(workers)]
        start, busy, own = time.perf_counter(), machine_busy_s(), time.process_time()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - start
        return {
            "episodes_per_s": per_worker * workers / wall,
            "machine_cores": (machine_busy_s() - busy) / wall,
            "host_cores": (time.process_time() - own) / wall,
        }


def process_episodes(recycle: str, episodes: int, start_at: float) -> tuple[float, float]:
    """In a worker process: episodes/s of one graph and one kernel (``recycle``), timed from
    ``start_at`` (a wall-clock time every worker of a round waits for), and the machine's
    busy cores meanwhile."""
    from bench._common import machine_busy_s

    page, _ = render_page(size=(1000, 1000))
    replies = [text_call(CALLS[0]), text_call(CALLS[1], image_index=1), "<answer>x</answer>"]
    with KernelPool(size=1, recycle=recycle) as pool:
        pool.wait_ready()
        graph = create_codevision_graph(
            TurnScriptedModel(replies=replies, dialect="text"), pool=pool
        )
        for _ in range(3):
            graph.invoke({"image": page, "question": "q"})
        time.sleep(max(0.0, start_at - time.time()))
        start, busy = time.perf_counter(), machine_busy_s()
        for _ in range(episodes):
            out = graph.invoke({"image": page, "question": "q"})
            assert [s["ok"] for s in out["steps"]] == [True, True], out["steps"]
        wall = time.perf_counter() - start
        return episodes / wall, (machine_busy_s() - busy) / wall


def kernel_lifecycle(kernels: int) -> dict[str, float]:
    """Machine and host-process CPU per fresh kernel from a warm pool: lent, one empty
    execute, given back (closed, its jail torn down), and the next one started and warmed."""
    from bench._common import machine_busy_s

    with KernelPool(size=1) as pool:
        pool.wait_ready()
        for _ in range(3):
            session = pool.acquire()
            session.execute("pass")
            pool.release(session)
        busy, own, start = machine_busy_s(), time.process_time(), time.perf_counter()
        for _ in range(kernels):
            session = pool.acquire()
            session.execute("pass")
            pool.release(session)
            pool.wait_ready()
        wall = time.perf_counter() - start
        return {
            "machine_ms": (machine_busy_s() - busy) / kernels * 1e3,
            "host_ms": (time.process_time() - own) / kernels * 1e3,
            "wall_ms": wall / kernels * 1e3,
        }


def process_scaling(recycle: str, episodes: int, rounds: int) -> dict[str, Any]:
    """1 and 2 worker processes (each its own graph and kernel pool, as the evaluation
    runner's workers), in ``rounds`` back-to-back pairs: the median pair's ratio, every
    pair's, and the machine's busy cores with one process."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    ratios, busy = [], []
    with context.Pool(2) as workers:
        for _ in range(rounds):
            ((rate, cores),) = workers.starmap(
                process_episodes, [(recycle, episodes, time.time() + 4)]
            )
            pair = workers.starmap(process_episodes, [(recycle, episodes, time.time() + 6)] * 2)
            ratios.append(sum(r for r, _ in pair) / rate)
            busy.append(cores)
    return {
        "ratio": statistics.median(ratios),
        "rounds": ratios,
        "cores_at_1": statistics.median(busy),
    }


def scaling_rounds(
    page: Image.Image, episodes: int, rounds: int
) -> tuple[dict[str, float], dict[str, float], list[float]]:
    """1 and 2 workers in alternation, ``rounds`` times: each round's 2 / 1 ratio, and the
    median round's figures of each (a pair run back to back shares the machine's mood)."""
    pairs = [(throughput(page, 1, episodes), throughput(page, 2, episodes)) for _ in range(rounds)]
    ratios = [two["episodes_per_s"] / one["episodes_per_s"] for one, two in pairs]
    middle = sorted(range(rounds), key=ratios.__getitem__)[rounds // 2]
    return pairs[middle][0], pairs[middle][1], ratios


def ocr_check(pages: int) -> dict[str, Any]:
    """OCR of the image the model is sent equals OCR of a PNG level 6 copy of it; and the
    view's resampling (area averaging, bilinear for a mild shrink) reads as many known lines
    as PIL's bicubic."""
    from rapidocr import RapidOCR

    from langchain_codevision.loop.messages import encode_step_image

    engine = RapidOCR(params={"Global.log_level": "critical"})
    budget = codec.PixelBudget()

    def text_of(image: Image.Image) -> list[str]:
        return [line.strip() for line in engine(image.convert("RGB")).txts or []]

    same, words = 0, 0
    for seed in range(pages):
        page, _ = render_page(size=(1000, 1000), seed=seed)
        block, _ = encode_step_image(page, 0, budget, "png")
        sent = Image.open(io.BytesIO(base64.b64decode(block["base64"])))
        sent.load()
        buffer = io.BytesIO()
        codec.fit_pixel_budget(page, budget).save(buffer, format="PNG", compress_level=6)
        reference = Image.open(buffer)
        reference.load()
        got, want = text_of(sent), text_of(reference)
        # the view of a grey page is a greyscale PNG: the colours are what must be equal
        same += got == want and sent.convert("RGB").tobytes() == reference.tobytes()
        words += len(want)
    known = {"view": 0, "bicubic": 0, "lines": 0}
    for seed in range(pages):
        for size in ((1000, 1000), (1400, 1800), (2000, 1300)):
            page, lines = render_page(size=size, seed=seed)
            target = codec.budget_size(*page.size, budget)
            views = {
                "view": codec.fit_pixel_budget(page, budget),
                "bicubic": page.resize(target, Image.Resampling.BICUBIC),
            }
            for name, view in views.items():
                read = set(text_of(view))
                known[name] += sum(line in read for line in lines)
            known["lines"] += len(lines)
    return {"pages": pages, "identical": same, "lines_read": words, "known": known}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--before", default=BEFORE, help="git revision of the before rows")
    parser.add_argument("--ocr-pages", type=int, default=3)
    parser.add_argument("--episode-stats", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--recycle", default="replace", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.episode_stats:
        print(json.dumps(episode_stats(args.episode_stats, args.recycle)))
        return
    from bench._common import StealMeter, write_report

    steal = StealMeter()
    before = before_stats(args.before, args.episodes)
    after = episode_stats(args.episodes)
    reset = episode_stats(args.episodes, "reset")
    untuned_env = {"CODEVISION_HEAP_TUNING": "0"}  # malloc as it comes (see _heap.py)
    untuned = stats_in_subprocess(args.episodes, untuned_env)
    untuned_reset = stats_in_subprocess(args.episodes, untuned_env, "reset")
    page, _ = render_page(size=(1000, 1000))
    with KernelPool(size=1) as pool:
        pool.wait_ready()
        step = kernel_step(pool, page, repeat=20)
    one, two, scaling = scaling_rounds(page, 4 * args.episodes, rounds=3)
    processes = {mode: process_scaling(mode, 2 * args.episodes, 2) for mode in ("replace", "reset")}
    lifecycle = kernel_lifecycle(2 * args.episodes)
    ocr = ocr_check(args.ocr_pages)
    step_ratio = step["kernel"] / step["process"]
    kept_ratio = step["kernel"] / step["process_kept"]
    view_ratio = step["kernel_view"] / step["process_view"]
    views_per_step = 3 / 2  # the page and two results are shown, over two steps
    machinery = after["overhead_beyond_waits_ms"] - views_per_step * step["view_only"]
    rows = [
        {"metric": "episode wall time, before", "value": before["episode_ms"], "unit": "ms"},
        {"metric": "episode wall time, after", "value": after["episode_ms"], "unit": "ms"},
        {
            "metric": "episode after / before",
            "value": after["episode_ms"] / before["episode_ms"],
            "unit": "x",
        },
        {"metric": "PNG encodes per episode, before", "value": before["encodes"], "unit": ""},
        {"metric": "PNG encodes per episode, after", "value": after["encodes"], "unit": ""},
        {"metric": "resizes per episode, before", "value": before["resizes"], "unit": ""},
        {"metric": "resizes per episode, after", "value": after["resizes"], "unit": ""},
        {"metric": "kernel time per episode, after", "value": after["kernel_ms"], "unit": "ms"},
        {
            "metric": "graph overhead per step beyond model + kernel steps, before",
            "value": before["overhead_per_step_ms"],
            "unit": "ms",
        },
        {
            "metric": "graph overhead per step beyond model + kernel steps, after",
            "value": after["overhead_per_step_ms"],
            "unit": "ms",
        },
        {
            "metric": "graph overhead per step beyond model + kernel waits (steps, lending), "
            "before",
            "value": before["overhead_beyond_waits_ms"],
            "unit": "ms",
        },
        {
            "metric": "graph overhead per step beyond model + kernel waits (steps, lending), after",
            "value": after["overhead_beyond_waits_ms"],
            "unit": "ms",
            "target": "<= 10",
            "ok": after["overhead_beyond_waits_ms"] <= 10,
        },
        {
            "metric": "same, kernels reset between episodes "
            "(recycle='reset': trusted code only), after",
            "value": reset["overhead_beyond_waits_ms"],
            "unit": "ms",
            "target": "<= 10",
            "ok": reset["overhead_beyond_waits_ms"] <= 10,
        },
        {
            "metric": "same, heap tuning off (CODEVISION_HEAP_TUNING=0): fresh kernels / reset",
            "value": f"{untuned['overhead_beyond_waits_ms']:.3f} / "
            f"{untuned_reset['overhead_beyond_waits_ms']:.3f}",
            "unit": "ms",
        },
        {
            "metric": "host page faults per episode, heap tuned / tuning off (fresh kernels)",
            "value": f"{after['faults']:.0f} / {untuned['faults']:.0f}",
            "unit": "",
        },
        {
            "metric": "overhead after / before",
            "value": after["overhead_per_step_ms"] / before["overhead_per_step_ms"],
            "unit": "x",
        },
        {
            "metric": "model view of one 1000x1000 page (resize to 896x896 + PNG), from its array",
            "value": step["view_only"],
            "unit": "ms",
        },
        {
            "metric": "same, less the model-view work (1.5 views/step): graph machinery",
            "value": machinery,
            "unit": "ms",
        },
        {"metric": "in-process op (rotate)", "value": step["op"], "unit": "ms"},
        {"metric": "in-process op + full-size PNG", "value": step["process"], "unit": "ms"},
        {"metric": "kernel execute step + full-size PNG", "value": step["kernel"], "unit": "ms"},
        {
            "metric": "in-process op + full-size PNG, each result kept (as an episode keeps it)",
            "value": step["process_kept"],
            "unit": "ms",
        },
        {
            "metric": "kernel step / (in-process op + same encode, results kept), full-size PNG",
            "value": kept_ratio,
            "unit": "x",
        },
        {
            "metric": "kernel step / (in-process op + same encode), full-size PNG",
            "value": step_ratio,
            "unit": "x",
            "target": "<= 1.3",
            "ok": step_ratio <= 1.3,
        },
        {
            "metric": "kernel step / (in-process op + same encode), the model view",
            "value": view_ratio,
            "unit": "x",
            "target": "<= 1.3",
            "ok": view_ratio <= 1.3,
        },
        {
            "metric": "invoke to first model call (input checked, view encoded), after",
            "value": after["to_first_model_call_ms"],
            "unit": "ms",
        },
        {
            "metric": "warm fresh-episode start (fresh kernel lent + page loaded), before",
            "value": before["fresh_start_ms"],
            "unit": "ms",
        },
        {
            "metric": "warm fresh-episode start (fresh kernel lent + page loaded), after",
            "value": after["fresh_start_ms"],
            "unit": "ms",
            "target": "<= 10",
            "ok": after["fresh_start_ms"] is not None and after["fresh_start_ms"] <= 10,
        },
        {"metric": "episodes/s, 1 worker", "value": one["episodes_per_s"], "unit": "1/s"},
        {"metric": "episodes/s, 2 workers", "value": two["episodes_per_s"], "unit": "1/s"},
        {
            "metric": "episodes/s, 2 workers / 1 worker (median of 3 paired rounds)",
            "value": statistics.median(scaling),
            "unit": f"x (rounds: {', '.join(f'{r:.2f}' for r in scaling)})",
            "target": ">= 1.7",
            "ok": statistics.median(scaling) >= 1.7,
        },
        {
            "metric": "cores busy (whole machine / this process), 1 worker",
            "value": f"{one['machine_cores']:.2f} / {one['host_cores']:.2f}",
            "unit": f"of {os.cpu_count()}",
        },
        {
            "metric": "cores busy (whole machine / this process), 2 workers",
            "value": f"{two['machine_cores']:.2f} / {two['host_cores']:.2f}",
            "unit": f"of {os.cpu_count()}",
        },
        {
            "metric": "most 2 workers can reach on these cores (cores / cores busy at 1)",
            "value": min(2.0, (os.cpu_count() or 1) / max(one["machine_cores"], 1e-9)),
            "unit": "x",
        },
        {
            "metric": "CPU per fresh kernel (lent, one execute, closed, next one started): "
            "whole machine / this process",
            "value": f"{lifecycle['machine_ms']:.1f} / {lifecycle['host_ms']:.1f}",
            "unit": f"ms ({lifecycle['wall_ms']:.1f} ms wall each)",
        },
        *(
            row
            for mode, label in (("replace", "fresh kernels"), ("reset", "kernels reset"))
            for row in (
                {
                    "metric": f"episodes/s, 2 worker processes / 1, {label} (median of 2 "
                    "paired rounds)",
                    "value": processes[mode]["ratio"],
                    "unit": "x (rounds: "
                    + ", ".join(f"{r:.2f}" for r in processes[mode]["rounds"])
                    + ")",
                    "target": ">= 1.7",
                    "ok": processes[mode]["ratio"] >= 1.7,
                },
                {
                    "metric": f"cores busy with 1 worker process, {label}; most 2 can reach",
                    "value": f"{processes[mode]['cores_at_1']:.2f} of {os.cpu_count()}; "
                    f"{min(2.0, (os.cpu_count() or 1) / processes[mode]['cores_at_1']):.2f}",
                    "unit": "x",
                },
            )
        ),
        {
            "metric": "pages where OCR of the sent image = OCR of a PNG-6 copy (colours equal)",
            "value": f"{ocr['identical']}/{ocr['pages']}",
            "unit": f"({ocr['lines_read']} lines read)",
            "ok": ocr["identical"] == ocr["pages"],
        },
        {
            "metric": "known lines read exactly from the model view (area, mild shrink "
            "bilinear), of all",
            "value": f"{ocr['known']['view']}/{ocr['known']['lines']}",
            "unit": f"(PIL bicubic view: {ocr['known']['bicubic']})",
            "ok": ocr["known"]["view"] >= ocr["known"]["bicubic"],
        },
    ]
    path = write_report(
        "graph",
        "Graph hot-path benchmark",
        rows,
        {
            "image": "1000x1000 rendered page, default profile (model view 896x896)",
            "episodes": args.episodes,
            "steps_per_episode": 2,
            "before": args.before,
            "cpus": os.cpu_count(),
            "load_average_1min": round(os.getloadavg()[0], 2),
            "steal during the run (% of CPU time)": steal.percent(),
        },
    )
    notes = [
        "",
        "Notes:",
        "- Before, every trajectory image was PNG-encoded into state and the model view "
        "encoded again; now trajectory images stay pixels (PNG once, when a checkpointer or "
        "an export asks) and the model view is resized first, then encoded once (shared "
        "with the trajectory when it already fits).",
        "- PNG is written in one pass (no row filter, or PNG's up filter where a sample of "
        "rows shows it pays, as on photos; deflate level 1, ISA-L's deflate "
        "where `isal` is installed): lossless, so the OCR row compares text read from the "
        "sent image and from a PNG level 6 copy.",
        "- The model view is resized with OpenCV's area averaging (bilinear for a shrink "
        "under 20%, bicubic when it grows); "
        "the known-lines row reads rendered pages of 1000x1000, 1400x1800 and 2000x1300 "
        "through both resamplers.",
        "- The model view's resize + encode runs off the kernel I/O loop that all episodes share.",
        "- Before rows: the checkout with the hot-path files as at the before revision "
        "(kernels and pool as checked out), in a subprocess of the same run.",
        "- Kernel lending (a fresh kernel from the warm pool, loaded with the page) happens "
        "on the first tool call and is not part of the steps' duration.",
        "- Fresh kernels (the default): the pool starts the next episode's kernel in the "
        "background while this one runs, on the same two cores; with `recycle='reset'` "
        "no start runs meanwhile. The heap rows run the same episodes in a subprocess with "
        "`CODEVISION_HEAP_TUNING=0` (malloc hands freed pixel buffers back to the OS).",
        "- The in-process op rows drop each result at once, so the next rotate writes into "
        "the same, cache-warm buffer; the 'results kept' row keeps the last four, as an "
        "episode keeps each step's image (in the kernel: the variable and the registry).",
        "- The machine is shared (load average above); compare rows of one run only.",
    ]
    path.write_text(path.read_text() + "\n".join(notes) + "\n")
    print(path.read_text())


if __name__ == "__main__":
    main()
