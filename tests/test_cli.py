"""The ``codevision`` command as a user meets it: plain errors, exit codes, demo, ask --json.

The command runs as a real subprocess (``python -m langchain_codevision.cli``) with real
kernels; model servers are a real OpenAI-compatible HTTP stub on 127.0.0.1 replaying fixed
replies (the code in them runs for real in the sandbox).
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

from langchain_codevision.cli import main
from langchain_codevision.cli_errors import EXIT_CODES_HELP, ExitCode, explain
from langchain_codevision.demo import DEMO_ITEMS, is_correct, render_memo
from langchain_codevision.model_spec import ModelSpecError, load_chat_model
from langchain_codevision.protocol import TOOL_NAME, format_tool_call, get_profile
from tests.openai_stub import OpenAIStub

ROOT = Path(__file__).resolve().parents[1]
ERROR_LINE = re.compile(r"^codevision( \w+)?: error: .+; .+$")


def run_cli(
    *args: str, cwd: Path | None = None, timeout: float = 240
) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("CODEVISION_MODEL", None)
    return subprocess.run(
        [sys.executable, "-m", "langchain_codevision.cli", *args],
        cwd=cwd or ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def closed_port() -> int:
    """A 127.0.0.1 port nothing listens on (bound, then closed)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def assert_one_error_line(done: subprocess.CompletedProcess, code: int, *needles: str) -> str:
    lines = done.stderr.strip().splitlines()
    assert done.returncode == code, (done.returncode, done.stderr)
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert ERROR_LINE.match(lines[0]), lines[0]
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("images")
    good = folder / "memo.png"
    render_memo().rotate(90, expand=True).save(good)
    truncated = folder / "truncated.png"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    return {"good": good, "truncated": truncated, "missing": folder / "missing.png"}


def text_reply(code: str, description: str = "look") -> str:
    call = format_tool_call(TOOL_NAME, {"code": code, "description": description, "image_index": 0})
    return f"<think>I will run code.</think>\n{call}"


# ---------------------------------------------------------------------------- errors


def test_missing_image_is_one_line_exit_3(images) -> None:
    done = run_cli("ask", str(images["missing"]), "What does it say?")
    assert_one_error_line(done, ExitCode.INPUT, str(images["missing"]), "not found")


def test_truncated_png_is_one_line_exit_3(images) -> None:
    done = run_cli("ask", str(images["truncated"]), "What does it say?")
    assert_one_error_line(done, ExitCode.INPUT, str(images["truncated"]), "truncated")


def test_unknown_model_spec_is_one_line_exit_4(images) -> None:
    done = run_cli("ask", str(images["good"]), "q", "--model", "anthropic:claude")
    assert_one_error_line(done, ExitCode.MODEL, "'anthropic:claude'", "openai:MODEL")


def test_model_server_down_names_the_url_exit_4(images) -> None:
    url = f"http://127.0.0.1:{closed_port()}/v1"
    done = run_cli("ask", str(images["good"]), "q", "--model", "openai:m", "--base-url", url)
    line = assert_one_error_line(done, ExitCode.MODEL, url, "unreachable", "--base-url")
    assert "Connection refused" in line


def test_other_input_and_model_mistakes(images, tmp_path) -> None:
    missing_prompt = tmp_path / "prompt.txt"
    done = run_cli("ask", str(images["good"]), "q", "--system-prompt", str(missing_prompt))
    assert_one_error_line(done, ExitCode.INPUT, str(missing_prompt))
    done = run_cli("ask", str(images["good"]), "q", "--adapter", str(tmp_path))
    assert_one_error_line(done, ExitCode.MODEL, "--adapter", "local:PATH")
    done = run_cli("ask", str(images["good"]), "q", "--model", f"local:{tmp_path}")
    assert_one_error_line(done, ExitCode.MODEL, str(tmp_path), "config.json")


def test_usage_errors_are_one_line_exit_2(images) -> None:
    done = run_cli("ask", str(images["good"]))
    assert_one_error_line(done, ExitCode.USAGE, "question", "--help")
    done = run_cli("ask", str(images["good"]), "q", "--max-turns", "0")
    assert_one_error_line(done, ExitCode.USAGE, "--max-turns")


def test_debug_shows_the_traceback(images) -> None:
    done = run_cli("--debug", "ask", str(images["missing"]), "q")
    assert done.returncode == ExitCode.INPUT
    assert "Traceback (most recent call last)" in done.stderr
    assert "ImageInputError" in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("codevision: error: image file not found")
    after = run_cli("ask", str(images["missing"]), "q", "--debug")  # anywhere on the line
    assert "Traceback" in after.stderr and after.returncode == ExitCode.INPUT


def test_other_commands_report_plain_errors(tmp_path, capsys) -> None:
    missing = tmp_path / "nothing-here"
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("kind: sft\nmodel: [unclosed\n")
    cases = [
        (["train", "sft", "--config", str(bad_yaml)], ExitCode.INPUT, "not valid YAML"),
        (["eval", str(missing), "--out", str(tmp_path / "e")], ExitCode.INPUT, str(missing)),
        (["export", str(missing), "--out", str(tmp_path / "x")], ExitCode.INPUT, str(missing)),
        (["synth", "--out", str(tmp_path / "s"), "--mix", "{bad"], ExitCode.USAGE, "--mix"),
        (["train", "sft", "--config", str(missing)], ExitCode.INPUT, str(missing)),
    ]
    for argv, code, needle in cases:
        assert main(argv) == code, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and ERROR_LINE.match(err[0]) and needle in err[0], err
    assert not (tmp_path / "e").exists()  # nothing started for a dataset that is not there


def test_eval_with_the_server_down_exits_4(tmp_path, images, capsys) -> None:
    data = tmp_path / "items.jsonl"
    data.write_text(json.dumps({"image": str(images["good"]), "question": "q", "answer": "a"}))
    url = f"http://127.0.0.1:{closed_port()}/v1"
    argv = ["eval", str(data), "--model", "openai:m", "--base-url", url, "--out", str(tmp_path)]
    code = main([*argv, "--arms", "no_tool", "--retries", "0", "--no-progress"])
    assert code == ExitCode.MODEL
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and url in err[0] and "unreachable" in err[0], err


def test_keyboard_interrupt_exits_130_with_one_line(images) -> None:
    class Slow(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            time.sleep(20)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = ["ask", str(images["good"]), "q", "--model", "openai:m", "--base-url", url]
    proc = subprocess.Popen(
        [sys.executable, "-m", "langchain_codevision.cli", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(8)  # imports, image, kernel pool: then it waits on the slow server
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        server.shutdown()
        server.server_close()
    assert proc.returncode == ExitCode.INTERRUPTED, err
    assert err.strip().splitlines() == ["codevision: interrupted"]


def test_explain_maps_library_errors() -> None:
    from langchain_codevision.kernel import KernelStartError

    code, line = explain(KernelStartError("no bwrap"))
    assert code == ExitCode.KERNEL and "no bwrap" in line and "\n" not in line
    code, line = explain(FileNotFoundError(2, "No such file or directory", "/x/y.jsonl"))
    assert code == ExitCode.INPUT and "/x/y.jsonl" in line
    code, line = explain(RuntimeError("boom\nsecond line"))
    assert code == ExitCode.FAILED and line.startswith("RuntimeError: boom second line")


def test_help_lists_commands_examples_and_exit_codes() -> None:
    done = run_cli("--help")
    assert done.returncode == 0
    for word in ("demo", "ask", "eval", "synth", "export", "train", "bench", "examples:"):
        assert word in done.stdout
    assert EXIT_CODES_HELP in done.stdout
    assert not re.search(r"^\s+run\s", done.stdout, re.M)  # the old name is not listed
    assert run_cli("ask", "--help").stdout.count("codevision ask ") >= 3
    assert EXIT_CODES_HELP in run_cli("eval", "--help").stdout


def test_model_spec_errors_say_what_to_do(monkeypatch) -> None:
    with pytest.raises(ModelSpecError, match=r"unknown model spec 'gpt-4o'.*openai:MODEL"):
        load_chat_model("gpt-4o")
    with pytest.raises(ModelSpecError, match="applies to local:PATH"):
        load_chat_model("openai:m", base_url="http://127.0.0.1:9/v1", adapter="/a")
    with pytest.raises(ModelSpecError, match="not an http"):
        load_chat_model("openai:m", base_url="127.0.0.1:8000")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("CODEVISION_BASE_URL", raising=False)
    with pytest.raises(ModelSpecError, match="OPENAI_API_KEY"):
        load_chat_model("openai:gpt-4o")


# ---------------------------------------------------------------------------- ask


def test_ask_json_out_and_system_prompt(images, tmp_path) -> None:
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("You are a careful page reader.")
    code = "print('WIDTH', image.width)\nresult = image.rotate(270, expand=True)"
    out = tmp_path / "run"
    with OpenAIStub([text_reply(code, "turn the page"), "<answer>MEETING NOTES</answer>"]) as stub:
        done = run_cli(
            "ask", str(images["good"]), "What is the title?", "--model", "openai:stub",
            "--base-url", stub.base_url, "--system-prompt", str(prompt),
            "--out", str(out), "--json",
        )  # fmt: skip
        requests = list(stub.requests)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["answer"] == "MEETING NOTES" and report["stop_reason"] == "answer"
    (step,) = report["steps"]
    assert step["ok"] and step["error"] is None and step["description"] == "turn the page"
    assert step["code"] == code and "WIDTH 300" in step["stdout"]
    assert isinstance(step["duration_s"], float) and step["output_images"] == [1]
    assert set(report["timings"]) == {"model_s", "code_s", "other_s", "total_s"}
    assert report["timings"]["total_s"] >= report["timings"]["code_s"] > 0
    assert report["images_dir"] == str(out.resolve())
    files = sorted(p.name for p in out.iterdir())
    assert files == ["input.png", "step-1.png"]
    assert Image.open(out / "step-1.png").size == render_memo().size  # restored upright
    system = requests[0]["messages"][0]
    assert system["role"] == "system" and system["content"].startswith(prompt.read_text())
    assert "WIDTH 300" in json.dumps(requests[1]["messages"][-1])  # default profile shows it


def test_ask_release_profile_and_deprecated_run(images) -> None:
    with OpenAIStub([text_reply("print('SEEN')\nresult = image"), "<answer>ok</answer>"]) as stub:
        done = run_cli(
            "run", str(images["good"]), "q", "--model", "openai:stub",
            "--base-url", stub.base_url, "--profile", "release", "--steps",
        )  # fmt: skip
        requests = list(stub.requests)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "codevision: note: 'run' is now 'ask' (same options)"
    lines = done.stdout.splitlines()
    assert lines[0] == "question: q" and lines[-1] == "answer: ok"
    assert any(line.strip() == "| SEEN" for line in lines)  # the step's printed output
    assert any(line.startswith("time: model ") and "total" in line for line in lines)
    release = get_profile("release")
    assert requests[0]["messages"][0]["content"].startswith(release.system_prompt[:200])
    assert "SEEN" not in json.dumps(requests[1]["messages"][-1])  # the release hides prints


# ---------------------------------------------------------------------------- demo


def test_demo_writes_distinct_images_and_prints_each_question(tmp_path) -> None:
    chosen = [item for item in DEMO_ITEMS if item.name == "memo-transform"]  # OCR is slow
    args = ["demo"]
    for item in chosen:
        args += ["--only", item.name]
    done = run_cli(*args, cwd=tmp_path, timeout=280)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    for item in chosen:
        assert f"question: {item.question}" in out
    assert out.count("  answer: ") == 1 and out.count("  time: model ") == 1
    assert re.search(r"model \d+\.\d\d s, code \d+\.\d\d s, .* total \d+\.\d\d s", out)
    assert re.search(r"^answered [01]/1 correctly$", out, re.M)
    folder = Path(re.search(r"^images written to (.+)$", out, re.M).group(1))
    assert folder.parent == (tmp_path / "codevision-demo").resolve()  # a new folder here
    assert re.fullmatch(r"\d{8}-\d{6}(-\d+)?", folder.name)
    listed = re.findall(r"^  images: (.+)/ \(([^;)]+)", out, re.M)
    assert len(listed) == 1
    for number, (item, (where, names)) in enumerate(zip(chosen, listed, strict=True), 1):
        assert Path(where) == folder / f"{number}-{item.name}"
        files = sorted(Path(where).iterdir())
        assert sorted(names.split(", ")) == [path.name for path in files]
        assert "input.png" in names
        digests = [hashlib.sha256(path.read_bytes()).hexdigest() for path in files]
        assert len(set(digests)) == len(digests), files  # no two files hold the same image
        pixels = {Image.open(path).convert("RGB").tobytes() for path in files}
        assert len(pixels) == len(files)


def test_demo_items_score_with_the_package_rules() -> None:
    names = [item.name for item in DEMO_ITEMS]
    assert len(names) == len(set(names)) >= 5
    assert {"rotate_90", "flip_horizontal", "rotate_270"} <= {i.transform for i in DEMO_ITEMS}
    for item in DEMO_ITEMS:
        image = item.transformed()
        assert image.size != (0, 0) and item.question.strip()
        assert is_correct(item.answers[0], item.answers)
        assert not is_correct("something else entirely", item.answers)
        assert not is_correct(None, item.answers)


def test_episode_images_are_written_once_each(tmp_path) -> None:
    from langchain_codevision.episode_output import save_episode_images
    from langchain_codevision.images import trajectory_image

    page = render_memo()
    items = [
        trajectory_image(page, 0),
        trajectory_image(page.convert("RGB").copy(), 1, origin="tool", step=1),  # unchanged
        trajectory_image(page.rotate(90, expand=True), 2, origin="tool", step=2),
        trajectory_image(page.rotate(180), 3, origin="tool", step=2),
    ]
    saved = save_episode_images(items, tmp_path / "episode")
    assert [s.path.name if s.path else None for s in saved] == [
        "input.png",
        None,
        "step-2.png",
        "step-2-2.png",
    ]
    assert saved[1].same_as == tmp_path / "episode" / "input.png"
    assert saved[1].label == "step 1 output"
    assert sorted(p.name for p in (tmp_path / "episode").iterdir()) == [
        "input.png",
        "step-2-2.png",
        "step-2.png",
    ]


def test_ask_hands_the_adapter_to_the_local_model(tmp_path, images) -> None:
    from langchain_codevision.models import (
        build_tiny_lora_adapter,
        build_tiny_qwen2_5_vl,
        build_tiny_qwen3_vl,
    )

    base = build_tiny_qwen2_5_vl(tmp_path / "tiny")
    other = build_tiny_qwen3_vl(tmp_path / "tiny3")
    foreign = build_tiny_lora_adapter(other, tmp_path / "lora3")  # made for another model
    not_adapter = tmp_path / "not-an-adapter"
    not_adapter.mkdir()
    spec = f"local:{base}"
    done = run_cli("ask", str(images["good"]), "q", "--model", spec, "--adapter", str(not_adapter))
    assert_one_error_line(done, ExitCode.MODEL, str(not_adapter), "adapter_config.json")
    # the weights and then the adapter load before any episode: a foreign adapter is refused
    done = run_cli("ask", str(images["good"]), "q", "--model", spec, "--adapter", str(foreign))
    last = done.stderr.strip().splitlines()[-1]
    assert done.returncode == ExitCode.MODEL and "Traceback" not in done.stderr, done.stderr
    assert ERROR_LINE.match(last) and str(foreign) in last and "does not match" in last, last


@pytest.mark.parametrize(
    "argv",
    [
        ["ask", "/nonexistent/page.png", "What does it say?"],
        ["eval", "/nonexistent/set.parquet", "--model", "offline", "--out", "/nonexistent/o"],
    ],
)
def test_a_wrong_path_is_reported_before_the_heavy_imports(argv) -> None:
    script = (
        "import sys\nfrom langchain_codevision.cli import main\n"
        f"code = main({argv!r})\n"
        "heavy = [m for m in ('langgraph', 'langchain_codevision.loop', "
        "'langchain_codevision.model_spec', 'langchain_codevision.data') if m in sys.modules]\n"
        "print(code, heavy)"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.stdout.strip() == f"{int(ExitCode.INPUT)} []", done.stdout + done.stderr
    assert "not found" in done.stderr or "does not exist" in done.stderr
