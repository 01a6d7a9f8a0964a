"""Model specs, ``codevision train`` settings and the langgraph.json entry point.

The command's user-facing behaviour (errors, demo, ask) is tested in ``test_cli.py``.
"""

from __future__ import annotations

import glob
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from langchain_codevision.cli import main
from langchain_codevision.demo import render_page
from langchain_codevision.model_spec import load_chat_model

ROOT = Path(__file__).resolve().parents[1]


def test_train_command_reads_a_config_and_flags(capsys) -> None:
    config = Path(__file__).parents[1] / "examples" / "training" / "sft_tiny.yaml"
    assert main(["train", "sft", "--config", str(config), "--print-config"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["lora"]["r"] == 4 and shown["freeze_vision"] is True


def test_model_specs(monkeypatch) -> None:
    assert type(load_chat_model("offline")).__name__ == "OfflineOCRModel"
    model = load_chat_model("openai:codevision-7b", base_url="http://127.0.0.1:9/v1")
    assert model.model_name == "codevision-7b" and "127.0.0.1" in str(model.openai_api_base)
    monkeypatch.setenv("CODEVISION_MODEL", "offline")
    assert type(load_chat_model()).__name__ == "OfflineOCRModel"
    with pytest.raises(ValueError, match="unknown model spec"):
        load_chat_model("anthropic:claude")
    with pytest.raises(ValueError, match="needs a model name"):
        load_chat_model("openai:")


def test_langgraph_json_points_at_a_working_factory() -> None:
    config = json.loads((ROOT / "graphs" / "langgraph.json").read_text())
    module_path, _, attr = config["graphs"]["codevision"].partition(":")
    namespace: dict = {}
    source = (ROOT / module_path).read_text()
    exec(compile(source, module_path, "exec"), namespace)
    graph = namespace[attr]({"configurable": {"model": "offline", "max_turns": 4}})
    assert set(graph.get_graph().nodes) >= {"prepare", "model", "execute", "reflect", "finish"}
    page, _ = render_page(seed=1)
    out = graph.invoke({"image": page.rotate(90, expand=True), "question": "rotation?"})
    assert out["answer"] == "rotate_90"
    release = namespace[attr]({"configurable": {"model": "offline", "profile": "release"}})
    assert release.codevision_nodes.profile.name == "release"


@pytest.mark.skipif(shutil.which("langgraph") is None, reason="langgraph-cli is not installed")
def test_langgraph_validate_accepts_the_config() -> None:
    done = subprocess.run(
        ["langgraph", "validate", "--config", "graphs/langgraph.json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_langgraph_dev_serves_the_graph(tmp_path) -> None:
    """`langgraph dev` (with its blocking-call detector) runs an episode end to end."""
    pytest.importorskip("langgraph_api")
    import socket
    import time

    from langgraph_sdk import get_sync_client

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    page, _ = render_page(seed=4)
    image = tmp_path / "rotated.png"
    page.rotate(180).save(image)
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(
        [
            "langgraph",
            "dev",
            "--config",
            str(ROOT / "graphs" / "langgraph.json"),
            "--port",
            str(port),
            "--host",
            "127.0.0.1",
            "--no-browser",
            "--no-reload",
        ],
        cwd=ROOT,  # langgraph.json paths are relative to the working directory
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        client = get_sync_client(url=f"http://127.0.0.1:{port}")
        for _ in range(240):
            assert server.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
            try:
                client.assistants.search()
                break
            except Exception:
                time.sleep(0.5)
        thread = client.threads.create()
        out = client.runs.wait(
            thread["thread_id"],
            "codevision",
            input={"image": str(image), "question": "How is this page rotated?"},
        )
    finally:
        server.terminate()  # SIGTERM, as a terminal or a supervisor stops the server
        server.wait(timeout=30)
        log.close()
    left = f"{tempfile.gettempdir()}/codevision-{server.pid}-*"
    deadline = time.monotonic() + 30
    while glob.glob(left) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not glob.glob(left), "the server's kernel folders outlived it"
    assert out["answer"] == "rotate_180" and out["stop_reason"] == "answer"
    assert "Blocking call" not in (tmp_path / "server.log").read_text(errors="replace")
