"""A real ``jupyter kernelgateway`` (or Enterprise Gateway) subprocess on 127.0.0.1.

Each gateway gets its own port, token and Jupyter folders (runtime, data, config, TMPDIR)
under a folder the caller owns; :func:`stop_gateway` ends only the process it started.
Enterprise Gateway runs from its own environment (its release pins jupyter-client 6), made
by ``scripts/install-system-deps.sh`` at :data:`ENTERPRISE_GATEWAY_VENV`.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

__all__ = [
    "ENTERPRISE_GATEWAY_VENV",
    "TOKEN",
    "free_port",
    "start_enterprise_gateway",
    "start_gateway",
    "stop_gateway",
]

TOKEN = "test-token-3141"
ENTERPRISE_GATEWAY_VENV = Path(
    os.environ.get(
        "CODEVISION_EG_VENV",
        Path.home() / ".cache" / "langchain-codevision" / "enterprise-gateway",
    )
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_gateway(root: Path, port: int, *extra: str) -> subprocess.Popen:
    """A kernel gateway on 127.0.0.1:port with its own Jupyter folders under ``root``."""
    command = [
        sys.executable,
        "-m",
        "kernel_gateway",
        "--KernelGatewayApp.ip=127.0.0.1",
        f"--KernelGatewayApp.port={port}",
        "--KernelGatewayApp.port_retries=0",
        f"--KernelGatewayApp.auth_token={TOKEN}",
        "--JupyterWebsocketPersonality.list_kernels=True",
        *extra,
    ]
    return _run(root, port, command)


def start_enterprise_gateway(root: Path, port: int, *extra: str) -> subprocess.Popen:
    """Jupyter Enterprise Gateway on 127.0.0.1:port, from its own environment."""
    program = ENTERPRISE_GATEWAY_VENV / "bin" / "jupyter-enterprisegateway"
    if not program.exists():
        raise RuntimeError(
            f"no Enterprise Gateway at {program}: run `bash scripts/install-system-deps.sh` "
            "(or set CODEVISION_EG_VENV to an environment with jupyter_enterprise_gateway)"
        )
    command = [
        str(program),
        "--ip=127.0.0.1",
        f"--port={port}",
        "--port_retries=0",
        f"--EnterpriseGatewayConfigMixin.auth_token={TOKEN}",
        "--EnterpriseGatewayConfigMixin.list_kernels=True",
        *extra,
    ]
    return _run(root, port, command)


def _run(root: Path, port: int, command: list[str]) -> subprocess.Popen:
    env = dict(os.environ)
    for name in ("runtime", "data", "config", "tmp"):
        (root / name).mkdir(parents=True, exist_ok=True)
    env.update(
        JUPYTER_RUNTIME_DIR=str(root / "runtime"),
        JUPYTER_DATA_DIR=str(root / "data"),
        JUPYTER_CONFIG_DIR=str(root / "config"),
        TMPDIR=str(root / "tmp"),
    )
    log = open(root / "gateway.log", "wb")  # noqa: SIM115 (closed with the process)
    process = subprocess.Popen(
        command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    process.log = log  # type: ignore[attr-defined]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError((root / "gateway.log").read_text()[-2000:])
        try:
            response = httpx.get(
                f"http://127.0.0.1:{port}/api/kernelspecs",
                headers={"Authorization": f"token {TOKEN}"},
                timeout=2,
            )
            if response.status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    stop_gateway(process)
    raise RuntimeError("the kernel gateway did not come up")


def stop_gateway(process: subprocess.Popen) -> None:
    """SIGTERM the gateway we started (it shuts its kernels down), SIGKILL if it hangs."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
    process.log.close()  # type: ignore[attr-defined]
