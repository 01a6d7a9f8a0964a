"""Kernel processes never outlive their owner: close, GC, interpreter exit, host crash.

Each case runs for both ways of starting a jailed kernel: a fresh interpreter (``exec``, in
bubblewrap) and a fork of the host's preloaded kernel template (``fork``, whose template
must go too).
"""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from langchain_codevision.kernel import KernelSession
from langchain_codevision.kernel.hostdirs import sweep_stale
from tests.conftest import wait_gone

STARTS = ["exec", "fork"]


def _host(script: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("start", STARTS)
def test_garbage_collection_kills_the_kernel(start: str) -> None:
    session = KernelSession(start=start).start()
    pid, jail_pid = session.pid, session.host.jail_pid
    root = session.root
    del session
    gc.collect()
    assert pid is not None and wait_gone(pid) and wait_gone(jail_pid)
    assert root is not None and not root.exists()


@pytest.mark.parametrize("isolation", ["auto", "off"])
def test_a_dropped_session_leaves_no_descriptor_behind(isolation: str) -> None:
    """Garbage collection releases the sockets, pidfd and area descriptor too."""
    KernelSession(isolation=isolation).start().close()  # the loop and template are up

    def descriptors() -> int:
        return len(os.listdir("/proc/self/fd"))

    before = descriptors()
    for _ in range(4):
        session = KernelSession(isolation=isolation).start()
        assert session.execute("1 + 1").text == "2"
        del session
        gc.collect()
    deadline = time.monotonic() + 10  # the sockets are closed on the kernel I/O loop
    while descriptors() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert descriptors() <= before


@pytest.mark.parametrize("start", STARTS)
@pytest.mark.parametrize("ending", ["normal-exit", "sigterm", "sigkill", "sigkill-watcher-too"])
def test_host_exit_or_crash_leaves_no_kernel(ending: str, start: str) -> None:
    """However the host ends, its kernels die; its run root's watcher removes its files and
    cgroups, and where the watcher was killed too, the next host's sweep does."""
    host = _host(
        f"""
        import os, sys, time
        from langchain_codevision.kernel import KernelSession, KernelPool
        from langchain_codevision.kernel._forkserver import template
        from langchain_codevision.kernel.hostdirs import run_root
        session = KernelSession(start={start!r}).start()
        pool = KernelPool(size=1, start={start!r})
        pool.wait_ready()
        lent = pool.acquire()
        print(session.pid, lent.pid, session.host.jail_pid, lent.host.jail_pid, flush=True)
        print(template().pid or "", flush=True)
        print(session.root.parent, *session.host.cgroup.paths, flush=True)
        print(run_root().janitor.pid, flush=True)
        if sys.argv[-1] == "sleep":
            time.sleep(60)
        """
        + ("\n" if ending == "normal-exit" else "time.sleep(60)\n")
    )
    line = host.stdout.readline().split()
    assert len(line) == 4, host.stderr.read()
    pids = [int(p) for p in line]  # supervisors and jail inits, host pids
    pids += [int(p) for p in host.stdout.readline().split()]  # the template, if any
    assert len(pids) == (5 if start == "fork" else 4)
    run_root, *cgroups = (Path(p) for p in host.stdout.readline().split())
    watcher = int(host.stdout.readline())
    assert all(psutil.pid_exists(pid) for pid in pids) and run_root.exists()
    if ending == "sigkill-watcher-too":
        os.kill(watcher, signal.SIGKILL)
        assert wait_gone(watcher)
    if ending != "normal-exit":
        os.kill(host.pid, signal.SIGTERM if ending == "sigterm" else signal.SIGKILL)
    host.wait(timeout=60)
    assert all(wait_gone(pid) for pid in pids), [psutil.Process(p).cmdline() for p in pids]
    if ending == "sigkill-watcher-too":  # nothing cleaned up: the next host sweeps it
        assert run_root.exists()
        sweep_stale(run_root.parent)
    assert wait_gone(watcher)
    deadline = time.monotonic() + 30
    while (run_root.exists() or any(p.exists() for p in cgroups)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not run_root.exists()
    assert not [path for path in cgroups if path.exists()]


@pytest.mark.parametrize("start", STARTS)
def test_kernel_spawned_children_die_with_the_session(start: str) -> None:
    session = KernelSession(start=start).start()
    session.execute("import subprocess\nchild = subprocess.Popen(['sleep', '300'])")
    jail = psutil.Process(session.host.jail_pid)
    [child] = [p for p in jail.children(recursive=True) if p.name() == "sleep"]
    session.close()
    assert wait_gone(child.pid) and wait_gone(jail.pid)


@pytest.mark.parametrize("start", STARTS)
def test_a_kernels_processes_are_named_by_their_role(start: str) -> None:
    """``ps``, ``top`` and ``perf`` tell the template, a supervisor, a jail's init and a
    kernel apart (all of them are ``python`` otherwise)."""
    with KernelSession(start=start) as session:
        inside = session.execute("print(open('/proc/self/comm').read().strip())")
        assert inside.stdout.strip() == "cv-kernel"
        init = psutil.Process(session.host.jail_pid)
        kernels = [p for p in init.children(recursive=True) if p.name() == "cv-kernel"]
        assert len(kernels) == 1  # under bubblewrap (the exec start here), bwrap is the init
        assert init.name() in ("cv-init", "bwrap")
        if start == "fork":  # a root template forks the init itself: there is no supervisor
            assert init.name() == "cv-init"
            assert init.parent().name() == "cv-template"
            return
        supervisor = init.parent()
        while supervisor.name() == "bwrap":  # bubblewrap's own process outside the jail
            supervisor = supervisor.parent()
        assert supervisor.name() == "cv-supervisor"


def test_a_slow_cleanup_does_not_stall_other_kernels(monkeypatch) -> None:
    """Closing runs the host-side cleanup off the I/O loop every kernel shares."""
    import threading

    from langchain_codevision.kernel import _host

    entered, release = threading.Event(), threading.Event()
    original = _host.KernelHost.cleanup

    def stuck_cleanup(self) -> None:  # a cgroup that takes its time to empty
        entered.set()
        release.wait(30)
        original(self)

    with KernelSession() as other, KernelSession() as closing:
        other.execute("x = 1")
        closing.execute("y = 2")
        monkeypatch.setattr(_host.KernelHost, "cleanup", stuck_cleanup)
        closer = threading.Thread(target=closing.close)
        closer.start()
        try:
            assert entered.wait(30)
            out = other.execute("print(x + 1)", timeout=10)  # the loop is free meanwhile
            assert out.ok and out.stdout == "2\n" and closer.is_alive()
        finally:
            release.set()
            closer.join(30)
        assert not closer.is_alive()


def test_a_killed_kernel_is_checked_for_its_end_soon_then_less_often(monkeypatch) -> None:
    """The exit wait backs off from 1 ms to 0.1 s (jupyter_client: 0.1 s flat)."""
    import asyncio
    import threading
    from typing import Any

    from langchain_codevision.kernel import _manager
    from langchain_codevision.kernel.session import _client_context

    manager = _manager.LocalKernel(
        ["python"],
        forked=False,
        startup_timeout=1,
        ip="/nonexistent/ipc",
        connection_file="/nonexistent/kernel.json",
        context=_client_context(),
    )
    checks = iter([True] * 9 + [False])

    async def alive() -> bool:
        return next(checks)

    slept: list[float] = []
    real_sleep, here = asyncio.sleep, threading.current_thread()

    async def sleep(delay: float, *args: Any) -> None:
        if threading.current_thread() is not here:  # another test's kernel loop: as it was
            return await real_sleep(delay, *args)
        slept.append(delay)

    monkeypatch.setattr(manager, "is_alive", alive)
    monkeypatch.setattr(_manager.asyncio, "sleep", sleep)
    asyncio.run(manager._wait())
    assert slept == [0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.1, 0.1]


def test_the_janitor_removes_a_run_root_that_a_dying_jail_still_writes_into(
    tmp_path, monkeypatch
) -> None:
    """A jail still being built when its host died may add a file during the first pass,
    which then leaves that file's folder: the janitor goes over the run root again."""
    import shutil

    from langchain_codevision.kernel import _janitor

    root = tmp_path / "codevision-run"
    (root / "kernel-1").mkdir(parents=True)
    passes = []
    real_rmtree = shutil.rmtree

    def first_pass_loses_a_race(path, ignore_errors=False):
        passes.append(path)
        if len(passes) == 1:  # published while the pass ran: the folder stays, with the file
            (path / "kernel-1" / "jail.pid").write_text("1")
            return
        real_rmtree(path, ignore_errors=ignore_errors)

    monkeypatch.setattr(_janitor.shutil, "rmtree", first_pass_loses_a_race)
    _janitor._remove(root)
    assert len(passes) == 2 and not root.exists()
