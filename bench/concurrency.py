"""RL-scale concurrency: many episodes at once through the graph, 0 kernels left behind.

Run: ``python bench/concurrency.py [--episodes 1000] [--recycle reset|replace]``.
Writes ``bench/results/concurrency.{json,md}``.

1. 64 concurrent episodes (``graph.abatch``) on a pool bounded to 4 kernels: all complete,
   answers in input order (each answer is the width its own kernel printed), back-pressure
   counted (acquires that waited at ``max_size``), the pool never above ``max_size``;
2. ``--episodes`` episodes at concurrency 64 on a pool of 8, then the pool closed;
3. batches cancelled mid-way: every kernel comes back (``lent_count`` 0);
4. what this process holds before and after: processes, run-root folders, ``/dev/shm``
   entries, cgroups (:mod:`langchain_codevision.benchmarks.footprint`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import sys
import time
from pathlib import Path

from langchain_core.messages import AIMessage, BaseMessage
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import write_report
from langchain_codevision import create_codevision_graph
from langchain_codevision.benchmarks.footprint import kernel_footprint, leaked, settled_footprint
from langchain_codevision.kernel import KernelPool
from langchain_codevision.models.policies import TextPolicyModel
from langchain_codevision.protocol import TOOL_NAME, format_tool_call

CODE = "print(f'W={image.size[0]}')\nresult = image.rotate(90, expand=True)"


class WidthModel(TextPolicyModel):
    """One real call printing the image width, then that width as the answer."""

    code: str = CODE

    @property
    def _llm_type(self) -> str:
        return "width"

    def reply(self, messages: list[BaseMessage]) -> str:
        seen = re.search(r"W=(\d+)", messages[-1].text)
        if seen and any(isinstance(m, AIMessage) for m in messages):
            return f"<answer>{seen.group(1)}</answer>"
        call = format_tool_call(TOOL_NAME, {"code": self.code, "description": "", "image_index": 0})
        return f"<think>measure</think>\n{call}"


def inputs(count: int, start: int = 0) -> list[dict]:
    return [
        {"image": Image.new("RGB", (40 + k % 500, 24), "white"), "question": f"episode {k}"}
        for k in range(start, start + count)
    ]


def in_order(outs: list[dict], start: int = 0) -> bool:
    return [o.get("answer") for o in outs] == [
        str(40 + k % 500) for k in range(start, start + len(outs))
    ]


async def concurrent_64(recycle: str) -> dict:
    pool = KernelPool(size=4, max_size=4, recycle=recycle)
    graph = create_codevision_graph(WidthModel(), pool=pool)
    try:
        started = time.perf_counter()
        outs = await graph.abatch(inputs(64))
        took = time.perf_counter() - started
        return {
            "completed": sum(o.get("stop_reason") == "answer" for o in outs),
            "in_order": in_order(outs),
            "seconds": took,
            "stats": dict(pool.stats),
            "lent_after": pool.lent_count,
        }
    finally:
        await pool.aclose()


async def many(count: int, recycle: str) -> dict:
    pool = KernelPool(size=8, max_size=8, recycle=recycle)
    graph = create_codevision_graph(WidthModel(), pool=pool)
    done = ordered = 0
    try:
        started = time.perf_counter()
        for first in range(0, count, 200):
            chunk = min(200, count - first)
            outs = await graph.abatch(inputs(chunk, first), {"max_concurrency": 64})
            done += sum(o.get("stop_reason") == "answer" for o in outs)
            ordered += in_order(outs, first)
            print(f"[concurrency] {first + chunk}/{count} episodes", file=sys.stderr)
        took = time.perf_counter() - started
        return {
            "completed": done,
            "chunks_in_order": ordered,
            "seconds": took,
            "stats": dict(pool.stats),
            "lent_after": pool.lent_count,
            "episodes_left": len(graph.codevision_nodes.kernels),
        }
    finally:
        await pool.aclose()


async def cancelled(rounds: int, recycle: str) -> dict:
    slow = "import time\ntime.sleep(0.3)\n" + CODE
    pool = KernelPool(size=4, max_size=4, recycle=recycle)
    graph = create_codevision_graph(WidthModel(code=slow), pool=pool)
    lent_after = []
    try:
        pool.wait_ready(300)
        for k in range(rounds):
            task = asyncio.create_task(graph.abatch(inputs(64)))
            await asyncio.sleep(0.3 + 0.17 * k)
            while pool.lent_count == 0 and not task.done():
                await asyncio.sleep(0.05)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            for _ in range(200):
                if pool.lent_count == 0 and pool.waiting_count == 0:
                    break
                await asyncio.sleep(0.05)
            lent_after.append(pool.lent_count + len(graph.codevision_nodes.kernels))
        return {"rounds": rounds, "lent_after_each": lent_after}
    finally:
        await pool.aclose()


def rows_for(recycle: str, first: dict, bulk: dict, episodes: int) -> list[dict]:
    chunks = -(-episodes // 200)
    tag = f"[{recycle}]"
    return [
        {
            "metric": f"{tag} 64 concurrent on max_size 4: completed",
            "value": first["completed"],
            "target": "64",
            "ok": first["completed"] == 64,
        },
        {
            "metric": f"{tag} 64 concurrent: answers in input order",
            "value": first["in_order"],
            "target": "True",
            "ok": first["in_order"],
        },
        {
            "metric": f"{tag} 64 concurrent: peak kernels alive",
            "value": first["stats"]["peak_alive"],
            "target": "<= 4",
            "ok": first["stats"]["peak_alive"] <= 4,
        },
        {
            "metric": f"{tag} 64 concurrent: acquires that waited (back-pressure)",
            "value": first["stats"]["waits"],
            "target": "> 0",
            "ok": first["stats"]["waits"] > 0,
        },
        {"metric": f"{tag} 64 concurrent: seconds", "value": first["seconds"], "unit": "s"},
        {
            "metric": f"{tag} {episodes} episodes at concurrency 64: completed",
            "value": bulk["completed"],
            "target": str(episodes),
            "ok": bulk["completed"] == episodes,
        },
        {
            "metric": f"{tag} {episodes} episodes: chunks of 200 in input order",
            "value": bulk["chunks_in_order"],
            "target": str(chunks),
            "ok": bulk["chunks_in_order"] == chunks,
        },
        {
            "metric": f"{tag} {episodes} episodes: episodes/s",
            "value": episodes / bulk["seconds"],
            "unit": "1/s",
        },
        {
            "metric": f"{tag} {episodes} episodes: kernels started",
            "value": bulk["stats"]["started"],
        },
        {
            "metric": f"{tag} {episodes} episodes: peak kernels alive",
            "value": bulk["stats"]["peak_alive"],
            "target": "<= 8",
            "ok": bulk["stats"]["peak_alive"] <= 8,
        },
        {
            "metric": f"{tag} kernels still lent after the bulk run",
            "value": bulk["lent_after"] + bulk["episodes_left"],
            "target": "0",
            "ok": bulk["lent_after"] + bulk["episodes_left"] == 0,
        },
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--episodes", type=int, default=1000)
    parser.add_argument("--recycle", default="reset", help="reset, replace or both (comma list)")
    parser.add_argument("--cancel-rounds", type=int, default=5)
    args = parser.parse_args()
    modes = [m for m in args.recycle.split(",") if m]
    before = kernel_footprint()
    rows, extra = [], {"episodes": args.episodes, "footprint_before": before}
    for recycle in modes:
        first = asyncio.run(concurrent_64(recycle))
        bulk = asyncio.run(many(args.episodes, recycle))
        rows += rows_for(recycle, first, bulk, args.episodes)
        extra[f"pool_stats_64_{recycle}"] = first["stats"]
        extra[f"pool_stats_bulk_{recycle}"] = bulk["stats"]
    cancel = asyncio.run(cancelled(args.cancel_rounds, modes[0]))
    rows.append(
        {
            "metric": f"cancelled batches ({cancel['rounds']}): kernels lent after each",
            "value": str(cancel["lent_after_each"]),
            "target": "all 0",
            "ok": not any(cancel["lent_after_each"]),
        }
    )
    after = settled_footprint(before, timeout=30)
    left = leaked(before, after)
    for key in after:
        rows.append(
            {
                "metric": f"leaked after close: {key}",
                "value": after[key] - before[key],
                "target": "0",
                "ok": key not in left,
            }
        )
    extra["footprint_after"] = after
    path = write_report("concurrency", "Concurrency: episodes through the graph", rows, extra)
    print(path.read_text())


if __name__ == "__main__":
    main()
