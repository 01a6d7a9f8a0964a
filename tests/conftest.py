"""Shared fixtures: real kernels, real images."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import numpy as np
import psutil
import pytest
from PIL import Image, ImageDraw

from langchain_codevision.kernel import KernelLimits, KernelSession


def kernel_children() -> list[psutil.Process]:
    """Live ipykernel processes started by this test process."""
    found = []
    for child in psutil.Process(os.getpid()).children(recursive=True):
        try:
            cmdline = child.cmdline()
            is_kernel = any("ipykernel" in part or "_launch.py" in part for part in cmdline)
            if is_kernel and child.status() != psutil.STATUS_ZOMBIE:
                found.append(child)
        except psutil.Error:
            continue
    return found


def wait_gone(pid: int, seconds: float = 10.0) -> bool:
    """Whether process ``pid`` is gone (or a zombie) within ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


@pytest.fixture(scope="module")
def kernel() -> Iterator[KernelSession]:
    """One sandboxed kernel shared by a test module (tests reset what they need)."""
    session = KernelSession(limits=KernelLimits(timeout=10, memory_bytes=2 * 1024**3))
    session.start()
    yield session
    session.close()


@pytest.fixture(scope="session")
def document_image() -> Image.Image:
    """A 1000x1000 page with known text lines (real rendered text, no external files)."""
    image = Image.new("RGB", (1000, 1000), "white")
    draw = ImageDraw.Draw(image)
    for row in range(40):
        draw.text((40, 20 + row * 24), f"Line {row:02d}: the quick brown fox jumps", fill="black")
    draw.rectangle((600, 700, 900, 900), outline="red", width=5)
    return image


@pytest.fixture(scope="session")
def photo() -> Image.Image:
    """A real photograph shipped by scikit-image (falls back to a gradient)."""
    try:
        from skimage import data

        return Image.fromarray(data.astronaut())
    except Exception:  # pragma: no cover - skimage is in the test extra
        ramp = np.linspace(0, 255, 512, dtype=np.uint8)
        return Image.fromarray(np.stack([np.tile(ramp, (512, 1))] * 3, axis=-1))
