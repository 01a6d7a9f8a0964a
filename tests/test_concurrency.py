"""Many episodes at once through the graph and the eval runner, on a bounded kernel pool.

The model is scripted; the code in its replies runs for real in jailed kernels. Each
episode's answer is the width its own kernel printed, so answers prove which kernel served
which input.
"""

from __future__ import annotations

import asyncio

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from langchain_codevision import create_codevision_graph
from langchain_codevision.benchmarks.footprint import kernel_footprint, leaked, settled_footprint
from langchain_codevision.eval.datasets import EvalItem
from langchain_codevision.eval.runner import aevaluate
from langchain_codevision.kernel import KernelPool
from tests.concurrency_helpers import episode_inputs, expected_answer, width_model

pytestmark = pytest.mark.timeout(600)


@pytest.fixture
def baseline() -> dict[str, int]:
    return kernel_footprint()


async def test_64_concurrent_episodes_on_4_kernels_complete_in_order(baseline) -> None:
    pool = KernelPool(size=4, max_size=4, recycle="reset")
    graph = create_codevision_graph(width_model(), pool=pool)
    try:
        outs = await graph.abatch(episode_inputs(64))
        assert [o["answer"] for o in outs] == [expected_answer(k) for k in range(64)]
        assert all(o["stop_reason"] == "answer" and o["steps"][0]["ok"] for o in outs)
        assert pool.stats["peak_alive"] <= 4 and pool.stats["peak_lent"] == 4
        assert pool.stats["waits"] >= 16  # back-pressure: episodes queued for a kernel
        assert pool.lent_count == 0 and len(graph.codevision_nodes.kernels) == 0
        # 200 more in waves of 8, on the same pool: nothing grows with the count
        for wave in range(25):
            outs = await graph.abatch(episode_inputs(8, start=wave * 8), {"max_concurrency": 8})
            assert [o["answer"] for o in outs] == [expected_answer(wave * 8 + k) for k in range(8)]
        assert pool.stats["started"] <= 4 + pool.stats["discarded"]
        assert pool.lent_count == 0 and pool.stats["peak_alive"] <= 4
    finally:
        await pool.aclose()
    assert leaked(baseline, settled_footprint(baseline)) == {}


async def test_64_concurrent_episodes_with_a_fresh_kernel_each(baseline) -> None:
    pool = KernelPool(size=2, max_size=3)  # recycle="replace": a new jail per episode
    graph = create_codevision_graph(width_model(), pool=pool)
    try:
        outs = await graph.abatch(episode_inputs(64))
        assert [o["answer"] for o in outs] == [expected_answer(k) for k in range(64)]
        assert pool.stats["peak_alive"] <= 3 and pool.stats["discarded"] >= 64
    finally:
        await pool.aclose()
    assert leaked(baseline, settled_footprint(baseline)) == {}


async def test_cancelling_a_batch_returns_every_kernel(baseline) -> None:
    slow = "import time\ntime.sleep(0.3)\nprint(f'W={image.size[0]}')\nresult = image"
    pool = KernelPool(size=4, max_size=4, recycle="reset")
    graph = create_codevision_graph(width_model(slow), pool=pool)
    kernels = graph.codevision_nodes.kernels
    try:
        pool.wait_ready(timeout=120)
        for delay in (0.4, 0.9, 1.3):  # cancel at different points of the batch
            task = asyncio.create_task(graph.abatch(episode_inputs(64)))
            await asyncio.sleep(delay)
            while pool.lent_count == 0 and not task.done():  # cancel with kernels lent
                await asyncio.sleep(0.05)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            for _ in range(100):  # releases finish on the kernel loop
                if pool.lent_count == 0 and pool.waiting_count == 0:
                    break
                await asyncio.sleep(0.05)
            assert pool.lent_count == 0 and len(kernels) == 0 and pool.waiting_count == 0
        outs = await graph.abatch(episode_inputs(4))  # the pool still serves
        assert [o["answer"] for o in outs] == [expected_answer(k) for k in range(4)]
    finally:
        await pool.aclose()
    assert leaked(baseline, settled_footprint(baseline)) == {}


class PausingSaver(InMemorySaver):
    """A real checkpointer that holds the run while it saves the step after the first tool
    call: the run is then between nodes, where no node can release anything."""

    def __init__(self) -> None:
        super().__init__()
        self.paused = asyncio.Event()
        self.hold = asyncio.Event()

    async def aput(self, config, checkpoint, metadata, new_versions):  # type: ignore[override]
        if checkpoint["channel_values"].get("steps") and not self.paused.is_set():
            self.paused.set()
            await self.hold.wait()
        return await super().aput(config, checkpoint, metadata, new_versions)


async def cancel_and_see_the_kernel_back(run: asyncio.Task, pool: KernelPool, kernels) -> None:
    """Cancel a graph run held between nodes; its episode's kernel must come back soon."""
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    for _ in range(100):
        if pool.lent_count == 0 and len(kernels) == 0:
            break
        await asyncio.sleep(0.05)
    assert pool.lent_count == 0 and len(kernels) == 0


async def test_a_run_cancelled_between_nodes_gives_its_kernel_back(baseline) -> None:
    pool = KernelPool(size=1, max_size=1, recycle="reset")
    saver = PausingSaver()
    graph = create_codevision_graph(width_model(), pool=pool, checkpointer=saver)
    kernels = graph.codevision_nodes.kernels
    try:
        pool.wait_ready(timeout=120)
        config = {"configurable": {"thread_id": "t1"}}
        run = asyncio.create_task(graph.ainvoke(episode_inputs(1)[0], config, durability="sync"))
        await asyncio.wait_for(saver.paused.wait(), 60)  # the tool call ran, the run waits
        assert pool.lent_count == 1 and len(kernels) == 1
        await cancel_and_see_the_kernel_back(run, pool, kernels)  # not held for the idle sweep
        threads = [{"configurable": {"thread_id": f"again-{k}"}} for k in range(2)]
        outs = await graph.abatch(episode_inputs(2), threads)  # the one kernel serves again
        assert [o["answer"] for o in outs] == [expected_answer(k) for k in range(2)]
    finally:
        await pool.aclose()
    assert leaked(baseline, settled_footprint(baseline)) == {}


async def test_an_acquire_cancelled_while_waiting_takes_no_kernel() -> None:
    pool = KernelPool(size=1, max_size=1, recycle="reset")
    try:
        pool.wait_ready(timeout=120)
        held = await pool.aacquire()
        assert pool.stats["waits"] == 0
        waiter = asyncio.create_task(pool.aacquire())
        await asyncio.sleep(0.3)
        assert pool.waiting_count == 1 and pool.stats["waits"] == 1
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        await pool.arelease(held)
        again = await asyncio.wait_for(pool.aacquire(), 60)  # nobody took it meanwhile
        assert again is held and pool.lent_count == 1
        await pool.arelease(again)
    finally:
        await pool.aclose()


async def test_eval_runner_at_concurrency_8_on_a_bounded_pool(tmp_path, baseline) -> None:
    items = [
        EvalItem(id=f"w{k}", question=f"How wide? [{k}]", answers=[expected_answer(k)], images=[i])
        for k, i in enumerate(inp["image"] for inp in episode_inputs(24))
    ]
    pool = KernelPool(size=2, max_size=3, recycle="reset")
    try:
        run = await aevaluate(
            items,
            width_model(),
            tmp_path,
            arms=["tool"],
            concurrency=8,
            pool=pool,
            progress=False,
            write_outputs=False,
        )
        assert run.ran == 24 and [r["id"] for r in run.rows] == [f"w{k}" for k in range(24)]
        assert all(r["status"] == "ok" and r["correct"] for r in run.rows)
        assert pool.stats["peak_alive"] <= 3 and pool.stats["waits"] > 0
        assert pool.lent_count == 0
    finally:
        await pool.aclose()
    assert leaked(baseline, settled_footprint(baseline)) == {}


async def test_eval_runner_own_pool_is_bounded_by_concurrency(tmp_path, baseline) -> None:
    items = [
        EvalItem(id=f"w{k}", question=f"[{k}]", answers=[expected_answer(k)], images=[i])
        for k, i in enumerate(inp["image"] for inp in episode_inputs(6))
    ]
    run = await aevaluate(
        items,
        width_model(),
        tmp_path,
        arms=["tool"],
        concurrency=3,
        progress=False,
        write_outputs=False,
    )
    assert all(r["correct"] for r in run.rows) and run.ran == 6
    assert run.pool_stats["peak_alive"] <= 3
    assert leaked(baseline, settled_footprint(baseline)) == {}


async def test_a_resumed_run_cancelled_between_nodes_gives_its_kernel_back(baseline) -> None:
    """A run resumed from a checkpoint has no ``prepare``: the episode is read from the
    input of the nodes it does run."""
    pool = KernelPool(size=1, max_size=1, recycle="reset")
    saver = PausingSaver()
    saver.paused.set()  # the first run is not held
    graph = create_codevision_graph(width_model(), pool=pool, checkpointer=saver)
    kernels = graph.codevision_nodes.kernels
    try:
        pool.wait_ready(timeout=120)
        config = {"configurable": {"thread_id": "resumed"}}
        await graph.ainvoke(episode_inputs(1)[0], config, interrupt_after=["execute"])
        assert pool.lent_count == 1 and len(kernels) == 1  # kept for the episode's resumption
        saver.paused.clear()  # the resumed run is held at its next save, between nodes
        run = asyncio.create_task(graph.ainvoke(None, config, durability="sync"))
        await asyncio.wait_for(saver.paused.wait(), 60)
        await cancel_and_see_the_kernel_back(run, pool, kernels)
    finally:
        saver.hold.set()
        await pool.aclose()
    assert leaked(baseline, settled_footprint(baseline)) == {}
