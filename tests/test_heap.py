"""The host's heap keeps freed pixel buffers for reuse (``langchain_codevision._heap``).

Each check runs in a fresh interpreter, where glibc's mmap threshold is still its 128 KiB
default, and reads ``mallinfo2``: whether an 8 MiB block came from the heap or from a
fresh ``mmap``, and whether the heap kept it once freed.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.fresh_process import probe_json

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(
    not os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc"), reason="glibc's malloc only"
)

PROBE = """
import ctypes, json, sys
sys.path.insert(0, {root!r})

class Info(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
        "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = Info
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
{setup}
before = libc.mallinfo2()
block = libc.malloc(8 << 20)
ctypes.memset(block, 1, 8 << 20)
during = libc.mallinfo2()
libc.free(block)
after = libc.mallinfo2()
print(json.dumps({{
    "applied": applied,
    "mapped": during.hblkhd - before.hblkhd,
    "kept_free": after.fordblks,
}}))
"""

TUNE = "from langchain_codevision._heap import tune_heap\napplied = tune_heap()"


def _probe(setup: str, **env: str) -> dict:
    code = PROBE.format(root=str(ROOT), setup=setup)
    return probe_json(code, env, drop=("MALLOC_", "CODEVISION_"))


def test_a_tuned_heap_serves_and_keeps_a_big_buffer() -> None:
    got = _probe(TUNE)
    assert got["applied"] == {"mmap_threshold": 16 << 20, "trim_threshold": 32 << 20}
    assert got["mapped"] == 0  # from the heap, not a fresh mmap
    assert got["kept_free"] >= 8 << 20  # freed, and kept for the next one


def test_untuned_the_same_buffer_is_mapped_and_given_back() -> None:
    got = _probe(TUNE, CODEVISION_HEAP_TUNING="0")
    assert got["applied"] == {}
    assert got["mapped"] >= 8 << 20
    assert got["kept_free"] < 8 << 20


def test_a_users_own_malloc_setting_is_left_as_it_is() -> None:
    got = _probe(TUNE, MALLOC_MMAP_THRESHOLD_=str(1 << 20))
    assert got["applied"] == {"trim_threshold": 32 << 20}
    assert got["mapped"] >= 8 << 20  # the user's 1 MiB threshold still holds


def test_glibc_tunables_for_malloc_turn_it_off() -> None:
    got = _probe(TUNE, GLIBC_TUNABLES="glibc.malloc.trim_threshold=1048576")
    assert got["applied"] == {}


def test_building_a_graph_tunes_the_heap() -> None:
    setup = (
        "from langchain_codevision import create_codevision_graph\n"
        "from langchain_codevision._heap import tune_heap\n"
        "from tests.scripted_model import ScriptedChatModel\n"
        "create_codevision_graph(ScriptedChatModel(replies=['<answer>x</answer>']))\n"
        "applied = tune_heap()"
    )
    got = _probe(setup)
    assert got["mapped"] == 0 and got["applied"]


def test_the_kernel_io_loop_tunes_the_heap() -> None:
    setup = (
        "from langchain_codevision.kernel._loop import get_loop\n"
        "from langchain_codevision import _heap\n"
        "assert _heap._applied is None\n"
        "get_loop()\n"
        "applied = _heap._applied"
    )
    got = _probe(setup)
    assert got["mapped"] == 0 and got["applied"]
