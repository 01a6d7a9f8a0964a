"""Kernels forked from the preloaded template: each in its own jail, nothing shared but pages.

The jail's attacks themselves run for forked kernels in ``test_kernel_jail.py`` (its
``fork`` backend); these tests cover what is particular to the template: what it holds,
what a kernel can reach of it, its death, and what forking saves.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import textwrap
import time
from pathlib import Path

import psutil
import pytest
from PIL import Image

from langchain_codevision.kernel import KernelLimits, KernelSession
from langchain_codevision.kernel._forkserver import template
from langchain_codevision.kernel.jail import backend_support
from langchain_codevision.kernel.sandbox import is_secret
from tests.conftest import wait_gone

MiB = 1024**2
LIMITS = KernelLimits(timeout=20, memory_bytes=2 * 1024**3, disk_bytes=64 * MiB)


@pytest.fixture(scope="module", autouse=True)
def _namespace_jail_works() -> None:
    reason = backend_support("namespaces")
    assert reason is None, f"the namespace jail must work on the test machine: {reason}"


def forked(**options: object) -> KernelSession:
    return KernelSession(limits=LIMITS, start="fork", isolation="strict", **options).start()


def run(session: KernelSession, code: str) -> str:
    out = session.execute(textwrap.dedent(code))
    assert out.ok, f"{out.error}\n{out.error.traceback if out.error else ''}"
    return out.stdout


def members(session: KernelSession) -> list[int]:
    """Every process of the kernel: its cgroup's members (supervisor, init, children)."""
    assert session.host is not None and session.host.cgroup is not None
    return [int(p) for p in (session.host.cgroup.paths[0] / "cgroup.procs").read_text().split()]


def memory_mib(session: KernelSession, kind: str = "pss") -> float:
    """``pss`` or ``uss`` summed over the kernel's processes, in MiB."""
    total = 0
    for pid in members(session):
        try:
            total += getattr(psutil.Process(pid).memory_full_info(), kind)
        except psutil.Error:
            continue
    return total / MiB


def fd_links(pid: int) -> list[str]:
    """What each open descriptor of ``pid`` is (``socket:[inode]``, a path, ...)."""
    links = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            links.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except FileNotFoundError:  # closed meanwhile (the listing's own descriptor, say)
            continue
    return links


def template_sockets(pid: int) -> list[str]:
    """The ``socket:[inode]`` names of the template's sockets: control socket, spare's channel."""
    return [link for link in fd_links(pid) if link.startswith("socket:")]


def spares(template_pid: int, supervisors: set[int] = frozenset()) -> list[psutil.Process]:
    """The template's live children that supervise no kernel: its spare, waiting."""
    found = []
    for child in psutil.Process(template_pid).children():
        with contextlib.suppress(psutil.Error):
            if child.pid not in supervisors and child.status() != psutil.STATUS_ZOMBIE:
                found.append(child)
    return found


def one_spare(template_pid: int, supervisors: set[int] = frozenset()) -> psutil.Process:
    """The template's spare, once it has forked it (right after its last reply)."""
    deadline = time.monotonic() + 10
    while not (found := spares(template_pid, supervisors)) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(found) == 1, found
    return found[0]


def test_a_forked_kernel_runs_code_with_images_in_and_out() -> None:
    with forked() as session:
        assert session.forked
        session.put_image(0, Image.new("RGB", (40, 20), "blue"))
        out = session.execute(
            "print(type(np).__name__, cv2.__name__)\nresult = image.rotate(90, expand=True)",
            image=0,
            collect=("result",),
        )
        assert out.ok, out.error
        assert out.stdout == "module cv2\n"
        assert out.result_images[0].image.size == (20, 40)
        assert out.result_images[0].image.getpixel((5, 5)) == (0, 0, 255)
        assert run(session, "x = 41\n") == "" and run(session, "print(x + 1)") == "42\n"
        assert set(session.start_phases) >= {"launch", "jail", "kernel_info", "preamble"}


def test_isolation_lists_the_same_layers_as_the_namespace_jail() -> None:
    with KernelSession(limits=LIMITS, jail="namespaces", start="exec") as cold:
        cold.execute("pass")
        expected = cold.isolation
        assert not cold.forked
    with forked() as session:
        assert session.execute("pass").isolation == expected
        assert expected.startswith("namespaces+uid+user+pid+mount+net+ipc+uts+cgroup+")
        ids = run(session, "import os; print(os.getuid(), os.getgid(), os.getgroups())")
        assert ids.split() == ["65534", "65534", "[]"]


def test_two_forked_kernels_cannot_see_each_others_files_or_processes() -> None:
    with forked() as first, forked() as second:
        run(first, "secret = 'first-secret'\nopen('/tmp/mine', 'w').write('first')")
        probe = f"""
            import os
            print(os.path.exists('/tmp/mine'))
            print(sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))
            for path in ('/proc/{first.host.jail_pid}/root/run/cv/kernel.json',
                         {first.host.connection_file!r}):
                try:
                    open(path).read()
                    print('READ')
                except OSError as exc:
                    print(type(exc).__name__)
            try:
                os.kill({first.host.jail_pid}, 0)
                print('SIGNALLED')
            except OSError as exc:
                print(type(exc).__name__)
        """
        lines = run(second, probe).splitlines()
        assert lines[0] == "False"
        assert max(json.loads(lines[1])) < 100  # its own few processes only
        assert "READ" not in lines[2:4] and lines[4] == "ProcessLookupError"
        uids = {os.stat(f"/proc/{s.host.jail_pid}").st_uid for s in (first, second)}
        assert len(uids) == 2  # one unprivileged host uid each
        assert run(first, "print(secret)") == "first-secret\n"


def test_the_template_is_out_of_reach_of_its_kernels() -> None:
    with forked() as session:
        tpl = template()
        sockets = template_sockets(tpl.pid)
        assert len(sockets) == 2  # the control socket and the spare's channel
        code = f"""
            import os, signal
            for sig in (signal.SIGKILL, signal.SIGSTOP, 0):
                try:
                    os.kill({tpl.pid}, sig)
                    print('SIGNALLED')
                except OSError as exc:
                    print(type(exc).__name__)
            print(os.path.exists('/proc/{tpl.pid}'))
            links = []
            for fd in os.listdir('/proc/self/fd'):
                try:
                    links.append(os.readlink('/proc/self/fd/' + fd))
                except FileNotFoundError:
                    pass
            print(sorted(links))
        """
        lines = run(session, code).splitlines()
        assert lines[:3] == ["ProcessLookupError"] * 3 and lines[3] == "False"
        assert not [name for name in sockets if name in lines[4]] and "pidfd" not in lines[4]
        for pid in members(session):  # supervisor and jail alike: no descriptor of it
            links = fd_links(pid)
            assert not set(sockets) & set(links) and not [x for x in links if "pidfd" in x]
        assert tpl.alive and psutil.Process(tpl.pid).status() != psutil.STATUS_STOPPED


def test_the_template_holds_no_thread_secret_or_stray_descriptor(monkeypatch) -> None:
    template().stop()  # started again below, with a secret in the host's environment
    monkeypatch.setenv("CODEVISION_TEST_API_KEY", "host-secret")
    with forked() as session:
        pid = template().pid
        proc = psutil.Process(pid)
        assert proc.num_threads() == 1
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        names = [entry.split(b"=", 1)[0].decode() for entry in environ if entry]
        assert "CODEVISION_TEST_API_KEY" not in names and not [n for n in names if is_secret(n)]
        links = {fd: os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
        extra = sorted(
            link
            for fd, link in links.items()
            if int(fd) > 2 and not link.startswith("anon_inode:[pidfd]")
        )
        # The control socket and its end of the spare's channel; its own PID namespace
        # (which it joins again after each spare) and the folder of each kernel it forked
        # (where it records the kernel's exit).
        sockets = [x for x in extra if x.startswith("socket:")]
        assert len(sockets) == 2, links
        assert sorted(set(extra) - set(sockets)) == sorted(
            [os.readlink(f"/proc/{pid}/ns/pid"), str(session.root)]
        ), links
        spare = one_spare(pid, {session.pid})
        spare_links = fd_links(spare.pid)
        # stdio, its channel and a pidfd of the template (to notice the template's death)
        assert len(spare_links) == 5 and "anon_inode:[pidfd]" in spare_links, spare_links
        [channel] = [link for link in spare_links if link.startswith("socket:")]
        assert channel not in extra  # its own end: nothing of the template's or a kernel's
        spare_environ = Path(f"/proc/{spare.pid}/environ").read_bytes()
        assert b"host-secret" not in spare_environ
        assert "CODEVISION_TEST_API_KEY" not in run(session, "import os; print(dict(os.environ))")
        # What its imports write below HOME (matplotlib's font cache) stays in its own /run.
        assert os.readlink(f"/proc/{pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt")
        assert os.listdir(f"/proc/{pid}/root/run") in ([], ["cv"])
        assert not Path("/run/cv").exists()


def ns_pids(pid: int) -> list[int]:
    """``pid``'s pid in each PID namespace it is in, outermost first (``NSpid``)."""
    status = Path(f"/proc/{pid}/status").read_text()
    return [int(n) for n in re.search(r"^NSpid:(.*)$", status, re.M).group(1).split()]


def test_a_forked_jails_init_is_the_templates_child_and_pid_1_of_its_namespace() -> None:
    """Two forks of the template per kernel (its init, the kernel), no supervisor between."""
    with forked() as session:
        tpl = psutil.Process(template().pid)
        init = psutil.Process(session.host.jail_pid)
        assert session.pid == init.pid and init.parent().pid == tpl.pid
        assert ns_pids(init.pid)[1:] == [1]
        [kernel] = [p for p in init.children() if p.name() == "cv-kernel"]
        assert ns_pids(kernel.pid)[1:] == [2]
        names = {p.name() for p in tpl.children(recursive=True)}
        assert "cv-supervisor" not in names, names
        # Each spare waits as PID 1 of a namespace of its own; the template stays in its own.
        spare = one_spare(tpl.pid, {init.pid})
        assert ns_pids(spare.pid)[1:] == [1]
        spaces = {os.readlink(f"/proc/{p}/ns/pid") for p in (tpl.pid, init.pid, spare.pid)}
        assert len(spaces) == 3
        own = os.readlink(f"/proc/{tpl.pid}/ns/pid")
        assert os.readlink(f"/proc/{tpl.pid}/ns/pid_for_children") == own


def test_the_template_may_hold_many_kernels_descriptors_but_no_kernel_inherits_that() -> None:
    """A host with the usual soft limit (1024) still gets a template that can hold 512
    kernels' descriptors; each kernel keeps its own limit, or with none of its own
    (``open_files=None``) the host's."""
    import resource
    import subprocess
    import sys

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if os.geteuid() == 0:
        hard = max(hard, 4096)  # root may raise it: the test runs on any root host
    elif hard <= 1024:
        pytest.skip("the hard limit on open files is 1024 or less here")
    code = textwrap.dedent(
        """
        import psutil
        from langchain_codevision.kernel import KernelLimits, KernelSession
        from langchain_codevision.kernel._forkserver import template
        probe = "import resource; print(resource.getrlimit(7))"
        with KernelSession(start="fork") as session:
            out = session.execute(probe).stdout
            print(psutil.Process(template().pid).rlimit(psutil.RLIMIT_NOFILE), out.strip())
        with KernelSession(start="fork", limits=KernelLimits(open_files=None)) as session:
            print(session.execute(probe).stdout.strip())
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard)),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    lines = done.stdout.split("\n")
    assert lines[:2] == [f"({hard}, {hard}) (1024, 1024)", f"(1024, {hard})"], done.stderr


def test_an_init_counts_on_the_template_that_forked_it_not_a_later_one() -> None:
    """Once that template is gone, nobody will record the init's exit: no wait for it."""
    with forked() as first:
        process = first._km.process
        assert process.recorder_alive()
        old = template()
        old_pid = old.pid
        os.kill(old_pid, signal.SIGKILL)  # the template is this process's own child
        with forked() as second:  # starts a new template
            assert template().pid != old_pid and second.execute("print(1)").stdout == "1\n"
            assert not process.recorder_alive()


def test_the_template_records_how_a_jails_init_ended() -> None:
    """With no supervisor, the template (the init's parent) writes ``jail.exit``."""
    with forked() as session:
        record = session.root / "jail.exit"
        assert not record.exists()
        os.kill(session.host.jail_pid, signal.SIGKILL)  # this session's own jail
        deadline = time.monotonic() + 10
        while not record.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        status, pid = (int(field) for field in record.read_text().split())
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        assert pid == session.host.jail_pid
        out = session.execute("print('again')")
        assert out.restarted and out.stdout == "again\n"


@pytest.mark.parametrize("record", ["own", "another-pid", "template-gone"])
def test_an_inits_exit_counts_once_recorded_and_only_its_own(tmp_path, record: str) -> None:
    """``ForkedProcess.poll`` never waits for the template's record, and takes no stale one."""
    import subprocess

    from langchain_codevision.kernel._forkserver import ForkedProcess

    child = subprocess.Popen(["sh", "-c", "exit 3"])  # stands in for an init: its own child
    template_alive = [True]
    process = ForkedProcess(
        child.pid, os.pidfd_open(child.pid), tmp_path, 0.0, lambda: template_alive[0]
    )
    try:
        deadline = time.monotonic() + 10
        while not select_readable(process.pidfd) and time.monotonic() < deadline:
            time.sleep(0.01)
        started = time.monotonic()
        assert process.poll() is None  # ended, but not recorded yet: still "running"
        assert time.monotonic() - started < 0.5
        status = os.waitpid(child.pid, 0)[1]
        if record == "template-gone":
            template_alive[0] = False
            assert process.poll() == -signal.SIGKILL  # nobody will record it
            return
        if record == "another-pid":  # a previous init's record, written late: not this one's
            (tmp_path / "jail.exit").write_text(f"{9} {child.pid + 1}")
            assert process.poll() is None
        (tmp_path / "jail.exit").write_text(f"{status} {child.pid}")
        assert process.poll() == 3
    finally:
        process.close()
        child.poll()


def select_readable(fd: int) -> bool:
    import select

    return bool(select.select([fd], [], [], 0)[0])


def test_the_next_kernel_is_the_spare_forked_ahead_of_its_request() -> None:
    with forked() as first:
        tpl = template()
        spare = one_spare(tpl.pid, {first.pid})
        assert spare.cmdline() == psutil.Process(tpl.pid).cmdline()  # a fork, not a new program
        with forked() as second:
            assert second.pid == spare.pid  # handed the request: no fork on its path
            assert second.execute("print(6 * 7)").stdout == "42\n"
            assert "pid" in second.isolation and second.isolation == first.isolation
            after = one_spare(tpl.pid, {first.pid, second.pid})  # and the next is waiting
            assert after.pid not in (spare.pid, first.pid)


def test_a_spare_that_dies_is_replaced_and_a_start_never_needs_one() -> None:
    template().stop()  # a fresh template: its count of lost spares starts at zero
    with forked() as session:
        tpl = template()
        for lost in range(3):  # the template's own child: this test may kill it
            spare = one_spare(tpl.pid, {session.pid})
            spare.kill()
            assert wait_gone(spare.pid)
            if lost < 2:
                assert one_spare(tpl.pid, {session.pid}).pid != spare.pid
        time.sleep(0.2)
        assert not spares(tpl.pid, {session.pid})  # three lost: it stops forking them ahead
        with forked() as second:  # forked on the spot, as before
            assert second.execute("print('still')").stdout == "still\n"
            assert not spares(tpl.pid, {session.pid, second.pid})
    template().stop()


def test_each_shell_forks_from_its_own_template_and_the_lean_one_holds_no_ipython() -> None:
    with forked() as lean, forked(shell="ipython") as ipython:
        lean_template, ipython_template = template(), template(shell="ipython")
        assert lean_template.pid != ipython_template.pid
        parents = {psutil.Process(s.pid).ppid() for s in (lean, ipython)}
        assert parents == {lean_template.pid, ipython_template.pid}
        lean_maps = Path(f"/proc/{lean_template.pid}/maps").read_text()
        assert "cv2" in lean_maps and "zmq" in lean_maps  # what every kernel uses, preloaded
        heap = {  # anonymous memory resident (shared with the kernels forked from it or not)
            t.pid: int(re.search(r"RssAnon:\s+(\d+)", Path(f"/proc/{t.pid}/status").read_text())[1])
            / 1024
            for t in (lean_template, ipython_template)
        }
        assert heap[lean_template.pid] < heap[ipython_template.pid] - 10, heap
        code = "import sys; print([m for m in ('IPython', 'ipykernel') if m in sys.modules])"
        assert run(lean, code) == "[]\n"
        assert ipython.execute("get_ipython().__class__.__name__").text == "'ZMQInteractiveShell'"
        # IPython's display still reaches the lean kernel's output when code imports it.
        out = lean.execute("import IPython.display as d; d.display({'text/plain': 'hi'}, raw=True)")
        assert out.ok and out.outputs == [{"text/plain": "hi"}]


def test_matplotlib_figures_come_back_from_a_forked_kernel() -> None:
    with forked() as session:
        out = session.execute(
            "import matplotlib.pyplot as plt\n"
            "plt.figure(figsize=(2, 1)); plt.plot([0, 1], [1, 0]); plt.show()"
        )
        assert out.ok, out.error
        assert [image.source for image in out.images] == ["figure"]


def test_no_kernel_can_find_another_kernels_key_in_its_memory() -> None:
    """The template never reads a request, so no kernel inherits another kernel's key."""
    with forked() as first, forked() as second:
        keys = [
            json.loads(Path(s.connection_file).read_text())["key"]
            for s in (first.host, second.host)
        ]
        # Halves, so the scanning code itself never holds a whole key.
        halves = [(key[:16].encode(), key[16:].encode()) for key in keys]
        code = f"""
            found = set()
            halves = {halves!r}
            with open('/proc/self/maps') as maps, open('/proc/self/mem', 'rb', 0) as mem:
                for line in maps:
                    span, perms = line.split()[:2]
                    if not perms.startswith('r'):
                        continue
                    start, end = (int(x, 16) for x in span.split('-'))
                    for offset in range(start, end, 1 << 24):
                        try:
                            mem.seek(offset)
                            chunk = mem.read(min(1 << 24, end - offset) + 64)
                        except (OSError, OverflowError, ValueError):
                            break
                        for index, (head, tail) in enumerate(halves):
                            at = chunk.find(head)
                            while at >= 0:
                                if chunk[at + len(head):at + len(head) + len(tail)] == tail:
                                    found.add(index)
                                    break
                                at = chunk.find(head, at + 1)
            print(sorted(found))
        """
        found = json.loads(run(second, code))
        assert 1 in found  # the scan works: it finds its own key
        assert 0 not in found  # and never the other kernel's


def test_random_state_is_each_kernels_own() -> None:
    with forked() as first, forked() as second:
        code = "import random\nprint(np.random.randint(1 << 30), random.getrandbits(30))"
        assert run(first, code) != run(second, code)


def test_time_limit_restart_and_exit_status_of_a_forked_kernel() -> None:
    with forked() as session:
        session.put_image(0, Image.new("RGB", (8, 8), "red"))
        run(session, "state = 1")
        out = session.execute("while True: pass", timeout=1)
        assert out.timed_out
        assert run(session, "print('answers')") == "answers\n"  # interrupted (or restarted)
        first_pid = session.pid
        session.restart()
        assert session.pid != first_pid and wait_gone(first_pid)
        assert session.execute("state").error.name == "NameError"
        out = session.execute("result = image", image=0, collect=("result",))
        assert out.result_images[0].image.getpixel((0, 0)) == (255, 0, 0)  # images restored
        died = session.execute("import os; os._exit(3)")
        assert died.error.name == "KernelDied" and "exit code 3" in died.error.value


@pytest.mark.parametrize("start", ["exec", "fork"])
def test_the_jails_init_reaps_orphans_and_passes_on_the_cpu_limit(start: str) -> None:
    """The kernel is PID 2 under a reaping init, in both ways of starting the namespace jail."""
    limits = KernelLimits(timeout=60, cpu_seconds=2, memory_bytes=2 * 1024**3)
    with KernelSession(limits=limits, jail="namespaces", start=start) as session:
        code = """
            import os, subprocess, time
            for _ in range(5):  # each leaves an orphan that exits at once
                subprocess.run(['sh', '-c', '(sleep 0.1; exit 0) & exit 0'])
            time.sleep(1)
            print(os.getpid(), os.getppid())
        """
        assert run(session, code).split() == ["2", "1"]
        zombies = [pid for pid in members(session) if psutil.Process(pid).status() == "zombie"]
        assert zombies == []
        out = session.execute("x = 0\nwhile True:\n    x += 1")
        assert out.error.name == "KernelDied" and "SIGXCPU" in out.error.value


def test_close_leaves_no_process_and_the_template_reaps_its_children() -> None:
    session = forked()
    run(session, "import subprocess\nchild = subprocess.Popen(['sleep', '300'])")
    pids = members(session)
    assert len(pids) >= 3  # supervisor, jail init (the kernel), the sleeper
    folder, cgroups = session.root, list(session.host.cgroup.paths)
    supervisor = session.pid
    session.close()
    assert all(wait_gone(pid) for pid in pids)
    assert not folder.exists() and not [p for p in cgroups if p.exists()]
    deadline = time.monotonic() + 5
    while psutil.pid_exists(supervisor) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not psutil.pid_exists(supervisor)  # reaped by the template, not a zombie


def test_killing_the_template_kills_its_kernels_and_the_next_request_restarts_it() -> None:
    with forked() as session:
        run(session, "state = 'before'")
        tpl = template()
        old_pid, starts = tpl.pid, tpl.starts
        kernel_pids = members(session)
        spare = one_spare(old_pid, {session.pid})
        os.kill(old_pid, signal.SIGKILL)  # the template is this process's own child
        assert all(wait_gone(pid) for pid in kernel_pids)  # nothing runs on unmanaged
        assert wait_gone(spare.pid)  # nor does its spare
        out = session.execute("print('after')")
        assert out.restarted and out.stdout == "after\n"
        assert tpl.starts == starts + 1 and tpl.pid != old_pid
        assert session.execute("state").error.name == "NameError"


def test_an_idle_forked_kernel_costs_less_memory_than_a_cold_one() -> None:
    """Private memory (USS: pages no other process maps) over every process of a kernel.

    PSS would split the template's shared pages among however many kernels run, so the
    number would say more about the count than about one kernel.
    """
    with KernelSession(limits=LIMITS, jail="namespaces", start="exec") as cold:
        cold.execute("pass")
        time.sleep(0.5)
        cold_uss = memory_mib(cold, "uss")
        sessions = [forked() for _ in range(3)]
        try:
            for session in sessions:
                session.execute("pass")
            time.sleep(0.5)
            forked_uss = max(memory_mib(session, "uss") for session in sessions)
            forked_pss = max(memory_mib(session, "pss") for session in sessions)
        finally:
            for session in sessions:
                session.close()
    assert forked_uss < 0.5 * cold_uss, (forked_uss, cold_uss)
    assert forked_uss < forked_pss


def test_a_late_reply_to_a_start_that_timed_out_is_not_taken_for_the_next_one() -> None:
    """A stalled template answers a request its host gave up on: that answer names no
    later kernel, and the child it names is ended, so no session closes another's kernel."""
    import threading

    quick = KernelLimits(
        timeout=20, memory_bytes=2 * 1024**3, disk_bytes=64 * MiB, startup_timeout=1.5
    )
    with forked() as first:
        run(first, "pass")
        tpl = template()
        time.sleep(0.3)  # its spare is forked ahead
        os.kill(tpl.pid, signal.SIGSTOP)  # the template is this process's own child
        failed: list[BaseException] = []

        def start_late() -> None:
            try:
                KernelSession(limits=quick, start="fork", isolation="strict").start().close()
            except BaseException as exc:  # the start times out: what it raised is kept
                failed.append(exc)

        late = threading.Thread(target=start_late)
        late.start()
        time.sleep(2.5)
        os.kill(tpl.pid, signal.SIGCONT)
        late.join(30)
        assert failed, "a start against a stopped template should have failed"
        with forked() as second, forked() as third:
            for session in (second, third):
                assert session._km.process.pid == session.host.jail_pid
            run(second, "kept = 'second'")
            third.close()
            out = second.execute("print(kept)")
            assert out.ok and not out.restarted and out.stdout == "second\n"
        orphans = [
            child
            for child in psutil.Process(tpl.pid).children()
            if child.status() != psutil.STATUS_ZOMBIE and child.name() == "cv-init"
        ]
        assert [child.pid for child in orphans] == [first.host.jail_pid]


def test_a_fork_that_fails_fails_that_start_alone() -> None:
    """Out of processes, the template answers that start with the error and serves on:
    the kernels it already runs keep running, and starts work again once forks do."""
    from langchain_codevision.kernel.cgroups import KernelCgroup

    with forked() as first:
        run(first, "kept = 'first'")
        tpl = template()
        old_pid = tpl.pid
        time.sleep(0.3)  # its spare is forked ahead, outside the cgroup below
        group = KernelCgroup.create(
            f"{os.getpid()}-template-test", max_processes=1, memory_bytes=None
        )
        try:
            for path in group.paths:  # the template, this process's own child, alone in it
                (path / "cgroup.procs").write_text(str(old_pid))
            with forked() as second:  # the spare takes it; the next spare cannot be forked
                run(second, "kept = 'second'")
                time.sleep(0.3)
                with pytest.raises(Exception, match="could not fork a kernel"):
                    forked()
                assert tpl.pid == old_pid
                for session, name in ((first, "first"), (second, "second")):
                    out = session.execute("print(kept)")
                    assert out.ok and not out.restarted and out.stdout == f"{name}\n"
                for path in group.paths:
                    if (path / "pids.max").exists():
                        (path / "pids.max").write_text("max")
                with forked() as third:
                    assert run(third, "print('third')") == "third\n"
                assert tpl.pid == old_pid
        finally:
            tpl.stop()  # it is in the cgroup made here: stopped, then the cgroup goes
            group.remove()
