"""The lean kernel: a Jupyter kernel of its own, and notebook-like cells without IPython."""

from __future__ import annotations

import sys
import textwrap
import time
from collections.abc import Iterator
from typing import Any

import pytest
from jupyter_client.kernelspec import KernelSpec
from jupyter_client.manager import KernelManager

from langchain_codevision.kernel import KernelLimits, KernelSession
from langchain_codevision.kernel.jail import KERNEL_LIB

LIMITS = KernelLimits(timeout=20, startup_timeout=60)


class LeanKernelManager(KernelManager):
    """A stock jupyter_client manager whose kernel is ``_lean_kernel.py``, unjailed."""

    @property
    def kernel_spec(self) -> KernelSpec:  # type: ignore[override]
        return KernelSpec(
            argv=[sys.executable, str(KERNEL_LIB / "_lean_kernel.py"), "-f", "{connection_file}"],
            display_name="lean",
            language="python",
            interrupt_mode="message",
        )


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    km = LeanKernelManager(transport="ipc")
    km.start_kernel()
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=60)
    yield kc
    kc.stop_channels()
    km.shutdown_kernel(now=True)


def run(kc: Any, code: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The reply content and the IOPub messages of one execute request."""
    msg_id = kc.execute(code)
    messages = []
    while True:
        msg = kc.get_iopub_msg(timeout=20)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            break
        messages.append(msg)
    reply = kc.get_shell_msg(timeout=20)
    assert reply["parent_header"]["msg_id"] == msg_id
    return reply["content"], messages


def of_type(messages: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [msg["content"] for msg in messages if msg["msg_type"] == kind]


def test_a_stock_jupyter_client_speaks_to_it(client: Any) -> None:
    info = client.kernel_info(reply=True, timeout=20)["content"]
    assert info["implementation"] == "codevision-lean"
    assert info["language_info"]["name"] == "python"
    reply, messages = run(client, "print('out')\nx = 40 + 2\nx")
    assert reply["status"] == "ok"
    assert [c["text"] for c in of_type(messages, "stream")] == ["out\n"]
    [shown] = of_type(messages, "execute_result")
    assert shown["data"]["text/plain"] == "42"
    assert shown["execution_count"] == reply["execution_count"]
    assert of_type(messages, "execute_input")[0]["code"].startswith("print")


def iopub_until_idle(kc: Any, msg_id: str) -> list[dict[str, Any]]:
    """Every IOPub message up to the idle status of request ``msg_id``, whoever's."""
    messages = []
    while True:
        msg = kc.get_iopub_msg(timeout=20)
        messages.append(msg)
        mine = msg["parent_header"].get("msg_id") == msg_id
        if mine and msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return messages


def kinds(messages: list[dict[str, Any]], msg_id: str) -> list[str]:
    """The types of the messages published for request ``msg_id``, in order."""
    return [m["msg_type"] for m in messages if m["parent_header"].get("msg_id") == msg_id]


def test_a_quiet_request_publishes_only_what_its_client_reads(client: Any) -> None:
    quiet = {"codevision": {"quiet": True}}
    loud = client.execute("print('before')")
    assert kinds(iopub_until_idle(client, loud), loud)[:2] == ["status", "execute_input"]
    client.get_shell_msg(timeout=20)

    msg = client.session.msg(
        "execute_request", {"code": "print('hi')", "silent": False}, metadata=quiet
    )
    client.shell_channel.send(msg)
    seen = iopub_until_idle(client, msg["header"]["msg_id"])
    assert kinds(seen, msg["header"]["msg_id"]) == ["stream", "status"]
    assert client.get_shell_msg(timeout=20)["content"]["status"] == "ok"

    # quiet and silent: nothing at all on IOPub, only the reply
    silent = client.session.msg(
        "execute_request", {"code": "y = 1", "silent": True}, metadata=quiet
    )
    client.shell_channel.send(silent)
    reply = client.get_shell_msg(timeout=20)
    assert reply["parent_header"]["msg_id"] == silent["header"]["msg_id"]
    after = client.execute("y")
    seen = iopub_until_idle(client, after)
    assert kinds(seen, silent["header"]["msg_id"]) == []
    assert kinds(seen, after)[:2] == ["status", "execute_input"]  # loud again
    assert client.get_shell_msg(timeout=20)["content"]["status"] == "ok"


def test_errors_carry_a_cell_traceback_without_kernel_frames(client: Any) -> None:
    reply, messages = run(client, "def f():\n    return 1 / 0\nf()")
    assert reply["status"] == "error" and reply["ename"] == "ZeroDivisionError"
    [error] = of_type(messages, "error")
    text = "\n".join(error["traceback"])
    assert "Cell In[" in text and "return 1 / 0" in text
    assert "_lean_kernel" not in text


def test_completion_and_completeness(client: Any) -> None:
    complete = client.complete("pri", 3, reply=True, timeout=20)["content"]
    assert "print" in complete["matches"] and complete["cursor_start"] == 0
    verdicts = {}
    for code in ("x = 1", "for i in range(3):", "1 +* 2"):
        msg_id = client.is_complete(code)
        reply = client.get_shell_msg(timeout=20)
        assert reply["parent_header"]["msg_id"] == msg_id
        verdicts[code] = reply["content"]["status"]
    expected = {"x = 1": "complete", "for i in range(3):": "incomplete", "1 +* 2": "invalid"}
    assert verdicts == expected


def test_a_comm_to_an_unknown_target_is_closed(client: Any) -> None:
    msg = client.session.msg("comm_open", {"comm_id": "c1", "target_name": "nobody", "data": {}})
    client.shell_channel.send(msg)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        got = client.get_iopub_msg(timeout=20)
        if got["msg_type"] == "comm_close":
            assert got["content"]["comm_id"] == "c1"
            return
    pytest.fail("no comm_close")


def test_an_interrupt_request_stops_a_cell_and_keeps_the_kernel(client: Any) -> None:
    msg_id = client.execute("import time\nkept = 7\ntime.sleep(30)")
    time.sleep(0.5)
    client.control_channel.send(client.session.msg("interrupt_request", {}))
    while True:
        reply = client.get_shell_msg(timeout=20)
        if reply["parent_header"].get("msg_id") == msg_id:
            break
    assert reply["content"]["ename"] == "KeyboardInterrupt"
    client.control_channel.send(client.session.msg("interrupt_request", {}))  # while idle
    time.sleep(0.2)
    reply, messages = run(client, "kept")
    assert reply["status"] == "ok"
    assert of_type(messages, "execute_result")[0]["data"]["text/plain"] == "7"


@pytest.fixture(scope="module")
def lean() -> Iterator[KernelSession]:
    with KernelSession(limits=LIMITS) as session:
        yield session


def test_cells_behave_like_notebook_cells(lean: KernelSession) -> None:
    assert lean.execute("1 + 1;").text is None  # a trailing semicolon hides the value
    assert lean.execute("import asyncio\nawait asyncio.sleep(0.01)\n'awaited'").text == (
        "'awaited'"
    )
    out = lean.execute("raise SystemExit(3)")
    assert out.error.name == "SystemExit"
    assert lean.execute("print('still here')").stdout == "still here\n"
    out = lean.execute("input('name? ')")
    assert out.error.name == "RuntimeError" and "no stdin" in out.error.value
    assert lean.execute("get_ipython().__class__.__name__").text == "'Shell'"


def test_awaiting_cells_share_one_event_loop(lean: KernelSession) -> None:
    lean.execute("import asyncio, os\nawait asyncio.sleep(0)")
    count = "len(os.listdir('/proc/self/fd'))"
    before = int(lean.execute(count).text)
    for _ in range(30):
        assert lean.execute("await asyncio.sleep(0)").ok
    # A loop per cell would leave 3 descriptors each (90); other tests' leftovers may add one.
    assert int(lean.execute(count).text) - before < 10
    assert lean.execute(
        "task = asyncio.ensure_future(asyncio.sleep(0.05, 'later'))\nawait asyncio.sleep(0)"
    ).ok
    assert lean.execute("await task").text == "'later'"  # a task outlives its cell


def test_ipython_syntax_is_dropped_or_explained(lean: KernelSession) -> None:
    out = lean.execute("%matplotlib inline\nimport matplotlib.pyplot as plt\nplt.plot([0, 1]);")
    assert out.ok, out.error
    assert [image.source for image in out.images] == ["figure"]
    for magic, word in (("%timeit 1 + 1", "'%timeit'"), ("x = 1\n!ls /", "'!ls'")):
        out = lean.execute(magic)
        assert out.error.name == "SyntaxError" and word in out.error.value
        assert "plain Python" in out.error.value
    text = 's = """\n%d items\n!\n"""\nprint(s % 3)'  # such lines inside a string are kept
    assert lean.execute(text).stdout == "\n3 items\n!\n\n"


def test_output_of_child_processes_and_c_code_is_captured(lean: KernelSession) -> None:
    code = """
        import os, subprocess, sys
        subprocess.run([sys.executable, '-c', 'print("from a child")'], check=True)
        os.write(2, 'raw é\\n'.encode())
        print('python')
    """
    out = lean.execute(textwrap.dedent(code))
    assert out.ok, out.error
    assert "from a child\n" in out.stdout and "python\n" in out.stdout
    assert out.stderr == "raw é\n"


def test_a_background_thread_printing_after_its_cell_does_no_harm(lean: KernelSession) -> None:
    code = """
        import threading, time
        def late():
            time.sleep(0.2)
            for _ in range(1000):
                print('late')
        threading.Thread(target=late, daemon=True).start()
    """
    assert lean.execute(textwrap.dedent(code)).ok
    time.sleep(0.5)
    out = lean.execute("print('mine')")
    assert out.ok and out.stdout == "mine\n"  # the thread's text went out with its own cell


def test_an_exception_that_cannot_be_printed_is_still_reported(lean: KernelSession) -> None:
    code = """
        class Odd(Exception):
            def __str__(self):
                raise RuntimeError('no text for you')
        raise Odd()
    """
    out = lean.execute(textwrap.dedent(code))
    assert out.error.name == "Odd" and "unprintable" in out.error.value
    assert lean.execute("print('after')").stdout == "after\n"


def test_figures_left_open_are_shown_after_the_cell(lean: KernelSession) -> None:
    out = lean.execute(
        "import matplotlib.pyplot as plt\nfig, ax = plt.subplots(figsize=(2, 1))\nax.plot([0, 1])"
    )
    assert out.ok, out.error
    assert [image.source for image in out.images] == ["figure"]
    assert lean.execute("len(plt.get_fignums())").text == "0"  # shown figures are closed


def test_the_ipython_shell_is_still_available() -> None:
    with KernelSession(limits=LIMITS, shell="ipython") as session:
        out = session.execute("get_ipython().__class__.__name__")
        assert out.text == "'ZMQInteractiveShell'"
        assert session.execute("%load_ext autoreload").ok
        # no post_reply event in IPython: a registered result gets its own pixels at once,
        # before anything of the user's can run (a pre_execute hook fires before the next
        # cell's pre_run_cell, and for silent requests too)
        first = session.execute(
            "pixels = np.full((4, 4), 7, np.uint8)\n"
            "result = Image.fromarray(pixels)\n"  # on the array's memory
            "hook = lambda *_: pixels.fill(200)\n"
            "get_ipython().events.register('pre_execute', hook)",
            collect=("result",),
            register_as="r",
        )
        assert first.ok and first.result_images[0].image.getpixel((0, 0)) == 7, first.error
        again = session.execute(
            "get_ipython().events.unregister('pre_execute', hook)\n"
            "print(pixels[0, 0], image.getpixel((0, 0)))",
            image="r",
        )
        assert again.stdout.split() == ["200", "7"], again


def test_an_unknown_shell_is_refused() -> None:
    with pytest.raises(ValueError, match="'lean' or 'ipython'"):
        KernelSession(shell="bash")  # type: ignore[arg-type]
