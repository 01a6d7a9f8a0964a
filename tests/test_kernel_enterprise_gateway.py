"""Remote kernels through a real Jupyter Enterprise Gateway on 127.0.0.1.

Enterprise Gateway runs from its own environment (``scripts/install-system-deps.sh``
makes it: its release pins jupyter-client 6) as a subprocess of this module, with the
package's ``codevision-jailed`` kernelspec in its own Jupyter folders. The same client
(:class:`GatewayKernelSession`) that speaks to Kernel Gateway speaks to it.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from PIL import Image, ImageDraw

from langchain_codevision import create_codevision_graph
from langchain_codevision.kernel import GatewayKernelSession, KernelLimits, KernelStartError
from langchain_codevision.kernel.gateway_kernel import KERNEL_NAME, install_kernelspec
from tests.gateway_helpers import TOKEN, free_port, start_enterprise_gateway, stop_gateway
from tests.scripted_model import ScriptedChatModel, text_call

LIMITS = KernelLimits(timeout=15, interrupt_grace=5, startup_timeout=90)
USER = {"KERNEL_USERNAME": "codevision"}  # Enterprise Gateway refuses root by default


@pytest.fixture(scope="module")
def enterprise(tmp_path_factory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("enterprise-gateway")
    install_kernelspec(root / "data", limits={"timeout": 30, "memory_bytes": 2 * 1024**3})
    port = free_port()
    process = start_enterprise_gateway(
        root, port, f"--EnterpriseGatewayConfigMixin.default_kernel_name={KERNEL_NAME}"
    )
    yield f"http://127.0.0.1:{port}"
    stop_gateway(process)
    assert not list((root / "tmp").glob("codevision-*"))  # the launchers left nothing behind


def test_a_jailed_kernel_through_enterprise_gateway(enterprise, tmp_path) -> None:
    secret = tmp_path / "host-secret.txt"
    secret.write_text("host secret")
    with GatewayKernelSession(
        enterprise, token=TOKEN, env=USER, limits=LIMITS, isolation="strict"
    ) as kernel:
        layers = kernel.isolation.split("+")
        assert {"user", "pid", "mount", "net"} <= set(layers), kernel.isolation
        probe = kernel.execute(
            f"try:\n    open({str(secret)!r}).read()\n    print('READ')\n"
            "except OSError as exc:\n    print(type(exc).__name__)"
        )
        assert probe.stdout.split() == ["FileNotFoundError"]
        rng = np.random.default_rng(5)
        image = Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))
        kernel.put_image(0, image)
        out = kernel.execute("result = image.rotate(90, expand=True)", image=0, collect=("result",))
        assert out.ok, out.error
        assert np.array_equal(
            np.asarray(out.result_images[0].image), np.asarray(image.rotate(90, expand=True))
        )
        assert kernel.execute("kept = 41").ok and kernel.execute("kept + 1").text == "42"
        stuck = kernel.execute("while True:\n    pass", timeout=1.5)
        assert stuck.timed_out and not stuck.restarted  # interrupted by message, in the jail
        assert kernel.execute("kept").text == "41"


def test_root_is_refused_with_a_clear_error(enterprise, monkeypatch) -> None:
    monkeypatch.delenv("KERNEL_USERNAME", raising=False)
    session = GatewayKernelSession(enterprise, token=TOKEN, limits=LIMITS)
    with pytest.raises(KernelStartError, match="KERNEL_USERNAME"):
        session.start()
    session.close()


def test_graph_episode_through_enterprise_gateway(enterprise, monkeypatch) -> None:
    monkeypatch.setenv("CODEVISION_GATEWAY_TOKEN", TOKEN)
    monkeypatch.setenv("KERNEL_USERNAME", "codevision")  # taken from the environment
    page = Image.new("RGB", (240, 120), "white")
    ImageDraw.Draw(page).text((10, 50), "ENTERPRISE", fill="black")
    model = ScriptedChatModel(
        replies=[text_call("result = image.rotate(90, expand=True)"), "<answer>up</answer>"],
        dialect="text",
    )
    graph = create_codevision_graph(model, kernel=f"gateway+{enterprise}")
    try:
        out = graph.invoke({"image": page.rotate(-90, expand=True), "question": "q"})
    finally:
        graph.codevision_nodes.kernels.pool.close()
    assert out["answer"] == "up" and [s["ok"] for s in out["steps"]] == [True]
    assert out["images"][1].image.size == (240, 120)
