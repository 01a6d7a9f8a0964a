"""KernelPool: warm hand-out, recycling, discarding poisoned kernels."""

from __future__ import annotations

import asyncio

import pytest

from langchain_codevision.kernel import KernelPool


@pytest.fixture(scope="module")
def pool() -> KernelPool:
    with KernelPool(size=1, max_size=3) as warm:
        warm.wait_ready()
        yield warm


def test_state_does_not_leak_between_episodes(pool: KernelPool) -> None:
    with pool.session() as first:
        first.execute("leaked = 'episode one'")
        pid = first.pid
    pool.wait_ready()
    with pool.session() as second:
        assert second.pid != pid  # a fresh jailed process per episode (the default)
        assert second.execute("'leaked' in globals()").text == "False"


def test_a_warmed_pool_kernel_is_as_fresh_as_a_new_one(pool: KernelPool) -> None:
    from langchain_codevision.kernel import KernelSession

    probe = "print(sorted(globals()), sorted(__cv_runtime__.images))"
    with KernelSession() as plain:
        expected = plain.execute(probe)
    with pool.session() as lent:  # started and warmed up by the pool
        got = lent.execute(probe)
    assert got.ok and got.stdout == expected.stdout
    assert got.execution_count == expected.execution_count == 1


def test_reset_mode_keeps_the_process_and_clears_variables() -> None:
    with KernelPool(size=1, recycle="reset") as pool:
        with pool.session() as first:
            first.execute("leaked = 'episode one'")
            pid = first.pid
        pool.wait_ready()
        with pool.session() as second:
            assert second.pid == pid
            assert second.execute("'leaked' in globals()").text == "False"
        assert pool.stats["discarded"] == 0


@pytest.mark.parametrize("recycle", ["replace", "reset"])
def test_sequential_episodes_start_only_what_they_need(recycle: str) -> None:
    with KernelPool(size=2, recycle=recycle) as pool:
        pool.wait_ready()
        for index in range(12):
            with pool.session() as session:
                assert session.execute(f"print({index})").stdout == f"{index}\n"
        pool.wait_ready()
        started, discarded = pool.stats["started"], pool.stats["discarded"]
    if recycle == "reset":
        assert started == 2 and discarded == 0
    else:
        assert started == 2 + 12 and discarded == 12


def test_restarted_kernel_is_discarded(pool: KernelPool) -> None:
    with pool.session() as session:
        session.execute("import os\nos._exit(9)")
        assert session.restarts == 1
        dead_pid = session.pid
    pool.wait_ready()
    with pool.session() as fresh:
        assert fresh.pid != dead_pid and fresh.restarts == 0
    assert pool.stats["discarded"] >= 1


def test_replace_mode_never_reuses_a_process() -> None:
    with KernelPool(size=1, recycle="replace") as pool:
        with pool.session() as first:
            pid = first.pid
        pool.wait_ready()
        with pool.session() as second:
            assert second.pid != pid


def test_acquire_beyond_max_size_waits_and_times_out() -> None:
    with KernelPool(size=0, max_size=1, prestart=False) as pool:
        held = pool.acquire()
        with pytest.raises(TimeoutError, match="no kernel became available"):
            pool.acquire(timeout=0.5)
        pool.release(held)
        again = pool.acquire(timeout=30)
        assert again is not None
        pool.release(again)


def test_release_of_a_foreign_session_is_refused(pool: KernelPool) -> None:
    from langchain_codevision.kernel import KernelSession

    with pytest.raises(ValueError, match="not lent by this pool"):
        pool.release(KernelSession())


async def test_async_episodes_run_concurrently(pool: KernelPool) -> None:
    async def episode(i: int) -> str:
        async with pool.asession() as kernel:
            return (await kernel.aexecute(f"print({i} * 2)")).stdout.strip()

    assert await asyncio.gather(*(episode(i) for i in range(3))) == ["0", "2", "4"]


def test_closed_pool_refuses_and_stops_its_kernels() -> None:
    pool = KernelPool(size=1)
    pool.wait_ready()
    lent = pool.acquire()
    pool.close()
    assert not lent.started
    with pytest.raises(RuntimeError, match="closed"):
        pool.acquire()


def test_invalid_settings_are_rejected() -> None:
    with pytest.raises(ValueError, match="recycle"):
        KernelPool(size=1, recycle="never", prestart=False)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="size"):
        KernelPool(size=-1)


def test_a_kernel_that_cannot_start_fails_fast_without_spinning(tmp_path) -> None:
    from langchain_codevision.kernel import KernelStartError

    missing_python = str(tmp_path / "no-such-python")
    pool = KernelPool(size=1, python=missing_python, isolation="off")
    try:
        with pytest.raises(KernelStartError, match="no kernel could be started"):
            pool.acquire(timeout=60)
        attempts = pool.stats["failed_starts"]
        assert 1 <= attempts <= 3
        import time

        time.sleep(2.5)  # retries back off instead of spinning
        assert pool.stats["failed_starts"] <= attempts + 2
    finally:
        pool.close()
