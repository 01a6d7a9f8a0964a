"""Benchmark remote kernels on a Jupyter Kernel Gateway against local kernels, same run.

Run: ``python bench/gateway.py [--repeat N]``. Writes ``bench/results/gateway.{json,md}``.

Three gateways run on 127.0.0.1 for the length of the run: a stock Kernel Gateway (python3
kernels), one set up as ``docs/remote-kernels.md`` says (``codevision-jailed`` kernels,
websockets without Nagle) and an Enterprise Gateway with the same jailed kernelspec (from
its own environment, see ``scripts/install-system-deps.sh``). Measured, interleaved so load
drift hits every arm alike:

* an empty ``execute`` round trip: local kernel (unjailed and jailed) versus remote, with
  and without the client's quick ACKs, on the stock and the tuned gateway;
* a 1000x1000 page step (register the page, rotate it, get the result back) remote versus
  local, with the bytes that crossed the websocket next to a PNG of the same pixels;
* kernel creation: REST create plus ready, remote (stock) versus local.
"""

from __future__ import annotations

import argparse
import io
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import write_report
from langchain_codevision.kernel import GatewayKernelSession, KernelLimits, KernelSession
from langchain_codevision.kernel.gateway_kernel import KERNEL_NAME, install_kernelspec
from tests.gateway_helpers import (
    TOKEN,
    free_port,
    start_enterprise_gateway,
    start_gateway,
    stop_gateway,
)

NODELAY = "langchain_codevision.kernel.gateway_ws.NoDelayWebsocketConnection"
LIMITS = KernelLimits(timeout=30, startup_timeout=120)


def page() -> Image.Image:
    image = Image.new("RGB", (1000, 1000), "white")
    draw = ImageDraw.Draw(image)
    for row in range(45):
        draw.text((30, 10 + row * 22), f"{row:02d} Invoice item {row * 7} total", fill="black")
    return image


def png_size(image: Image.Image) -> int:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=6)
    return len(buffer.getvalue())


def step(session: KernelSession, image: Image.Image) -> None:
    session.put_image(0, image)
    out = session.execute("result = image.rotate(90, expand=True)", image=0, collect=("result",))
    assert out.ok and out.result_images[0].size == (1000, 1000), out.error
    out.result_images[0].image.load()


def measure_blocks(
    fns: dict[str, Callable[[], Any]], repeat: int, blocks: int = 4
) -> dict[str, dict[str, float]]:
    """Time each function in back-to-back runs (as one worker calls its kernel), in
    alternating blocks so that load drift hits every arm alike."""
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for fn in fns.values():
        fn()
    for _ in range(blocks):
        for name, fn in fns.items():
            for _ in range(max(repeat // blocks, 1)):
                started = time.perf_counter()
                fn()
                samples[name].append((time.perf_counter() - started) * 1000)
    return {
        name: {
            "median_ms": statistics.median(xs),
            "p90_ms": sorted(xs)[int(0.9 * (len(xs) - 1))],
            "min_ms": min(xs),
        }
        for name, xs in samples.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=40)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="gateway-bench-"))
    stock_port, tuned_port = free_port(), free_port()
    install_kernelspec(root / "tuned" / "data")
    stock = start_gateway(root / "stock", stock_port)
    tuned = start_gateway(
        root / "tuned",
        tuned_port,
        f"--KernelGatewayApp.default_kernel_name={KERNEL_NAME}",
        f"--KernelGatewayApp.kernel_websocket_connection_class={NODELAY}",
    )
    enterprise_port = free_port()
    install_kernelspec(root / "enterprise" / "data")
    enterprise = start_enterprise_gateway(
        root / "enterprise",
        enterprise_port,
        f"--EnterpriseGatewayConfigMixin.default_kernel_name={KERNEL_NAME}",
    )
    stock_url, tuned_url = f"http://127.0.0.1:{stock_port}", f"http://127.0.0.1:{tuned_port}"
    enterprise_url = f"http://127.0.0.1:{enterprise_port}"
    sessions: dict[str, KernelSession] = {}
    try:
        sessions = {
            "local (unjailed)": KernelSession(limits=LIMITS, isolation="off"),
            "local (jailed)": KernelSession(limits=LIMITS),
            "stock gateway, plain client": GatewayKernelSession(
                stock_url, token=TOKEN, limits=LIMITS, quick_ack=False
            ),
            "stock gateway, quick ACK": GatewayKernelSession(stock_url, token=TOKEN, limits=LIMITS),
            "tuned gateway, plain client": GatewayKernelSession(
                tuned_url, token=TOKEN, limits=LIMITS, quick_ack=False, kernel_name="python3"
            ),
            "tuned gateway, quick ACK": GatewayKernelSession(
                tuned_url, token=TOKEN, limits=LIMITS, kernel_name="python3"
            ),
            "tuned gateway, jailed kernel": GatewayKernelSession(
                tuned_url, token=TOKEN, limits=LIMITS
            ),
            "Enterprise Gateway, jailed kernel": GatewayKernelSession(
                enterprise_url, token=TOKEN, limits=LIMITS, env={"KERNEL_USERNAME": "bench"}
            ),
        }
        for session in sessions.values():
            session.start()
        rows = []
        empty = measure_blocks(
            {name: (lambda s=s: s.execute("x = 1")) for name, s in sessions.items()},
            repeat=args.repeat,
        )
        base = empty["local (unjailed)"]["median_ms"]
        for name, stats in empty.items():
            rows.append(
                {
                    "metric": f"empty execute, {name} (median; p90 {stats['p90_ms']:.1f} ms)",
                    "value": stats["median_ms"],
                    "unit": "ms",
                }
            )
            rows.append({"metric": "  ratio vs local unjailed", "value": stats["median_ms"] / base})
        image = page()
        remote = sessions["stock gateway, quick ACK"]
        steps = measure_blocks(
            {
                "local (jailed)": lambda: step(sessions["local (jailed)"], image),
                "stock gateway": lambda: step(remote, image),
                "tuned gateway, jailed kernel": lambda: step(
                    sessions["tuned gateway, jailed kernel"], image
                ),
                "Enterprise Gateway, jailed kernel": lambda: step(
                    sessions["Enterprise Gateway, jailed kernel"], image
                ),
            },
            repeat=max(args.repeat // 4, 4),
        )
        for name, stats in steps.items():
            rows.append(
                {"metric": f"1000x1000 step, {name}", "value": stats["median_ms"], "unit": "ms"}
            )
        rows.append(
            {
                "metric": "  ratio remote/local, 1000x1000 step",
                "value": steps["stock gateway"]["median_ms"] / steps["local (jailed)"]["median_ms"],
            }
        )
        before = dict(remote.stats)
        step(remote, image)
        pixels_in = remote.stats["pixel_bytes_in"] - before["pixel_bytes_in"]
        pixels_out = remote.stats["pixel_bytes_out"] - before["pixel_bytes_out"]
        rows.append(
            {"metric": "pixel bytes to the kernel per step", "value": pixels_in, "unit": "B"}
        )
        rows.append(
            {"metric": "pixel bytes from the kernel per step", "value": pixels_out, "unit": "B"}
        )
        rows.append(
            {"metric": "PNG (level 6) of the same page", "value": png_size(image), "unit": "B"}
        )
        starts: dict[str, list[float]] = {"remote (stock gateway)": [], "local (jailed)": []}
        for _ in range(3):
            for name in starts:
                started = time.perf_counter()
                kernel = (
                    GatewayKernelSession(stock_url, token=TOKEN, limits=LIMITS)
                    if name.startswith("remote")
                    else KernelSession(limits=LIMITS)
                )
                kernel.start()
                starts[name].append((time.perf_counter() - started) * 1000)
                kernel.close()
        for name, samples in starts.items():
            rows.append(
                {
                    "metric": f"kernel start to ready, {name}",
                    "value": statistics.median(samples),
                    "unit": "ms",
                }
            )
        path = write_report(
            "gateway",
            "Remote kernels (Kernel Gateway and Enterprise Gateway on 127.0.0.1) vs local kernels",
            rows,
            {
                "repeat": args.repeat,
                "gateway": "jupyter-kernel-gateway 3.0.1, jupyter_enterprise_gateway 3.3.0",
                "command": " ".join(sys.argv),
            },
        )
        print(path.read_text())
    finally:
        for session in sessions.values():
            session.close()
        stop_gateway(stock)
        stop_gateway(tuned)
        stop_gateway(enterprise)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
