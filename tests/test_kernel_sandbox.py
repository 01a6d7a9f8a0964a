"""Isolation policy and environment scrubbing (pure functions plus one refusal case)."""

from __future__ import annotations

import pytest

from langchain_codevision.kernel import IsolationError, KernelSession, jail, sandbox


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
    monkeypatch.setattr(jail, "backend_support", lambda name: f"{name} refused here")
    with pytest.raises(IsolationError, match=r"bwrap refused here.*isolation=.auto."):
        jail.plan_jail("strict")
    monkeypatch.setattr(jail, "_warned", set())
    with pytest.warns(RuntimeWarning, match="weaker jail: bwrap: bwrap refused here"):
        assert jail.plan_jail("auto").backend == "none"
    assert jail.plan_jail("off").backend == "none"


def test_strict_policy_names_the_missing_layer_for_one_backend(monkeypatch) -> None:
    monkeypatch.setattr(
        jail, "backend_support", lambda name: "no bwrap" if name == "bwrap" else None
    )
    with pytest.raises(IsolationError, match="no bwrap"):
        jail.plan_jail("strict", "bwrap")
    assert jail.plan_jail("strict", "auto").backend == "namespaces"


def test_unknown_jail_backend_is_rejected() -> None:
    with pytest.raises(ValueError, match="jail must be"):
        KernelSession(jail="docker")  # type: ignore[arg-type]


def test_off_policy_runs_a_plain_kernel() -> None:
    with KernelSession(isolation="off") as session:
        out = session.execute("print('plain')")
    assert out.stdout == "plain\n" and out.isolation == "none"


def test_unknown_policy_is_rejected() -> None:
    with pytest.raises(ValueError):
        KernelSession(isolation="sometimes")
