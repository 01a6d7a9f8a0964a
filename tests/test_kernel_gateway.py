"""Remote kernels through a real ``jupyter kernelgateway`` on 127.0.0.1.

The gateway runs as a subprocess of this module (its own port, token and Jupyter folders
under pytest's temporary directory); sessions, pools and graph episodes go through it.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
from PIL import Image, ImageDraw

from langchain_codevision import create_codevision_graph
from langchain_codevision.images import decode_trajectory_image
from langchain_codevision.kernel import (
    GatewayKernelSession,
    KernelLimits,
    KernelPool,
    KernelStartError,
)
from langchain_codevision.kernel._loop import run_sync
from langchain_codevision.kernel.gateway_kernel import KERNEL_NAME, install_kernelspec
from langchain_codevision.kernel.provider import make_session
from tests.gateway_helpers import TOKEN, free_port, start_gateway, stop_gateway
from tests.scripted_model import ScriptedChatModel, text_call

NODELAY = "langchain_codevision.kernel.gateway_ws.NoDelayWebsocketConnection"
LIMITS = KernelLimits(timeout=15, interrupt_grace=3, startup_timeout=60)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory) -> Iterator[str]:
    """The ``gateway+http://...`` kernel spec of a running gateway."""
    port = free_port()
    process = start_gateway(tmp_path_factory.mktemp("gateway"), port)
    yield f"gateway+http://127.0.0.1:{port}"
    stop_gateway(process)


@pytest.fixture(scope="module")
def remote(gateway) -> Iterator[GatewayKernelSession]:
    session = make_session(gateway, token=TOKEN, limits=LIMITS)
    assert isinstance(session, GatewayKernelSession)
    session.start()
    yield session
    session.close()


def kernel_ids(spec: str) -> set[str]:
    url = spec.removeprefix("gateway+")
    response = httpx.get(f"{url}/api/kernels", headers={"Authorization": f"token {TOKEN}"})
    return {model["id"] for model in response.json()}


def noise(width: int, height: int, mode: str = "RGB", seed: int = 0) -> Image.Image:
    bands = {"L": (), "RGB": (3,), "RGBA": (4,)}[mode]
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, *bands), dtype=np.uint8))


def test_execute_keeps_state_and_reports_like_a_local_kernel(remote) -> None:
    first = remote.execute("x = 6 * 7\nprint(x)")
    assert first.ok and first.stdout == "42\n"
    second = remote.execute("x + 1")
    assert second.ok and second.text == "43"
    failed = remote.execute("1 / 0")
    assert failed.error is not None and failed.error.name == "ZeroDivisionError"
    assert "codevision_kernel_runtime" not in failed.error.traceback
    assert remote.execute("print(x)").stdout == "42\n"  # an error keeps the state


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L"])
def test_images_travel_as_raw_pixels_both_ways(remote, mode) -> None:
    image = noise(301, 203, mode, seed=len(mode))
    before = dict(remote.stats)
    remote.put_image(0, image)
    assert remote.stats["pixel_bytes_in"] - before[
        "pixel_bytes_in"
    ] == image.width * image.height * len(mode)
    out = remote.execute(
        "result = image.rotate(90, expand=True)", image=0, collect=("result",), register_as=1
    )
    assert out.ok, out.error
    (result,) = out.result_images
    assert result.image.mode == mode
    assert np.array_equal(np.asarray(result.image), np.asarray(image.rotate(90, expand=True)))
    # the registered result is usable by the next cell, and display() images come back too
    shown = remote.execute("display(image.crop((0, 0, 7, 5)))", image=1)
    assert shown.ok and [img.size for img in shown.images] == [(7, 5)]
    assert np.array_equal(np.asarray(shown.images[0].image), np.asarray(result.image)[:5, :7])


def test_images_larger_than_one_message_arrive_whole(remote) -> None:
    image = noise(2100, 1500, "RGB", seed=7)  # 9.45 MB: two pixel messages
    remote.put_image("big", image)
    before = remote.stats["pixel_bytes_out"]
    out = remote.execute("result = ImageOps.mirror(image)", image="big", collect=("result",))
    assert out.ok, out.error
    assert remote.stats["pixel_bytes_out"] - before >= 2100 * 1500 * 3
    assert np.array_equal(np.asarray(out.result_images[0].image), np.asarray(image)[:, ::-1])


def test_binding_and_errors_follow_the_runtime_contract(remote) -> None:
    remote.put_image("page", noise(40, 30))
    missing = remote.execute("result = image", image="nope", collect=("result",))
    assert missing.error is not None and "image_index 'nope' does not exist" in missing.error.value
    array = remote.execute(
        "result = np.zeros((20, 10), dtype=np.float32) + 0.5", image="page", collect=("result",)
    )
    assert array.result_images[0].converted_from == "ndarray"
    assert array.result_images[0].size == (10, 20)


def test_output_and_result_limits_apply(gateway) -> None:
    limits = KernelLimits(timeout=15, max_output_chars=1000, max_result_pixels=10_000)
    with GatewayKernelSession(gateway, token=TOKEN, limits=limits) as session:
        printed = session.execute("print('x' * 100_000)")
        assert printed.truncated and len(printed.stdout) < 1200
        large = session.execute("result = Image.new('RGB', (200, 200))", collect=("result",))
        assert large.error is not None and "at most 10000" in str(large.error)
        assert large.result_images == []


def test_time_limit_interrupts_and_keeps_variables(remote) -> None:
    remote.execute("kept = 'yes'")
    out = remote.execute("while True:\n    pass", timeout=1.5)
    assert out.timed_out and out.error.name == "Timeout" and not out.restarted
    assert remote.execute("print(kept)").stdout == "yes\n"


def test_a_cell_that_ignores_interrupts_gets_a_restart(gateway) -> None:
    limits = KernelLimits(timeout=15, interrupt_grace=1)
    with GatewayKernelSession(gateway, token=TOKEN, limits=limits) as session:
        session.put_image(0, noise(16, 12))
        code = "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True: pass"
        started = time.monotonic()
        out = session.execute(code, timeout=1)
        assert out.timed_out and out.restarted and "restarted" in out.error.value
        assert time.monotonic() - started < 30
        after = session.execute("result = image", image=0, collect=("result",))
        assert after.ok and after.result_images[0].size == (16, 12)  # images restored


class SlowSubscription(GatewayKernelSession):
    """After each connect, IOPub is lost for a second from its first message (a slow joiner)."""

    dropped = 0
    live_from: float | None = None

    def _on_message(self, channel, msg):
        if channel == "iopub":
            now = time.monotonic()
            if self.live_from is None:
                self.live_from = now + 1.0
            if now < self.live_from:
                self.dropped += 1
                return True  # lost before the subscription was live
        return super()._on_message(channel, msg)

    async def _connect(self) -> None:
        self.live_from = None
        await super()._connect()


def test_a_restarted_kernel_is_used_only_once_its_iopub_is_live(gateway) -> None:
    limits = KernelLimits(timeout=15, interrupt_grace=1, startup_timeout=20)
    with SlowSubscription(gateway, token=TOKEN, limits=limits) as session:
        session.dropped = 0
        session.put_image(0, noise(12, 9))  # its reply arrives on IOPub
        code = "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True: pass"
        assert session.execute(code, timeout=1).restarted
        after = session.execute("result = image", image=0, collect=("result",))
        assert after.ok and after.result_images[0].size == (12, 9)
        assert session.dropped > 0  # the slow subscription really lost messages


def test_a_dead_kernel_is_reported_and_replaced(gateway) -> None:
    with GatewayKernelSession(gateway, token=TOKEN, limits=LIMITS) as session:
        session.put_image(0, noise(8, 8))
        out = session.execute("import os\nos._exit(3)")
        assert out.error is not None and out.error.name == "KernelDied" and out.restarted
        after = session.execute("result = image", image=0, collect=("result",))
        assert after.ok and after.result_images[0].size == (8, 8)


def test_async_twins_run_side_by_side(gateway) -> None:
    async def episode(tag: int) -> tuple[str, tuple[int, int]]:
        async with GatewayKernelSession(gateway, token=TOKEN, limits=LIMITS) as session:
            await session.aput_image(0, noise(20 + tag, 10))
            out = await session.aexecute(
                f"tag = {tag}\nresult = image.resize((image.width * 2, image.height))",
                image=0,
                collect=("result",),
            )
            printed = await session.aexecute("print(tag)")
            return printed.stdout, out.result_images[0].size

    async def both() -> list[tuple[str, tuple[int, int]]]:
        return await asyncio.wait_for(asyncio.gather(episode(1), episode(2)), 120)

    results = asyncio.run(both())
    assert results == [("1\n", (42, 10)), ("2\n", (44, 10))]


def test_a_dropped_websocket_reconnects_with_the_state(remote) -> None:
    remote.execute("survivor = 123")
    run_sync(remote.channels.drop())
    out = remote.execute("print(survivor)")
    assert out.ok and out.stdout == "123\n"
    assert remote.channels.reconnects >= 1


def test_a_cell_running_while_the_websocket_drops_still_reports(remote) -> None:
    async def cell_with_a_drop() -> object:
        running = asyncio.ensure_future(
            remote.aexecute("import time\ntime.sleep(1.0)\nprint('late')\nresult = 7")
        )
        await asyncio.sleep(0.4)
        await remote.channels.drop()
        return await asyncio.wait_for(running, 30)

    reconnects = remote.channels.reconnects
    out = run_sync(cell_with_a_drop())
    assert out.ok and out.stdout == "late\n"  # replayed by the gateway after the reconnect
    assert remote.channels.reconnects == reconnects + 1


def test_a_websocket_lost_past_its_retries_is_reopened_without_a_restart(gateway) -> None:
    with GatewayKernelSession(gateway, token=TOKEN, limits=LIMITS, reconnect_timeout=0) as s:
        s.execute("kept = 'still here'")
        lost = s.channels
        run_sync(lost.drop())
        deadline = time.monotonic() + 10
        while lost.usable and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not lost.usable  # no retries allowed: this websocket is gone for good
        out = s.execute("print(kept)")
        assert out.ok and out.stdout == "still here\n" and not out.restarted
        assert s.channels is not lost and s.restarts == 0


def test_wrong_token_is_a_clear_start_error(gateway) -> None:
    session = GatewayKernelSession(gateway, token="wrong", limits=LIMITS)
    with pytest.raises(KernelStartError, match="refused the token"):
        session.start()
    session.close()


def test_token_from_the_environment(gateway, monkeypatch) -> None:
    monkeypatch.setenv("CODEVISION_GATEWAY_TOKEN", TOKEN)
    with make_session(gateway, limits=LIMITS) as session:
        assert session.execute("print('env token')").stdout == "env token\n"


def test_gateway_down_is_a_clear_start_error() -> None:
    session = make_session(f"gateway+http://127.0.0.1:{free_port()}", token=TOKEN)
    started = time.monotonic()
    with pytest.raises(KernelStartError, match="no Kernel Gateway answers"):
        session.start()
    assert time.monotonic() - started < 15
    session.close()


def test_bad_specs_are_refused() -> None:
    with pytest.raises(ValueError, match="gateway\\+http"):
        make_session("gateway+ftp://host")
    with pytest.raises(ValueError, match="unknown kernel"):
        make_session("remote://host")


def test_pool_of_two_remote_kernels(gateway) -> None:
    before = kernel_ids(gateway)
    with KernelPool(size=2, kernel=gateway, token=TOKEN, limits=LIMITS) as pool:
        pool.wait_ready(120)
        first, second = pool.acquire(60), pool.acquire(60)
        try:
            assert first.kernel_id != second.kernel_id
            first.execute("who = 'first'")
            second.execute("who = 'second'")
            assert first.execute("print(who)").stdout == "first\n"
            assert second.execute("print(who)").stdout == "second\n"
        finally:
            pool.release(first)
            pool.release(second)
    assert kernel_ids(gateway) == before  # every remote kernel was deleted


def page() -> Image.Image:
    image = Image.new("RGB", (400, 240), "white")
    ImageDraw.Draw(image).text((20, 20), "HELLO 42", fill="black")
    return image


def test_graph_episode_through_the_gateway(gateway) -> None:
    rotated = page().rotate(90, expand=True)
    model = ScriptedChatModel(
        replies=[
            text_call("half = 100\nresult = image.rotate(270, expand=True)"),
            text_call("result = image.crop((0, 0, 2 * half, half))", image_index=1),
            "<think>done</think><answer>HELLO 42</answer>",
        ],
        dialect="text",
    )
    with KernelPool(size=1, kernel=gateway, token=TOKEN, limits=LIMITS) as pool:
        graph = create_codevision_graph(model, pool=pool)
        out = graph.invoke({"image": rotated, "question": "What does the page say?"})
    assert out["answer"] == "HELLO 42" and out["stop_reason"] == "answer"
    assert [step["ok"] for step in out["steps"]] == [True, True]
    upright = np.asarray(decode_trajectory_image(out["images"][1]))
    assert np.array_equal(upright, np.asarray(page()))
    assert np.array_equal(
        np.asarray(decode_trajectory_image(out["images"][2])), upright[:100, :200]
    )


def test_graph_builds_its_pool_from_a_kernel_spec(gateway, monkeypatch) -> None:
    monkeypatch.setenv("CODEVISION_GATEWAY_TOKEN", TOKEN)
    model = ScriptedChatModel(
        replies=[text_call("result = ImageOps.mirror(image)"), "<answer>ok</answer>"],
        dialect="text",
    )
    graph = create_codevision_graph(model, kernel=gateway)
    pool = graph.codevision_nodes.kernels.pool
    try:
        assert pool.kernel == gateway
        out = graph.invoke({"image": page(), "question": "q"})
        assert out["answer"] == "ok" and out["steps"][0]["ok"]
        mirrored = np.asarray(decode_trajectory_image(out["images"][1]))
        assert np.array_equal(mirrored, np.asarray(page())[:, ::-1])
    finally:
        pool.close()


@pytest.fixture(scope="module")
def jailed_gateway(tmp_path_factory) -> Iterator[str]:
    """A gateway set up as documented: jailed kernels, websockets without Nagle."""
    root = tmp_path_factory.mktemp("jailed-gateway")
    spec = install_kernelspec(root / "data", limits={"timeout": 30, "memory_bytes": 2 * 1024**3})
    assert spec.name == KERNEL_NAME
    port = free_port()
    process = start_gateway(
        root,
        port,
        f"--KernelGatewayApp.default_kernel_name={KERNEL_NAME}",
        f"--KernelGatewayApp.kernel_websocket_connection_class={NODELAY}",
        "--KernelGatewayApp.max_kernels=2",
    )
    yield f"gateway+http://127.0.0.1:{port}"
    stop_gateway(process)
    assert not list((root / "tmp").glob("codevision-*"))  # the launchers left nothing behind


def test_a_jailed_remote_kernel_reports_its_layers_and_sees_no_host_files(
    jailed_gateway, tmp_path
) -> None:
    secret = tmp_path / "host-secret.txt"
    secret.write_text("host secret")
    limits = KernelLimits(timeout=15, interrupt_grace=10, startup_timeout=60)
    with GatewayKernelSession(jailed_gateway, token=TOKEN, limits=limits, isolation="strict") as s:
        layers = s.isolation.split("+")
        for layer in ("uid", "user", "pid", "mount", "net", "ipc", "cgroup"):
            assert layer in layers, s.isolation
        assert any(layer.startswith("seccomp") for layer in layers), s.isolation
        probe = s.execute(
            f"import os\nprint(os.getuid())\ntry:\n    open({str(secret)!r}).read()\n"
            "    print('READ')\nexcept OSError as exc:\n    print(type(exc).__name__)"
        )
        assert probe.ok and probe.isolation == s.isolation
        assert probe.stdout.split() == ["65534", "FileNotFoundError"]
        assert s.execute("get_ipython().__class__.__name__").text == "'Shell'"  # the lean one
        image = noise(64, 48)
        s.put_image(0, image)
        out = s.execute("result = ImageOps.flip(image)", image=0, collect=("result",))
        assert np.array_equal(np.asarray(out.result_images[0].image), np.asarray(image)[::-1])
        stuck = s.execute("while True:\n    pass", timeout=1.5)
        assert stuck.timed_out and not stuck.restarted  # interrupted by message, in the jail


def test_a_jailed_remote_kernel_is_restarted_past_its_time_limit(jailed_gateway) -> None:
    limits = KernelLimits(timeout=15, interrupt_grace=1, startup_timeout=60)
    with GatewayKernelSession(jailed_gateway, token=TOKEN, limits=limits) as session:
        session.put_image(0, noise(10, 10))
        code = "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True: pass"
        out = session.execute(code, timeout=1)
        assert out.timed_out and out.restarted
        after = session.execute("result = image", image=0, collect=("result",))
        assert after.ok and after.result_images[0].size == (10, 10)
        assert "net" in after.isolation.split("+")


def test_the_gateways_kernel_limit_is_a_clear_start_error(jailed_gateway) -> None:
    kernels = [
        GatewayKernelSession(jailed_gateway, token=TOKEN, limits=LIMITS, kernel_name="python3")
        for _ in range(3)
    ]
    try:
        kernels[0].start()
        kernels[1].start()
        with pytest.raises(KernelStartError, match="maximum number of kernels"):
            kernels[2].start()
    finally:
        for kernel in kernels:
            kernel.close()


def test_the_kernelspec_installer_writes_a_runnable_spec(tmp_path) -> None:
    module = "langchain_codevision.kernel.gateway_kernel"
    limits = '{"memory_bytes": 1073741824, "max_processes": 32}'
    command = [sys.executable, "-m", module, "install", "--prefix", str(tmp_path)]
    done = subprocess.run([*command, "--limits", limits], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    spec = json.loads((tmp_path / "kernels" / KERNEL_NAME / "kernel.json").read_text())
    assert spec["argv"][1:] == ["-m", module, "-f", "{connection_file}"]
    assert spec["interrupt_mode"] == "message"
    assert json.loads(spec["env"]["CODEVISION_KERNEL_LIMITS"])["max_processes"] == 32
    refused = subprocess.run([*command, "--limits", '{"bogus": 1}'], capture_output=True, text=True)
    assert refused.returncode == 2 and "bogus" in refused.stderr
