"""The README is followable: every ```python block runs, every command line parses.

Python blocks run one by one, each in a fresh interpreter and a fresh folder holding the files
they name (``scan.png``, ``page.png``, a one-question ``OCRBench/OCRBench.json``), offline:
snippets that call an API model reach a local OpenAI-compatible stub on 127.0.0.1 through
``OPENAI_BASE_URL``, which answers with real code for the kernel to run. A block is left out
only when it starts with the skip marker, which needs a reason and may be used twice at most.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.openai_stub import OpenAIStub

try:
    import tomllib
except ImportError:  # Python 3.10
    from pip._vendor import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
SKIP_MARKER = "# readme-test: skip"
MAX_SKIPPED = 2
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.DOTALL | re.MULTILINE)


def _blocks(language: str) -> list[tuple[int, str]]:
    """``(line number, code)`` of every fenced block in ``language``."""
    return [
        (README[: m.start()].count("\n") + 1, m.group(2))
        for m in FENCE.finditer(README)
        if m.group(1) == language
    ]


PYTHON = _blocks("python")
BASH = _blocks("bash")
RUNNABLE = [(line, code) for line, code in PYTHON if not code.startswith(SKIP_MARKER)]


def _commands(code: str) -> list[str]:
    """The command lines of a shell block, continuation lines joined, comments dropped."""
    joined = code.replace("\\\n", " ")
    return [line.strip() for line in joined.splitlines() if line.strip()]


def _extras() -> dict[str, list[str]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return project["optional-dependencies"]


# -- structure ----------------------------------------------------------------------------------
def test_readme_has_runnable_snippets_and_few_skips() -> None:
    assert len(PYTHON) >= 8 and len(BASH) >= 4
    skipped = [code for _, code in PYTHON if code.startswith(SKIP_MARKER)]
    assert len(skipped) <= MAX_SKIPPED
    for code in skipped:
        assert re.match(re.escape(SKIP_MARKER) + r" \(.{10,}\)\n", code), "give the reason"
    assert all(SKIP_MARKER not in code for _, code in RUNNABLE), "the marker goes first"


def test_code_lines_fit_in_100_characters() -> None:
    long = [
        (line + k, text)
        for line, code in PYTHON + BASH
        for k, text in enumerate(code.splitlines(), start=1)
        if len(text) > 100
    ]
    assert long == []


def test_python_blocks_are_ruff_formatted() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--check", "README.md"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_quick_start_is_two_commands_and_the_second_is_what_ci_runs() -> None:
    section = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    code = FENCE.search(section)
    assert code is not None and code.group(1) == "bash"
    install, suite = _commands(code.group(2))  # exactly two
    assert install.endswith("&& codevision demo") and install.startswith("pip install ")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert suite in [line.strip() for line in ci]
    assert suite.startswith("bash scripts/install-system-deps.sh && pip install -e")
    assert (ROOT / "scripts" / "install-system-deps.sh").exists()
    for placeholder in ("DOWNLOAD_", "INSTALLED_", "SUITE_TIME", "TODO", "TBD"):
        assert placeholder not in README


def test_every_extra_the_readme_installs_exists() -> None:
    extras = _extras()
    named = re.findall(r"""pip install (?:-e )?["']?\.\[([\w,]+)\]""", README)
    assert named, "the README installs extras"
    for group in named:
        for extra in group.split(","):
            assert extra in extras, f"pyproject.toml has no extra {extra!r}"
    assert any("langgraph-cli[inmem]" in dep for dep in extras["server"])


def test_codevision_command_lines_parse() -> None:
    from langchain_codevision.cli import build_parser

    lines = [line for _, code in BASH for line in _commands(code) if line.startswith("codevision ")]
    assert len(lines) >= 8
    commands = set()
    for line in lines:
        argv = shlex.split(line, comments=True)[1:]
        try:
            args = build_parser().parse_args(argv)
        except SystemExit as exit:  # argparse reports and exits
            pytest.fail(f"README command does not parse ({exit.code}): {line}")
        commands.add(args.command)
    assert {"demo", "ask", "synth", "export", "train", "eval"} <= commands


def test_langgraph_dev_config_exists() -> None:
    lines = [line for _, code in BASH for line in _commands(code) if line.startswith("langgraph ")]
    assert lines
    for line in lines:
        argv = shlex.split(line, comments=True)
        config = json.loads((ROOT / argv[argv.index("--config") + 1]).read_text())
        for target in config["graphs"].values():
            assert (ROOT / target.split(":")[0]).is_file()


def test_linked_files_exist() -> None:
    links = re.findall(r"\]\(((?!https?:)[^)#]+)\)", README)
    assert {"docs/cli.md", "docs/remote-kernels.md", "docs/benchmarks.md"} <= set(links)
    assert [link for link in links if not (ROOT / link).exists()] == []


# -- running the snippets -----------------------------------------------------------------------
class ReadmeModelStub(OpenAIStub):
    """Answers like a vision model that writes code: a tool call first, then the answer.

    Text protocol (no ``tools`` in the request): a ``<tool_call>`` while the conversation has
    no assistant turn yet, then ``<answer>``. Native tool calling: each offered tool once, in
    order, then a plain reply.
    """

    TOOL_ARGS: dict[str, dict[str, Any]] = {
        "codevision": {"image": "scan.png", "question": "Is the page upside down?"},
        "code_image_tool": {
            "code": "result = image.rotate(180, expand=True)",
            "description": "turn the page",
            "image_index": 0,
        },
    }
    TEXT_CALL = (
        "<think>First turn the page upright.</think>\n<tool_call>\n"
        '{"name": "code_image_tool", "arguments": {"code": "print(image.size)\\n'
        'result = image.rotate(180, expand=True)", "description": "rotate", "image_index": 0}}'
        "\n</tool_call>"
    )
    TEXT_ANSWER = "<think>The total is readable now.</think>\n<answer>1,234.50</answer>"

    def _completion(self, body: dict[str, Any]) -> dict[str, Any]:
        messages = body.get("messages", [])
        tools = [t["function"]["name"] for t in body.get("tools") or []]
        if tools and body.get("tool_choice") != "none":
            done = sum(1 for m in messages if m.get("role") == "tool")
            if done < len(tools):
                name = tools[done]
                call = {"id": f"call-{done}", "name": name, "args": self.TOOL_ARGS[name]}
                reply: Any = {"tool_calls": [call]}
            else:
                reply = "No: after turning it, the page reads upright."
        elif any(m.get("role") == "assistant" for m in messages):
            reply = self.TEXT_ANSWER
        else:
            reply = self.TEXT_CALL
        self.replies = [reply]
        return super()._completion(body)


@pytest.fixture(scope="module")
def stub():
    with ReadmeModelStub(["unused"]) as server:
        yield server


def _workspace(folder: Path) -> None:
    """The files the README's snippets name."""
    from langchain_codevision.data.sources import make_sample
    from langchain_codevision.demo import render_page

    page, _ = render_page(seed=1)
    page.rotate(180, expand=True).save(folder / "scan.png")
    page.rotate(90, expand=True).save(folder / "page.png")
    sample = make_sample("read_line", 0)
    bench = folder / "OCRBench"
    bench.mkdir()
    half = (sample.image.width // 2, sample.image.height // 2)  # quicker OCR, still legible
    sample.image.resize(half).save(bench / "page0.png")
    row = {
        "image_path": "page0.png",
        "question": sample.question,
        "answers": [sample.answer],
        "type": "Text Recognition",
    }
    (bench / "OCRBench.json").write_text(json.dumps([row]), encoding="utf-8")


def _env(stub: OpenAIStub, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CODEVISION_", "OPENAI_"))}
    env.update(
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        OPENAI_BASE_URL=stub.base_url,
        OPENAI_API_KEY="sk-readme-test",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        HF_HOME=str(home / "hf"),
        MPLBACKEND="Agg",
        TQDM_DISABLE="1",
    )
    return env


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("line,code", RUNNABLE, ids=[f"line{line}" for line, _ in RUNNABLE])
def test_python_block_runs(line: int, code: str, stub: ReadmeModelStub, tmp_path: Path) -> None:
    _workspace(tmp_path)
    (tmp_path / "snippet.py").write_text(code, encoding="utf-8")
    stub.requests.clear()
    done = subprocess.run(
        [sys.executable, "snippet.py"],
        cwd=tmp_path,
        env=_env(stub, tmp_path),
        capture_output=True,
        text=True,
        timeout=840,
    )
    assert done.returncode == 0, f"README line {line}:\n{done.stdout[-3000:]}{done.stderr[-6000:]}"
    if 'ChatOpenAI(model="gpt-4o")' in code and ".invoke(" in code:
        assert len(stub.requests) >= 2, "the snippet's API model was called"
        assert all(r["model"] == "gpt-4o" for r in stub.requests)
