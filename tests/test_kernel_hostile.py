"""Hostile model-written code: every case ends in a clear result and a usable kernel."""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest
from PIL import Image

from langchain_codevision.kernel import KernelLimits, KernelPool, KernelSession
from tests.conftest import kernel_children

MiB = 1024**2


@pytest.fixture(scope="module")
def hostile() -> KernelSession:
    limits = KernelLimits(
        timeout=3,
        interrupt_grace=1.5,
        memory_bytes=2 * 1024**3,
        file_size_bytes=8 * MiB,
        max_output_chars=5_000,
    )
    session = KernelSession(limits=limits).start()
    session.put_image(0, Image.new("RGB", (32, 16), "white"))
    yield session
    session.close()


def assert_usable(session: KernelSession) -> None:
    out = session.execute("print(image.size)", image=0)
    assert out.ok, out.error
    assert out.stdout.strip() == "(32, 16)"


def test_infinite_loop_is_interrupted_and_state_survives(hostile: KernelSession) -> None:
    hostile.execute("survivor = 'kept'")
    out = hostile.execute("while True:\n    pass")
    assert out.timed_out and not out.restarted
    assert out.error.name == "Timeout"
    assert "interrupted (variables are kept)" in out.error.value
    assert "KeyboardInterrupt" in out.error.traceback
    assert hostile.execute("survivor").text == "'kept'"
    assert_usable(hostile)


def test_code_that_swallows_interrupts_gets_the_kernel_restarted(hostile: KernelSession) -> None:
    hostile.execute("survivor = 'lost'")
    code = (
        "import time\n"
        "while True:\n"
        "    try:\n"
        "        time.sleep(0.05)\n"
        "    except KeyboardInterrupt:\n"
        "        pass\n"
    )
    out = hostile.execute(code)
    assert out.timed_out and out.restarted
    assert "did not stop when interrupted; the kernel was restarted" in out.error.value
    assert hostile.execute("'survivor' in globals()").text == "False"
    assert_usable(hostile)  # registered images come back after the restart


def test_os_exit_reports_kernel_death(hostile: KernelSession) -> None:
    out = hostile.execute("import os\nos._exit(3)")
    assert out.error.name == "KernelDied" and "exit code 3" in out.error.value
    assert out.restarted and not out.timed_out
    assert_usable(hostile)


def test_segfault_reports_the_signal(hostile: KernelSession) -> None:
    out = hostile.execute("import ctypes\nctypes.string_at(0)")
    assert out.error.name == "KernelDied" and "SIGSEGV" in out.error.value
    assert out.restarted
    assert_usable(hostile)


def test_huge_allocation_is_a_memory_error(hostile: KernelSession) -> None:
    out = hostile.execute("block = bytearray(40 * 1024**3)")
    assert out.error.name == "MemoryError"
    arr = hostile.execute("import numpy as np\nbig = np.ones((30 * 1024**3,), np.uint8)")
    assert arr.error.name in ("MemoryError", "_ArrayMemoryError")
    assert "Unable to allocate" in arr.error.value
    assert not out.restarted and not arr.restarted
    assert_usable(hostile)


def test_output_flood_is_truncated_at_the_source(hostile: KernelSession) -> None:
    started = time.monotonic()
    out = hostile.execute(
        "print('x' * 100_000_000)\nfor _ in range(100_000):\n    print('y' * 100)"
    )
    assert out.ok, out.error
    assert out.truncated
    assert len(out.stdout) < 5_200
    assert "[... output truncated: more than 5000 characters ...]" in out.stdout
    assert time.monotonic() - started < 60  # a sanity bound, not a speed assertion
    assert_usable(hostile)


def test_flood_through_the_raw_file_descriptor_is_capped_by_the_host(
    hostile: KernelSession,
) -> None:
    out = hostile.execute("import os\nfor _ in range(200):\n    os.write(1, b'z' * 1000)")
    assert out.ok, out.error
    assert len(out.stdout) <= 5_000 + 100
    assert out.truncated


def test_huge_expression_text_is_truncated(hostile: KernelSession) -> None:
    out = hostile.execute("'a' * 1_000_000")
    assert out.truncated and len(out.text) < 5_200


def test_writing_a_huge_file_fails_cleanly(hostile: KernelSession) -> None:
    code = (
        "with open('big.bin', 'wb') as handle:\n"
        "    for _ in range(64):\n"
        "        handle.write(b'0' * (1024 * 1024))"
    )
    out = hostile.execute(code)
    assert out.error.name == "OSError" and "File too large" in out.error.value
    assert not out.restarted
    assert_usable(hostile)


def test_network_is_unreachable(hostile: KernelSession) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    accepted: list[object] = []
    server.settimeout(3)
    watcher = threading.Thread(target=lambda: accepted.append(_accept(server)), daemon=True)
    watcher.start()
    out = hostile.execute(
        f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)"
    )
    watcher.join(5)
    server.close()
    assert out.error.name in ("ConnectionRefusedError", "OSError")
    assert accepted == [None]  # the host's listening socket never saw a connection
    outside = hostile.execute("import socket\nsocket.create_connection(('1.1.1.1', 80), timeout=2)")
    assert "Network is unreachable" in outside.error.value
    assert "net" in hostile.isolation.split("+") and out.isolation == hostile.isolation


def _accept(server: socket.socket) -> object:
    try:
        conn, _ = server.accept()
    except OSError:
        return None
    conn.close()
    return "connected"


def test_secrets_are_not_in_the_kernel_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-should-not-leak")
    monkeypatch.setenv("HF_TOKEN", "hf-should-not-leak")
    monkeypatch.setenv("MY_SERVICE_SECRET", "s3cr3t")
    with KernelSession(env={"VISIBLE_SETTING": "yes"}) as session:
        out = session.execute(
            "import os\n"
            "print(sorted(k for k in os.environ if 'KEY' in k or 'TOKEN' in k or 'SECRET' in k))\n"
            "print(os.environ.get('VISIBLE_SETTING'))\n"
            "print(os.getcwd() == os.environ['HOME'])"
        )
    assert out.stdout.splitlines() == ["[]", "yes", "True"]


def test_host_environment_is_not_readable_through_proc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-should-not-leak")
    with KernelSession() as session:
        out = session.execute(f"open('/proc/{os.getpid()}/environ', 'rb').read()")
    assert out.error.name in ("FileNotFoundError", "PermissionError")  # another PID namespace


def test_private_working_directory_is_removed_on_close() -> None:
    session = KernelSession().start()
    out = session.execute("open('note.txt', 'w').write('hi')\nimport os\nprint(os.getcwd())")
    assert out.stdout.strip() == str(session.workdir) == "/run/cv/work"  # inside the jail
    folder = session.root
    assert folder is not None and folder.exists()
    session.close()
    assert not folder.exists()


def test_fifty_sessions_leave_no_kernel_behind() -> None:
    before = {p.pid for p in kernel_children()}
    with KernelPool(size=2, recycle="replace") as pool:
        for index in range(50):
            with pool.session() as session:
                if index % 10 == 0:
                    session.execute("import os\nos._exit(1)")
                assert session.execute(f"print({index})").stdout == f"{index}\n"
    time.sleep(0.5)
    leftover = [p for p in kernel_children() if p.pid not in before]
    assert leftover == []


def test_cpu_time_limit_ends_a_runaway_kernel() -> None:
    limits = KernelLimits(timeout=60, cpu_seconds=3)
    with KernelSession(limits=limits) as session:
        out = session.execute("x = 0\nwhile True:\n    x += 1")
        assert out.error.name == "KernelDied" and "SIGXCPU" in out.error.value  # soft, 1 s early
        assert out.restarted and not out.timed_out
        assert session.execute("print('back')").stdout == "back\n"


def test_a_vanished_result_file_is_a_clear_error(hostile: KernelSession) -> None:
    out = hostile.execute(
        "import os\n"
        "_orig = __cv_runtime__.save\n"
        "def _save(img, *rest):\n"
        "    info = _orig(img, *rest)\n"
        "    os.unlink(info['buffer'])\n"
        "    return info\n"
        "__cv_runtime__.save = _save\n"
        "result = image",
        image=0,
        collect=("result",),
    )
    hostile.execute("__cv_runtime__.save = _orig")
    assert out.error.name == "ResultError" and "could not read an image" in out.error.value
    assert out.result_images == []
