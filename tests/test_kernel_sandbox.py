"""Isolation policy and environment scrubbing (pure functions plus one refusal case)."""

from __future__ import annotations

import pytest

from langchain_codevision.kernel import IsolationError, KernelSession, sandbox


def test_scrub_keeps_the_allowlist_and_drops_secrets(tmp_path) -> None:
    source = {
        "PATH": "/bin",
        "LANG": "C.UTF-8",
        "OPENAI_API_KEY": "sk",
        "GITHUB_TOKEN": "t",
        "DB_PASSWORD": "p",
        "AWS_ACCESS_KEY_ID": "a",
        "RANDOM_APP_SETTING": "x",
        "LC_ALL": "C",
    }
    env = sandbox.scrub_environment(source, workdir=tmp_path, extra={"MY_FLAG": "1"})
    assert env["PATH"] == "/bin" and env["LANG"] == "C.UTF-8" and env["LC_ALL"] == "C"
    assert env["HOME"] == env["TMPDIR"] == str(tmp_path)
    assert env["MY_FLAG"] == "1"
    for dropped in ("OPENAI_API_KEY", "GITHUB_TOKEN", "DB_PASSWORD", "AWS_ACCESS_KEY_ID"):
        assert dropped not in env
    assert "RANDOM_APP_SETTING" not in env


@pytest.mark.parametrize(
    ("name", "secret"),
    [("ANTHROPIC_API_KEY", True), ("hf_token", True), ("SECRET_SAUCE", True), ("PATH", False)],
)
def test_is_secret(name: str, secret: bool) -> None:
    assert sandbox.is_secret(name) is secret


def test_strict_policy_fails_closed_when_the_os_refuses(monkeypatch) -> None:
    monkeypatch.setattr(sandbox, "network_namespace_support", lambda: (False, "no userns here"))
    with pytest.raises(IsolationError, match=r"no userns here.*isolation=.auto."):
        sandbox.resolve_isolation("strict")
    with pytest.warns(RuntimeWarning, match="WITHOUT network isolation"):
        monkeypatch.setattr(sandbox, "_warned", False)
        assert sandbox.resolve_isolation("auto") == "none"
    assert sandbox.resolve_isolation("off") == "none"


def test_off_policy_runs_a_plain_kernel() -> None:
    with KernelSession(isolation="off") as session:
        out = session.execute("print('plain')")
    assert out.stdout == "plain\n" and out.isolation == "none"


def test_unknown_policy_is_rejected() -> None:
    with pytest.raises(ValueError):
        KernelSession(isolation="sometimes")
