"""The jail holds: hostile model code cannot reach the host, sibling kernels or the next episode.

Every attack runs as code in a real kernel, once per way of starting a jailed kernel
(bubblewrap, the package's own namespace jail, and that jail forked from the preloaded
kernel template), and each test checks both that the attack failed and that what it aimed
at is untouched. Kill attempts aim at throwaway processes the test starts.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest
from PIL import Image

from langchain_codevision.kernel import KernelLimits, KernelPool, KernelSession
from langchain_codevision.kernel.hostdirs import UID_BASE
from langchain_codevision.kernel.jail import KERNEL_LIB, backend_support, readonly_paths

MiB = 1024**2
BACKENDS = ["bwrap", "namespaces", "fork"]
LIMITS = KernelLimits(
    timeout=10,
    memory_bytes=2 * 1024**3,
    file_size_bytes=8 * MiB,
    disk_bytes=64 * MiB,
    max_processes=32,
    max_result_pixels=4_000_000,
)


def jail(backend: str) -> dict[str, str]:
    """Session options for one way of starting a jailed kernel."""
    if backend == "fork":
        return {"jail": "namespaces", "start": "fork"}
    return {"jail": backend, "start": "exec"}


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    reason = backend_support(jail(request.param)["jail"])
    assert reason is None, f"the {request.param} jail must work on the test machine: {reason}"
    return request.param


@pytest.fixture(scope="module")
def pair(backend: str):
    """Two jailed kernels side by side: an attacker and its sibling victim."""
    attacker = KernelSession(limits=LIMITS, **jail(backend), isolation="strict").start()
    victim = KernelSession(limits=LIMITS, **jail(backend), isolation="strict").start()
    victim.put_image(0, Image.new("RGB", (40, 20), "blue"))
    victim.execute("secret_value = 'victim-secret'\nopen('note.txt', 'w').write('private')")
    yield attacker, victim
    attacker.close()
    victim.close()


def run(session: KernelSession, code: str) -> str:
    out = session.execute(textwrap.dedent(code))
    assert out.ok, f"{out.error}\n{out.error.traceback if out.error else ''}"
    return out.stdout


def test_every_core_layer_is_in_force(pair) -> None:
    attacker, _ = pair
    out = attacker.execute("print(1)")
    for layer in ("uid", "user", "pid", "mount", "net", "ipc", "cgroup", "landlock-fs", "seccomp"):
        assert layer in out.isolation.split("+") or out.isolation.count(layer), out.isolation
    assert "rlimits(AS,CPU,FSIZE,NOFILE,CORE,NPROC)" in out.isolation
    ids = run(attacker, "import os; print(os.getuid(), os.getgid(), os.getgroups())")
    assert ids.split()[:2] == ["65534", "65534"]
    host_uid = os.stat(f"/proc/{attacker.host.jail_pid}").st_uid
    assert host_uid >= UID_BASE  # its own unprivileged host uid, not root


def test_sibling_kernel_is_unreachable(pair) -> None:
    attacker, victim = pair
    probe = f"""
        import glob, os, socket
        found = [p for pattern in ('/tmp/**/kernel.json', '/run/**/kernel.json', '/dev/shm/**/*')
                 for p in glob.glob(pattern, recursive=True)]
        print(sorted(found))
        for path in ({victim.host.connection_file!r}, {str(victim.host.dir)!r},
                     '/proc/{victim.host.jail_pid}/root/run/cv/kernel.json'):
            try:
                open(path).read()
                print('READ', path)
            except (FileNotFoundError, PermissionError, IsADirectoryError):
                print('denied')
        sock = socket.socket(socket.AF_UNIX)
        try:
            sock.connect({victim.host.ipc_prefix + "-1"!r})
            print('CONNECTED')
        except OSError:
            print('no socket')
        print(sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))
    """
    lines = run(attacker, probe).splitlines()
    assert lines[0] == "['/run/cv/kernel.json']"  # only its own connection file
    assert lines[1:4] == ["denied"] * 3 and lines[4] == "no socket"
    assert max(json.loads(lines[5])) < 100  # only the jail's own few processes
    assert victim.execute("print(secret_value)").stdout == "victim-secret\n"


def test_cross_kernel_execute_is_impossible(pair) -> None:
    attacker, victim = pair
    code = f"""
        from jupyter_client import BlockingKernelClient
        client = BlockingKernelClient()
        try:
            client.load_connection_file({victim.host.connection_file!r})
            print('LOADED')
        except OSError as exc:
            print(type(exc).__name__)
    """
    assert run(attacker, code).strip() in ("FileNotFoundError", "PermissionError")
    assert victim.execute("print(secret_value)").stdout == "victim-secret\n"


def test_host_files_are_invisible_and_unwritable(pair, tmp_path: Path) -> None:
    attacker, _ = pair
    secret = tmp_path / "host-secret.txt"
    secret.write_text("host secret")
    package_file = KERNEL_LIB / "__init__.py"
    before = package_file.read_bytes()
    code = f"""
        attempts = {{'read': [{str(secret)!r}, '/etc/shadow', '/root/.bash_history'],
                    'write': [{str(package_file)!r}, '/codevision-lib/__init__.py',
                              '/codevision-lib/_launch.py', '/etc/codevision-pwned', '/root/pwned',
                              '/usr/local/bin/pwned', {str(tmp_path / "pwned")!r}]}}
        for path in attempts['read']:
            try:
                open(path).read(); print('READ', path)
            except OSError as exc:
                print(type(exc).__name__)
        for path in attempts['write']:
            try:
                open(path, 'a').write('payload'); print('WROTE', path)
            except OSError as exc:
                print(type(exc).__name__)
    """
    lines = run(attacker, code).splitlines()
    assert not [line for line in lines if line.startswith(("READ", "WROTE"))], lines
    assert package_file.read_bytes() == before
    assert not (tmp_path / "pwned").exists() and not Path("/etc/codevision-pwned").exists()


def test_host_processes_cannot_be_signalled(pair) -> None:
    attacker, _ = pair
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        code = f"""
            import os, signal
            for pid, sig in (({bystander.pid}, signal.SIGKILL), ({bystander.pid}, signal.SIGSTOP),
                             (os.getppid() or 1, signal.SIGKILL), (-1, signal.SIGKILL)):
                try:
                    os.kill(pid, sig); print('sent', pid)
                except OSError as exc:
                    print(type(exc).__name__)
        """
        out = attacker.execute(textwrap.dedent(code))
        time.sleep(0.3)
        assert bystander.poll() is None  # alive
        status = Path(f"/proc/{bystander.pid}/status").read_text()
        assert "State:\tS" in status  # not stopped
        assert out.stdout.splitlines()[:2] == ["ProcessLookupError", "ProcessLookupError"]
    finally:
        bystander.kill()
        bystander.wait()
    assert attacker.execute("print('still here')").stdout == "still here\n"


def test_killing_its_parent_cannot_hurt_the_host(backend: str) -> None:
    """A throwaway host runs the kernel; the kernel tries to kill and freeze that host."""
    script = f"""
        import os
        from langchain_codevision.kernel import KernelSession
        with KernelSession(**{jail(backend)!r}, isolation='strict') as session:
            code = ("import os, signal\\n"
                    "for target in (os.getppid(), {{host}}):\\n"
                    "    for sig in (signal.SIGSTOP, signal.SIGKILL):\\n"
                    "        try: os.kill(target, sig)\\n"
                    "        except OSError: pass\\n").format(host=os.getpid())
            session.execute(code)
            print('host alive:', session.execute("print('kernel alive')").stdout.strip())
    """
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "host alive: kernel alive" in done.stdout


def test_limits_cannot_be_raised(pair) -> None:
    attacker, _ = pair
    code = """
        import resource
        for name in ('AS', 'FSIZE', 'NOFILE', 'NPROC'):
            which = getattr(resource, 'RLIMIT_' + name)
            soft, hard = resource.getrlimit(which)
            try:
                resource.setrlimit(which, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
                print(name, 'RAISED')
            except (ValueError, OSError):
                print(name, soft == hard and hard != resource.RLIM_INFINITY)
    """
    expected = ["AS", "True", "FSIZE", "True", "NOFILE", "True", "NPROC", "True"]
    assert run(attacker, code).split() == expected


def test_fork_loop_stops_inside_the_jail(backend: str) -> None:
    with KernelSession(limits=LIMITS, **jail(backend)) as session:
        code = """
            import os, time
            children, error = [], None
            for _ in range(500):
                try:
                    pid = os.fork()
                except OSError as exc:
                    error = type(exc).__name__
                    break
                if pid == 0:
                    time.sleep(3)
                    os._exit(0)
                children.append(pid)
            print(len(children), error)
        """
        count, error = run(session, code).split()
        assert int(count) < 32 and error == "BlockingIOError"
    bystander = subprocess.run(
        [sys.executable, "-c", "print('host can fork')"], capture_output=True
    )
    assert bystander.stdout == b"host can fork\n"


def test_memory_bomb_of_many_processes_stops_at_the_jail_limit(backend: str) -> None:
    limits = KernelLimits(timeout=120, memory_bytes=2048 * MiB, disk_bytes=64 * MiB)
    with KernelSession(limits=limits, **jail(backend)) as session:
        code = """
            import os, subprocess, sys, time
            grab = ("import time\\nblock = bytes([1]) * (800 * 1024 * 1024)\\n"
                    "open('/tmp/allocated-%d', 'w').close()\\ntime.sleep(300)")
            children = [subprocess.Popen([sys.executable, '-c', grab % i]) for i in range(4)]
            def holding(i):  # allocated its 800 MiB and still alive
                return children[i].poll() is None and os.path.exists('/tmp/allocated-%d' % i)
            deadline = time.monotonic() + 100  # each child either holds its block or died
            while time.monotonic() < deadline and not all(
                    holding(i) or children[i].poll() is not None for i in range(4)):
                time.sleep(0.1)
            time.sleep(0.5)
            print(sum(holding(i) for i in range(4)))
            for child in children:
                child.kill()
        """
        out = session.execute(textwrap.dedent(code))
        if out.ok:
            assert int(out.stdout) <= 2  # 4 x 800 MiB never fit the 2 GiB + 64 MiB cgroup
        else:
            assert out.error.name == "KernelDied" and "memory limit" in out.error.value
        assert session.execute("print('usable')").stdout == "usable\n"


def test_tmpfs_quota_holds_for_workdir_tmp_and_shm(pair) -> None:
    attacker, _ = pair
    code = """
        import os
        written = 0
        try:
            for index in range(40):
                folder = ('/tmp', '/dev/shm', '.')[index % 3]
                with open(f'{folder}/fill-{index}', 'wb') as handle:
                    handle.write(b'0' * (4 * 1024 * 1024))
                written += 4
        except OSError as exc:
            print(written, exc.errno)
        for folder in ('/tmp', '/dev/shm', '.'):
            for name in os.listdir(folder):
                if name.startswith('fill-'):
                    os.unlink(os.path.join(folder, name))
    """
    written, errno = run(attacker, code).split()
    assert int(written) <= 64 and errno == "28"  # ENOSPC at the 64 MiB quota


def test_network_and_host_sockets_are_unreachable(pair, tmp_path: Path) -> None:
    attacker, _ = pair
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    tcp.listen()
    abstract = socket.socket(socket.AF_UNIX)
    abstract_name = f"\0codevision-test-{os.getpid()}"
    abstract.bind(abstract_name)
    abstract.listen()
    path_socket = socket.socket(socket.AF_UNIX)
    path_socket.bind(str(tmp_path / "host.sock"))
    path_socket.listen()
    try:
        code = f"""
            import socket
            attempts = [(socket.AF_INET, ('127.0.0.1', {tcp.getsockname()[1]})),
                        (socket.AF_INET, ('1.1.1.1', 80)),
                        (socket.AF_UNIX, {abstract_name!r}),
                        (socket.AF_UNIX, {str(tmp_path / "host.sock")!r})]
            for family, address in attempts:
                sock = socket.socket(family)
                sock.settimeout(2)
                try:
                    sock.connect(address); print('CONNECTED')
                except OSError as exc:
                    print(type(exc).__name__)
        """
        lines = run(attacker, code).splitlines()
        assert "CONNECTED" not in lines and len(lines) == 4
        for server in (tcp, abstract, path_socket):
            server.settimeout(0.2)
            with pytest.raises(TimeoutError):
                server.accept()
    finally:
        for server in (tcp, abstract, path_socket):
            server.close()


def test_planted_symlinks_cannot_redirect_the_host(pair) -> None:
    attacker, _ = pair
    attacker.put_image(0, Image.new("RGB", (16, 16), "white"))
    _orig = "__cv_runtime__.save"
    out = attacker.execute(
        "import os\n"
        f"_orig_save = {_orig}\n"
        "def _save(img):\n"
        "    info = _orig_save(img)\n"
        "    os.unlink(info['buffer'])\n"
        "    os.symlink('/etc/passwd', info['buffer'])\n"
        "    return info\n"
        f"{_orig} = _save\n"
        "result = image",
        image=0,
        collect=("result",),
    )
    attacker.execute(f"{_orig} = _orig_save\nimport os; os.unlink('/run/cv/px/out.pixels')")
    assert out.error.name == "ResultError" and out.result_images == []
    run(
        attacker,
        "import os\nos.rename('/run/cv/px', '/run/cv/px-real')\nos.symlink('/', '/run/cv/px')",
    )
    with pytest.raises(ValueError, match="could not hand image"):
        attacker.put_image(1, Image.new("RGB", (8, 8)))
    assert not list(Path("/").glob("in-*.npy"))
    run(attacker, "import os\nos.unlink('/run/cv/px')\nos.rename('/run/cv/px-real', '/run/cv/px')")
    attacker.put_image(1, Image.new("RGB", (8, 8)))


@pytest.mark.parametrize(
    ("code", "mode"),
    [
        ("result = Image.new('F', (8, 8), 0.5)", "L"),
        ("result = Image.new('I', (8, 8), 70000)", "L"),
        ("result = Image.new('I;16', (8, 8), 1000)", "L"),
        ("result = Image.new('RGBa', (8, 8), (10, 20, 30, 128))", "RGBA"),
        ("result = Image.new('LA', (8, 8), (10, 200))", "LA"),
        ("result = Image.new('RGB', (8, 8)).convert('HSV')", "RGB"),
        ("result = np.full((8, 8), np.nan)", "L"),
        ("result = np.array([[np.inf, 1.0], [0.5, -np.inf]])", "L"),
        ("result = np.arange(64, dtype=np.int32).reshape(8, 8) * 1000", "L"),
    ],
)
def test_odd_result_modes_reach_the_host_as_standard_images(pair, code: str, mode: str) -> None:
    attacker, _ = pair
    out = attacker.execute(code, image=0, collect=("result",))
    assert out.ok, out.error
    assert out.result_images[0].image.mode == mode
    assert out.result_images[0].png.startswith(b"\x89PNG")


def test_giant_result_is_refused_in_the_kernel(pair) -> None:
    attacker, _ = pair
    out = attacker.execute("result = Image.new('L', (3000, 3000))", image=0, collect=("result",))
    assert out.error.name == "ResultError" and "at most 4000000" in out.error.value
    assert out.result_images == []


def test_daemons_die_with_the_session(backend: str) -> None:
    session = KernelSession(limits=LIMITS, **jail(backend)).start()
    code = """
        import os, subprocess, sys, time
        subprocess.Popen([sys.executable, '-c', 'import os, time\\nos.setsid()\\ntime.sleep(300)'])
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                time.sleep(300)
            os._exit(0)
        time.sleep(1)
    """
    run(session, code)
    members = [int(p) for p in (session.host.cgroup.paths[0] / "cgroup.procs").read_text().split()]
    assert len(members) >= 4  # the jail's init, the kernel and the daemons
    session.close()
    deadline = time.monotonic() + 5
    while (alive := [pid for pid in members if _running(pid)]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert alive == []


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def test_no_state_leaks_between_episodes(backend: str) -> None:
    with KernelPool(size=1, **jail(backend)) as pool:
        with pool.session() as first:
            first_pid = first.pid
            run(
                first,
                """
                import builtins, threading, time
                builtins.print = lambda *a, **k: None
                get_ipython().events.register('pre_run_cell', lambda *a: open('/tmp/spy', 'a'))
                threading.Thread(target=lambda: time.sleep(300), daemon=True).start()
                open('/tmp/marker', 'w').write('episode one')
                """,
            )
        with pool.session() as second:
            assert second.pid != first_pid
            out = run(
                second,
                """
                import os, threading
                print(os.path.exists('/tmp/marker'), os.path.exists('/tmp/spy'),
                      threading.active_count() < 10, type(print).__name__)
                """,
            )
            assert out.split() == ["False", "False", "True", "builtin_function_or_method"]


def test_nothing_is_left_on_the_host_after_close(backend: str) -> None:
    shm_before = set(os.listdir("/dev/shm"))
    session = KernelSession(limits=LIMITS, **jail(backend)).start()
    session.put_image(0, Image.new("RGB", (64, 64)))
    run(session, "open('/dev/shm/x', 'wb').write(b'1' * 1000)\nopen('/tmp/y', 'w').write('y')")
    folder, cgroups = session.root, list(session.host.cgroup.paths)
    session.close()
    assert not folder.exists()
    assert not [p for p in cgroups if p.exists()]
    assert set(os.listdir("/dev/shm")) == shm_before


def test_replacing_its_sockets_cannot_make_the_host_connect_elsewhere(backend, tmp_path) -> None:
    target = tmp_path / "host-service.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(target))
    server.listen()
    server.settimeout(3)
    with KernelSession(limits=LIMITS, **jail(backend)) as session:
        code = f"""
            import json, os, socket
            info = json.load(open('/run/cv/kernel.json'))
            for port in ('hb_port', 'iopub_port'):
                path = '/run/cv/ipc-%d' % info[port]
                os.unlink(path)
                os.symlink({str(target)!r}, path)  # absolute: the host's root if followed
            for fd in map(int, os.listdir('/proc/self/fd')):  # make the host reconnect
                try:
                    sock = socket.socket(fileno=os.dup(fd))
                except OSError:
                    continue
                try:
                    if sock.family == socket.AF_UNIX and sock.getsockname().startswith('/run/cv'):
                        sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                finally:
                    sock.close()
        """
        session.execute(textwrap.dedent(code))
        with pytest.raises(TimeoutError):
            server.accept()  # the host never connected to its own socket through the jail
        assert session.execute("print('answers')").stdout == "answers\n"
    server.close()


def test_forged_replies_cannot_stretch_the_time_limit(pair) -> None:
    attacker, _ = pair
    code = """
        import copy, threading, time
        kernel = get_ipython().kernel  # the lean kernel: its own signing key and sockets
        parent, ident = kernel.get_parent('shell'), list(kernel.idents)
        def forge():
            time.sleep(0.3)
            kernel.publish('status', {'execution_state': 'idle'})
            fake = copy.deepcopy(parent)
            fake['header'] = dict(parent['header'], msg_id='someone-else')
            while True:
                kernel.reply(kernel.shell_socket, ident, fake, 'execute_reply', {'status': 'ok'})
                time.sleep(0.1)
        threading.Thread(target=forge, daemon=True).start()
        time.sleep(600)
    """
    started = time.monotonic()
    out = attacker.execute(textwrap.dedent(code), timeout=2)
    assert out.timed_out and time.monotonic() - started < 30
    attacker.restart()  # the forger thread lives on in that process
    assert attacker.execute("print('fresh')").stdout == "fresh\n"


def test_a_huge_result_description_is_refused_cheaply(pair) -> None:
    attacker, victim = pair
    code = """
        class Huge:
            def __repr__(self):
                return '[' + '0,' * 2_000_000 + ']'
        _saved_collect = __cv_runtime__.collect
        __cv_runtime__.collect = lambda *a, **k: Huge()
        result = 1
    """
    out = attacker.execute(textwrap.dedent(code), collect=("result",))
    attacker.execute("__cv_runtime__.collect = _saved_collect")
    assert out.error.name == "ResultError" and "unusable" in out.error.value
    assert victim.execute("print('unaffected')").stdout == "unaffected\n"


def test_rich_output_floods_stay_within_the_output_limit(pair) -> None:
    attacker, _ = pair
    code = """
        from IPython.display import publish_display_data
        for _ in range(30):
            publish_display_data({'text/html': 'x' * 1_000_000})
    """
    out = attacker.execute(textwrap.dedent(code))
    kept = sum(len(str(v)) for bundle in out.outputs for v in bundle.values())
    assert out.truncated and kept <= LIMITS.max_output_chars


def test_an_oversized_figure_is_dropped_before_decoding(pair) -> None:
    attacker, _ = pair
    code = """
        import base64, io
        from IPython.display import publish_display_data
        buffer = io.BytesIO()
        Image.new('L', (5000, 5000)).save(buffer, format='PNG')
        publish_display_data({'image/png': base64.b64encode(buffer.getvalue()).decode()})
    """
    out = attacker.execute(textwrap.dedent(code))
    assert out.images == [] and out.error.name == "ResultError"
    assert "5000x5000" in out.error.value


@pytest.mark.parametrize(
    "forged",
    [
        "{'application/vnd.codevision.image+json': 'not a dict', 'text/plain': 'x'}",
        "{'application/vnd.codevision.image+json': {'mode': 'L', 'size': [float('inf'), 1],"
        " 'offset': 0, 'length': 1}, 'text/plain': 'x'}",
        "{'image/png': 12345}",
    ],
)
def test_forged_messages_never_raise_out_of_execute(pair, forged: str) -> None:
    attacker, _ = pair
    code = f"from IPython.display import publish_display_data\npublish_display_data({forged})"
    out = attacker.execute(code)
    assert out.truncated or out.error is not None or out.images == []
    assert attacker.execute("print('fine')").stdout == "fine\n"


def test_background_processes_are_held_to_the_cpu_quota(backend: str) -> None:
    limits = KernelLimits(timeout=60, cpu_cores=0.5, max_processes=32)
    with KernelSession(limits=limits, **jail(backend)) as session:
        [cpu] = [p for p in session.host.cgroup.paths if "cpu" in p.parts]
        # A busy shared host must not starve the jail below its quota: weight it up, so the
        # cap (not the competition) is what holds its spinners back.
        (cpu / "cpu.shares").write_text("262144")
        code = """
            import subprocess, sys, time
            spin = ('import time\\nend = time.time() + 30\\n'
                    'while time.process_time() < 1.5 and time.time() < end: pass')
            children = [subprocess.Popen([sys.executable, '-c', spin]) for _ in range(2)]
            for child in children:
                child.wait()
        """
        run(session, code)
        stats = dict(line.split() for line in (cpu / "cpu.stat").read_text().splitlines())
        assert (cpu / "cpu.cfs_quota_us").read_text().strip() == "50000"
        assert int(stats["nr_throttled"]) > 0


def test_exploit_prone_system_calls_are_refused(pair) -> None:
    attacker, _ = pair
    code = """
        import ctypes, errno, platform
        libc = ctypes.CDLL(None, use_errno=True)
        numbers = {'x86_64': {'io_uring_setup': 425, 'bpf': 321, 'perf_event_open': 298,
                              'userfaultfd': 323, 'keyctl': 250, 'ptrace': 101, 'unshare': 272},
                   'aarch64': {'io_uring_setup': 425, 'bpf': 280, 'perf_event_open': 241,
                               'userfaultfd': 282, 'keyctl': 219, 'ptrace': 117, 'unshare': 97}}
        for name, number in numbers[platform.machine()].items():
            result = libc.syscall(number, 0, 0, 0, 0, 0)
            print(name, result == -1 and ctypes.get_errno() == errno.EPERM)
        print('getpid', libc.syscall({'x86_64': 39, 'aarch64': 172}[platform.machine()]) > 0)
    """
    lines = run(attacker, code).split()
    assert lines[1::2] == ["True"] * 8, lines


def test_the_kernel_holds_no_capability_and_makes_no_namespace(pair) -> None:
    """Making the jail's inner user namespace gave its maker every capability there; none
    reaches the kernel, and no ``clone`` makes a namespace (nf_tables in a network
    namespace of its own, say), while threads and child processes still start."""
    attacker, _ = pair
    code = """
        import ctypes, errno, os, platform, subprocess, sys, threading
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syscall.restype = ctypes.c_long
        sets = dict(line.split(':\t') for line in open('/proc/self/status').read().splitlines()
                    if line.startswith('Cap'))
        print('caps', all(int(value, 16) == 0 for value in sets.values()), len(sets))
        clone = {'x86_64': 56, 'aarch64': 220}[platform.machine()]
        flags = {'net': 0x40000000, 'mount': 0x20000, 'pid': 0x20000000, 'uts': 0x04000000,
                 'ipc': 0x08000000, 'user': 0x10000000, 'cgroup': 0x02000000}
        for name, flag in flags.items():
            result = libc.syscall(clone, flag | 17, 0, 0, 0, 0)  # 17: SIGCHLD
            if result == 0:
                os._exit(0)  # a child in a new namespace: the test fails below
            if result > 0:
                os.waitpid(result, 0)
            print(name, result == -1 and ctypes.get_errno() == errno.EPERM)
        result = libc.syscall(435, 0, 0)  # clone3: its flags are out of a filter's reach
        print('clone3', result == -1 and ctypes.get_errno() == errno.ENOSYS)
        result = libc.syscall(430, b'tmpfs', 0)  # fsopen
        print('fsopen', result == -1 and ctypes.get_errno() == errno.EPERM)
        box = []
        worker = threading.Thread(target=lambda: box.append(1))
        worker.start(); worker.join()
        print('thread', box == [1])
        done = subprocess.run([sys.executable, '-c', 'print(7)'], capture_output=True, text=True)
        print('child', done.stdout.strip() == '7')
    """
    lines = run(attacker, code).split()
    assert lines[:3] == ["caps", "True", "5"], lines
    assert lines[4::2] == ["True"] * 11, lines


def test_the_whole_jail_runs_in_the_kernels_cgroups(pair) -> None:
    """The jail's init is moved into the cgroups while it builds its root (not before): the
    kernel it forks afterwards is born there, and the cgroup namespace, made after the move,
    shows the kernel's own cgroup as its root."""
    attacker, _ = pair
    paths = attacker.host.cgroup.paths
    assert paths  # pids and memory at least, on this machine
    # /sys/fs/cgroup/<controller>/codevision/<kernel> (v1), /sys/fs/cgroup/codevision/<kernel>
    wanted = {(p.parts[4] if len(p.parts) > 6 else ""): "/" + "/".join(p.parts[-2:]) for p in paths}

    def cgroups_of(pid: int) -> dict[str, str]:
        found = {}
        for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            found.update({name: path for name in controllers.split(",")})
        return found

    def tree(pid: int) -> list[int]:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        return [pid, *(d for child in children for d in tree(int(child)))]

    jail = tree(attacker.host.jail_pid)
    assert len(jail) >= 2  # the init and the kernel
    for pid in jail:
        seen = cgroups_of(pid)
        assert {c: seen.get(c) for c in wanted} == wanted, pid
    inside = run(attacker, "print(open('/proc/self/cgroup').read())")
    for line in inside.split():
        _, controllers, path = line.split(":", 2)
        if set(controllers.split(",")) & set(wanted):
            assert path == "/", inside


MOVE_ITSELF = """
import json, os, sys, threading
import _supervisor
paths = json.loads(sys.argv[1])
def where(tid):
    fields = [line.split(":", 2) for line in open(f"/proc/self/task/{tid}/cgroup")]
    return sorted(path.strip() for _, kind, path in fields if kind in ("pids", "memory"))
if sys.argv[2] == "threads":
    stop = threading.Event()
    threading.Thread(target=stop.wait, daemon=True).start()
rest = _supervisor._enter_cgroups(paths)
moved = {tid: where(tid) for tid in os.listdir("/proc/self/task")}
_supervisor._join_cgroups(rest, os.getpid())
print(json.dumps({"rest": rest, "moved": moved,
                  "after": {tid: where(tid) for tid in os.listdir("/proc/self/task")}}))
"""


@pytest.mark.parametrize("threads", ["one", "threads"])
def test_a_process_moves_itself_into_v1_cgroups_only_with_one_thread(threads: str) -> None:
    """The jail's init enters the v1 hierarchies by their ``tasks`` file (no global lock):
    that moves the writing thread alone, so a process with more threads is moved by pid."""
    from langchain_codevision.kernel.cgroups import KernelCgroup

    group = KernelCgroup.create(f"move-test-{os.getpid()}", max_processes=64, memory_bytes=None)
    try:
        paths = [str(path) for path in group.paths]
        if not [p for p in paths if os.path.exists(os.path.join(p, "tasks"))]:
            pytest.skip("cgroup v2 only: nothing moves itself by its tasks file")
        v1 = sorted(p for p in paths if "/pids/" in p or "/memory/" in p)
        done = subprocess.run(
            [sys.executable, "-c", MOVE_ITSELF, json.dumps(paths), threads],
            cwd=KERNEL_LIB,
            env={**os.environ, "PYTHONPATH": str(KERNEL_LIB)},
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        out = json.loads(done.stdout)
        wanted = sorted("/" + "/".join(Path(p).parts[-2:]) for p in v1)
        assert all(seen == wanted for seen in out["after"].values()), out  # every thread
        if threads == "one":
            assert out["rest"] == []  # pids and memory: both v1 hierarchies
            assert all(seen == wanted for seen in out["moved"].values())
        else:
            assert sorted(out["rest"]) == sorted(paths)  # not moved by thread: by pid
            assert len(out["moved"]) == 2 and all(seen != wanted for seen in out["moved"].values())
    finally:
        group.remove()


PROBE_THEN_WAIT = """
import sys
from langchain_codevision.kernel import hostdirs, jail
print(hostdirs.run_root().path, flush=True)
jail.backend_support("namespaces")
"""


def test_a_process_killed_while_it_probes_the_jail_leaves_no_folder() -> None:
    """The probe's folder lies in the run root, which the janitor removes after any death."""
    before = set(Path(tempfile.gettempdir()).glob("codevision-*"))
    child = subprocess.Popen(
        [sys.executable, "-c", PROBE_THEN_WAIT], stdout=subprocess.PIPE, text=True
    )
    root = Path(child.stdout.readline().strip())
    deadline = time.monotonic() + 10
    while not list(root.glob("probe-*")) and time.monotonic() < deadline:
        time.sleep(0.005)
    assert list(root.glob("probe-*")), "the probe ran elsewhere"  # caught in the act
    child.kill()  # this test's own child, mid-probe
    child.wait(timeout=10)
    child.stdout.close()
    deadline = time.monotonic() + 30
    while root.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not root.exists()
    assert set(Path(tempfile.gettempdir()).glob("codevision-*")) <= before


def test_readonly_paths_follow_pythonpath_and_are_the_callers_own(monkeypatch) -> None:
    monkeypatch.delenv("PYTHONPATH", raising=False)
    plain = readonly_paths()
    assert "/var" not in plain and "/usr" in plain
    monkeypatch.setenv("PYTHONPATH", "/var")
    assert "/var" in readonly_paths()  # a new PYTHONPATH is seen at once, not after a while
    monkeypatch.delenv("PYTHONPATH")
    plain.append("/var")  # the caller's copy: the next start's list is not changed by it
    assert "/var" not in readonly_paths()
