"""The package's own OpenCV calls run on the calling thread (see ``_opencv.py``)."""

from __future__ import annotations

import os

import pytest

from tests.fresh_process import probe_json

PROBE = """
import json, os
import numpy as np
import cv2
default = cv2.getNumThreads()
from langchain_codevision.images import PixelBudget, encode_view
encode_view(np.zeros((1000, 1000, 3), np.uint8), PixelBudget(), "png")  # resizes with OpenCV
print(json.dumps({"default": default, "after": cv2.getNumThreads()}))
"""


def probe(**env: str) -> dict[str, int]:
    """OpenCV's thread count in a fresh process before and after the package's first use."""
    return probe_json(PROBE, env, drop=("OPENCV_FOR_THREADS_NUM", "CODEVISION_OPENCV_SERIAL"))


def test_the_first_use_sets_opencv_to_the_calling_thread() -> None:
    counts = probe()
    assert counts["after"] == 1
    if len(os.sched_getaffinity(0)) > 1:
        assert counts["default"] > 1  # what it was: a pool over the cores


def test_a_thread_count_set_before_the_first_use_stays() -> None:
    code = PROBE.replace("default = cv2.getNumThreads()", "cv2.setNumThreads(3)\ndefault = 3")
    assert probe_json(code, {}, drop=("OPENCV_FOR_THREADS_NUM", "CODEVISION_"))["after"] == 3


@pytest.mark.parametrize(
    ("env", "expected"),
    [({"CODEVISION_OPENCV_SERIAL": "0"}, None), ({"OPENCV_FOR_THREADS_NUM": "3"}, 3)],
)
def test_the_users_choice_is_left_alone(env: dict[str, str], expected: int | None) -> None:
    counts = probe(**env)
    assert counts["after"] == (counts["default"] if expected is None else expected)
    if expected is not None:
        assert counts["default"] == expected  # OpenCV read its own setting
