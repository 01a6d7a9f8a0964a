"""The command line, the offline default model and the langgraph.json entry point."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from langchain_codevision.cli import main
from langchain_codevision.demo import render_page, run_demo
from langchain_codevision.model_spec import load_chat_model

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("rotation", [0, 90, 180, 270])
def test_offline_model_restores_every_rotation(rotation: int) -> None:
    report = run_demo(rotation=rotation)
    assert report["answer"] == f"rotate_{rotation}"
    assert report["restored"] is True
    assert len(report["steps"]) == (1 if rotation == 0 else 2)


def test_demo_command_succeeds_and_saves_images(tmp_path, capsys) -> None:
    assert main(["demo", "--rotation", "180", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "Restored pixel for pixel: True" in printed and "VERDICT rotate_180" in printed
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "image-0.png",
        "image-1.png",
        "image-2.png",
    ]


def test_run_command_prints_json(tmp_path, capsys) -> None:
    page, _ = render_page(seed=3)
    path = tmp_path / "page.png"
    page.rotate(270, expand=True).save(path)
    assert main(["run", str(path), "How is it rotated?", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["answer"] == "rotate_270" and report["stop_reason"] == "answer"


def test_run_command_takes_a_profile(tmp_path, capsys) -> None:
    page, _ = render_page(seed=3)
    path = tmp_path / "page.png"
    page.rotate(90, expand=True).save(path)
    assert main(["run", str(path), "How is it rotated?", "--profile", "release", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    # the release's replies never show printed output, so the offline policy cannot read
    # its measurement back: proof that the release's texts are in force
    assert report["answer"] == "unknown orientation"
    assert [step["ok"] for step in report["steps"]] == [True]
    with pytest.raises(SystemExit):
        main(["run", str(path), "q", "--profile", "nonsense"])


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


def test_console_script_entry_point() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "langchain_codevision.cli", "demo", "--rotation", "270"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "Answer: rotate_270" in done.stdout


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
        server.terminate()
        server.wait(timeout=30)
        log.close()
    assert out["answer"] == "rotate_180" and out["stop_reason"] == "answer"
    assert "Blocking call" not in (tmp_path / "server.log").read_text(errors="replace")
