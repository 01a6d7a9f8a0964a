"""The kernel manager and client: connection file, process groups, interrupts, restarts."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from langchain_codevision.kernel import KernelSession
from langchain_codevision.kernel._client import Channel, HostSession, KernelClient
from langchain_codevision.kernel._manager import CHANNELS, ExecProcess, LocalKernel
from langchain_codevision.kernel.session import _client_context
from tests.conftest import wait_gone


def _manager(tmp_path: Path) -> LocalKernel:
    return LocalKernel(
        ["python", "{connection_file}"],
        forked=False,
        startup_timeout=5,
        ip=str(tmp_path / "ipc"),
        connection_file=str(tmp_path / "kernel.json"),
        context=_client_context(),
    )


def test_socket_numbers_skip_paths_in_use_and_the_file_is_owner_only(tmp_path: Path) -> None:
    (tmp_path / "ipc-1").touch()
    (tmp_path / "ipc-3").touch()
    manager = _manager(tmp_path)
    manager._write_connection_file()
    info = json.loads((tmp_path / "kernel.json").read_text())
    assert [info[f"{name}_port"] for name in CHANNELS] == [2, 4, 5, 6, 7]
    assert info["transport"] == "ipc" and info["ip"] == str(tmp_path / "ipc")
    assert info["key"].encode() == manager.session.key and len(info["key"]) >= 32
    assert info["signature_scheme"] == "hmac-sha256"
    assert stat.S_IMODE((tmp_path / "kernel.json").stat().st_mode) == 0o600
    (tmp_path / "ipc-2").touch()  # numbers stay as first given: a restart keeps them
    manager._write_connection_file()
    assert json.loads((tmp_path / "kernel.json").read_text()) == info
    assert manager.get_connection_info() == info


def test_the_connection_file_is_never_written_through_a_link(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.txt"
    target.write_text("keep me")
    (tmp_path / "kernel.json").symlink_to(target)
    with pytest.raises(OSError):
        _manager(tmp_path)._write_connection_file()
    assert target.read_text() == "keep me"


def test_two_kernels_never_share_a_signing_key(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert _manager(tmp_path / "a").session.key != _manager(tmp_path / "b").session.key


def test_client_urls_follow_the_connection_info(tmp_path: Path) -> None:
    manager = _manager(tmp_path)
    manager._write_connection_file()
    client = manager.client()
    assert isinstance(client, KernelClient) and client.session is manager.session
    assert client._url("shell") == f"ipc://{tmp_path / 'ipc'}-{manager.ports['shell']}"
    tcp = KernelClient(
        {"transport": "tcp", "ip": "127.0.0.1", "iopub_port": 5555}, manager.session, None
    )
    assert tcp._url("iopub") == "tcp://127.0.0.1:5555"
    with pytest.raises(RuntimeError, match="not started"):
        client.shell_channel  # noqa: B018 - the property raises


def test_an_exec_process_is_never_signalled_once_reaped(monkeypatch) -> None:
    """A reaped pid may belong to someone else by now: no signal may go to it."""
    sent: list[tuple[int, int, str]] = []
    real_killpg = os.killpg

    def killpg(pid: int, signum: int) -> None:
        sent.append((pid, signum, psutil.Process(pid).status()))
        real_killpg(pid, signum)

    monkeypatch.setattr(os, "killpg", killpg)
    done = ExecProcess(subprocess.Popen(["true"], start_new_session=True))
    while done.poll() is None:
        time.sleep(0.01)
    # its group was killed once, while the leader was a zombie (its pid still taken)
    assert sent == [(done.pid, signal.SIGKILL, psutil.STATUS_ZOMBIE)]
    sent.clear()
    done.kill()
    assert sent == []  # reaped: never signalled again
    running = ExecProcess(subprocess.Popen(["sleep", "30"], start_new_session=True))
    running.kill()
    assert [(pid, signum) for pid, signum, _ in sent] == [(running.pid, signal.SIGKILL)]
    assert running.popen.wait(10) == -signal.SIGKILL


def test_an_unjailed_kernels_children_die_with_it() -> None:
    """A plain kernel leads its own process group; the close kills the whole group."""
    session = KernelSession(isolation="off").start()
    try:
        assert session.host is not None and not session.host.jailed
        out = session.execute(
            "import subprocess, os\nchild = subprocess.Popen(['sleep', '300'])\n"
            "print(child.pid, os.getpgid(0) == os.getpid())"
        )
        pid, leads = out.stdout.split()
        assert leads == "True", out
        assert psutil.Process(int(pid)).name() == "sleep"
    finally:
        session.close()
    assert wait_gone(int(pid))


@pytest.mark.parametrize("isolation", ["off", "auto"])
def test_interrupts_connect_on_first_use_and_restarts_keep_the_connection(isolation: str) -> None:
    with KernelSession(isolation=isolation) as session:
        assert session._km is not None and session._km._control is None  # none until needed
        ports, key = dict(session._km.ports), session._km.session.key
        session.execute("kept = 41")
        out = session.execute("while True:\n    pass", timeout=0.5)
        assert out.timed_out and not out.restarted, out
        assert session._km._control is not None
        assert session.execute("kept + 1").text == "42"  # interrupted: the variable is kept
        first = session.pid
        session.restart()
        assert session.pid != first and session._km.ports == ports
        assert session._km.session.key == key
        assert session.execute("1 + 1").text == "2"


def test_a_given_signing_key_is_the_kernels() -> None:
    """The gateway's kernel signs with the gateway's key (its relays pass messages on)."""
    session = KernelSession()
    session._key = b"a-key-the-gateway-chose-0123456789"
    with session:
        assert session.root is not None
        info = json.loads((session.root / "kernel.json").read_text())
        assert info["key"] == "a-key-the-gateway-chose-0123456789"
        assert session.execute("2 * 21").text == "42"


def test_a_status_lost_before_the_subscription_took_hold_is_asked_for_again() -> None:
    """The first probe's status goes nowhere (IOPub unsubscribed); a new probe follows."""
    import zmq

    from langchain_codevision.kernel._loop import run_sync

    with KernelSession() as session:
        assert session._km is not None
        key = session._km.session.key  # a session of its own: a second shell identity
        info = session._km.get_connection_info()
        client = KernelClient(info, HostSession(key=key), session._km.context)
        client.start_channels()
        iopub = client.iopub_channel.socket
        assert iopub is not None
        iopub.setsockopt(zmq.UNSUBSCRIBE, b"")  # the kernel now publishes to no one here
        probes: list[str] = []
        real_info, real_shell = client.kernel_info, client.get_shell_msg

        def kernel_info() -> str:
            probes.append(real_info())
            return probes[-1]

        async def get_shell_msg(timeout: float | None = None):
            msg = await real_shell(timeout)
            iopub.setsockopt(zmq.SUBSCRIBE, b"")  # subscribed only after the first reply
            return msg

        client.kernel_info, client.get_shell_msg = kernel_info, get_shell_msg
        own, session._kc = session._kc, client
        try:
            run_sync(session._wait_ready(kernel_info()))
        finally:
            session._kc = own
            client.stop_channels()
        assert len(probes) >= 2  # the first probe's status was lost: asked again
        assert session.execute("1 + 2").text == "3"


def test_what_a_plain_kernel_started_dies_with_it_even_when_it_exits_first() -> None:
    """The leader is not reaped before its group is killed, so orphans cannot survive."""
    with KernelSession(isolation="off") as session:
        started = session.execute(
            "import subprocess, os\nchild = subprocess.Popen(['sleep', '300'])\nprint(child.pid)"
        )
        orphan = int(started.stdout)
        assert psutil.Process(orphan).name() == "sleep"
        out = session.execute("os._exit(3)")  # the kernel goes first, its child stays behind
        assert out.error is not None and out.error.name == "KernelDied", out
        assert out.restarted
        assert wait_gone(orphan)
        assert session.execute("1 + 1").text == "2"


def test_a_kill_that_never_ends_is_given_up_on(monkeypatch, tmp_path: Path) -> None:
    """A process stuck in the OS must not hang a close or a restart for ever."""
    import asyncio

    from langchain_codevision.kernel import _manager as manager_module

    manager = _manager(tmp_path)

    async def stuck() -> bool:
        return True

    monkeypatch.setattr(manager, "is_alive", stuck)
    monkeypatch.setattr(manager_module, "EXIT_WAIT_S", 0.05)
    assert asyncio.run(manager._wait()) is False


def test_an_empty_key_means_unsigned_messages(tmp_path: Path) -> None:
    manager = LocalKernel(
        ["python"],
        forked=False,
        startup_timeout=1,
        ip=str(tmp_path / "ipc"),
        connection_file=str(tmp_path / "kernel.json"),
        context=_client_context(),
        key=b"",
    )
    assert manager.session.auth is None and manager.get_connection_info()["key"] == ""


def test_forged_signatures_are_refused_and_never_remembered() -> None:
    from jupyter_client.session import Session

    key = b"0123456789abcdef"
    sender, host = Session(key=key), HostSession(key=key)
    _, wire = sender.feed_identities(sender.serialize(sender.msg("status", {})))
    for forged in (b"x" * (4 << 20), b"0" * len(wire[0])):  # huge; right length, wrong value
        with pytest.raises(ValueError, match="Invalid Signature"):
            host.deserialize([forged, *wire[1:]])
    assert len(host.digest_history) == 0  # nothing kept for a signature that failed
    assert host.deserialize(list(wire))["msg_type"] == "status"
    assert len(host.digest_history) == 1


def test_a_channel_wakes_on_arrival_and_leaves_no_watch_behind() -> None:
    """A wait ends when a message arrives, at its timeout, or when cancelled; in each case
    the loop no longer watches the socket afterwards."""
    import asyncio
    import queue

    import zmq
    import zmq.asyncio

    key = b"0123456789abcdef"
    sender = HostSession(key=key)

    async def scenario() -> dict[str, object]:
        loop = asyncio.get_running_loop()
        context = zmq.asyncio.Context()
        pull, push = context.socket(zmq.PULL), context.socket(zmq.PUSH)
        pull.bind("inproc://wake")
        push.connect("inproc://wake")
        channel = Channel(pull, HostSession(key=key))
        fd = pull.getsockopt(zmq.FD)
        seen: dict[str, object] = {}
        try:
            started = time.monotonic()
            with pytest.raises(queue.Empty):
                await channel.get_msg(timeout=0.05)
            seen["timeout_s"] = time.monotonic() - started
            seen["watched_after_timeout"] = loop.remove_reader(fd)

            async def send_later() -> None:
                await asyncio.sleep(0.05)
                wire = sender.serialize(sender.msg("status", {"execution_state": "idle"}))
                zmq.Socket.shadow(push.underlying).send_multipart(wire)

            later = asyncio.create_task(send_later())
            started = time.monotonic()
            seen["arrived"] = (await channel.get_msg(timeout=30))["msg_type"]
            seen["arrival_s"] = time.monotonic() - started
            await later
            seen["watched_after_arrival"] = loop.remove_reader(fd)

            waiting = asyncio.create_task(channel.get_msg(timeout=None))
            await asyncio.sleep(0.02)
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
            seen["watched_after_cancel"] = loop.remove_reader(fd)
            return seen
        finally:
            channel.close()
            push.close(0)
            context.term()

    seen = asyncio.run(scenario())
    assert seen["arrived"] == "status"
    assert 0.04 <= seen["timeout_s"] < 5  # type: ignore[operator]
    assert seen["arrival_s"] < 5  # type: ignore[operator]  # woken, not run out
    assert not seen["watched_after_timeout"]
    assert not seen["watched_after_arrival"]
    assert not seen["watched_after_cancel"]


def test_a_message_with_too_many_frames_or_bytes_is_dropped() -> None:
    """ZeroMQ caps each frame; the channel caps a whole message's frames and bytes."""
    import asyncio

    import zmq
    import zmq.asyncio

    from langchain_codevision.kernel import _client

    key = b"0123456789abcdef"
    sender = HostSession(key=key)

    def wire(extra: list[bytes]) -> list[bytes]:
        return [*sender.serialize(sender.msg("status", {"execution_state": "idle"})), *extra]

    half = b"x" * (_client.MAX_MESSAGE_BYTES // 2)
    messages = [wire([b"x"] * _client.MAX_FRAMES), wire([half, half]), wire([b"ok"])]

    async def read_all() -> list[str]:
        context = zmq.asyncio.Context()
        pull, push = context.socket(zmq.PULL), context.socket(zmq.PUSH)
        pull.bind("inproc://frames")
        push.connect("inproc://frames")
        channel = Channel(pull, HostSession(key=key))
        try:
            for frames in messages:
                zmq.Socket.shadow(push.underlying).send_multipart(frames)
            seen = []
            for _ in messages:
                try:
                    seen.append((await channel.get_msg(timeout=5))["msg_type"])
                except ValueError as exc:
                    seen.append(str(exc))
            return seen
        finally:
            channel.close()
            push.close(0)
            context.term()

    first, second, third = asyncio.run(read_all())
    assert "frames over the size cap" in first and "frames over the size cap" in second
    assert third == "status"  # the channel keeps working after dropping them
