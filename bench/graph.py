"""Benchmark: what the graph adds per tool step beyond model time and kernel time.

Run: ``python bench/graph.py [--episodes N]``. Writes ``bench/results/graph.{json,md}``.

Each episode sends a 1000x1000 page through the graph with a scripted model: two tool calls
(rotate, then crop-and-enlarge) and an answer. Model time is measured inside the model,
kernel time is the kernel round trip of each step; the rest is the graph's own work:
parsing, validation, state updates, and encoding images for the model and the trajectory.
In the same run, the same two kernel steps plus the same encodes are done by hand, without
the graph, as a baseline.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from langchain_core.messages import AIMessage

from bench._common import write_report
from langchain_codevision import create_codevision_graph
from langchain_codevision.demo import render_page
from langchain_codevision.images import PixelBudget, to_image_block, trajectory_image
from langchain_codevision.kernel import KernelPool
from tests.scripted_model import ScriptedChatModel, text_call

CALLS = [
    "result = image.rotate(270, expand=True)",
    "result = image.crop((0, 0, 500, 500)).resize((1000, 1000))",
]


class TimedModel(ScriptedChatModel):
    """The scripted model, timing its own calls."""

    spent: float = 0.0

    def _generate(self, messages, stop=None, run_manager=None, **kwargs):  # type: ignore[override]
        start = time.perf_counter()
        try:
            return super()._generate(messages, stop, run_manager, **kwargs)
        finally:
            self.spent += time.perf_counter() - start


def by_hand(pool: KernelPool, page, budget: PixelBudget) -> float:
    """The same two steps and encodes, no graph: returns seconds."""
    start = time.perf_counter()
    to_image_block(page, budget=budget)
    trajectory_image(page, 0)
    with pool.session() as kernel:
        kernel.put_image(0, page)
        for index, code in enumerate(CALLS):
            out = kernel.execute(
                code, image=index, collect=("result", "output", "image"), register_as=index + 1
            )
            image = out.result_images[0].image
            to_image_block(image, budget=budget)
            trajectory_image(image, index + 1)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--episodes", type=int, default=10)
    args = parser.parse_args()
    page, _ = render_page(size=(1000, 1000))
    rotated = page.rotate(90, expand=True)
    budget = PixelBudget()
    overheads, totals, manual = [], [], []
    with KernelPool(size=1) as pool:
        pool.wait_ready()
        for episode in range(args.episodes + 1):
            model = TimedModel(
                replies=[
                    text_call(CALLS[0]),
                    text_call(CALLS[1], image_index=1),
                    AIMessage("<answer>x</answer>"),
                ],
                dialect="text",
            )
            graph = create_codevision_graph(model, pool=pool)
            pool.wait_ready()
            start = time.perf_counter()
            out = graph.invoke({"image": rotated, "question": "q"})
            total = time.perf_counter() - start
            assert [s["ok"] for s in out["steps"]] == [True, True], out["steps"]
            kernel = sum(s["duration_s"] for s in out["steps"])
            pool.wait_ready()
            hand = by_hand(pool, rotated, budget)
            if episode == 0:
                continue  # warm-up
            totals.append(total)
            manual.append(hand)
            overheads.append((total - model.spent - kernel) / len(out["steps"]))
    per_step = statistics.median(overheads) * 1000
    total_ms = statistics.median(totals) * 1000
    hand_ms = statistics.median(manual) * 1000
    rows = [
        {"metric": "episode wall time (2 tool steps, graph)", "value": total_ms, "unit": "ms"},
        {
            "metric": "same steps by hand (kernel + encodes, no graph)",
            "value": hand_ms,
            "unit": "ms",
        },
        {"metric": "graph / by hand", "value": total_ms / hand_ms, "unit": "x"},
        {
            "metric": "graph overhead per step beyond model + kernel time",
            "value": per_step,
            "unit": "ms",
        },
    ]
    path = write_report(
        "graph",
        "Graph overhead benchmark",
        rows,
        {"image": "1000x1000 page", "episodes": args.episodes, "steps_per_episode": 2},
    )
    print(path.read_text())


if __name__ == "__main__":
    main()
