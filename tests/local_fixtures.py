"""Tiny local vision-language checkpoints shared by the local-model tests.

Load the fixtures in a test module with::

    pytest_plugins = ("tests.local_fixtures",)

(after ``pytest.importorskip("torch")``). Each checkpoint is built once per session, in
seconds, from random weights (no downloads).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from langchain_codevision.models.tiny import (
    build_tiny_lora_adapter,
    build_tiny_qwen2_5_vl,
    build_tiny_qwen3_vl,
)


@pytest.fixture(scope="session")
def tiny_vlm_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Qwen2.5-VL checkpoint whose template renders tools (Qwen3-VL style)."""
    return build_tiny_qwen2_5_vl(tmp_path_factory.mktemp("tiny-qwen2_5_vl"), seed=0)


@pytest.fixture(scope="session")
def tiny_vlm_other_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Same architecture, other random weights (for per-call model overrides)."""
    return build_tiny_qwen2_5_vl(tmp_path_factory.mktemp("tiny-qwen2_5_vl-seed1"), seed=1)


@pytest.fixture(scope="session")
def tiny_vlm_stock_template_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Qwen2.5-VL checkpoint with a stock Qwen2.5-VL template (no tool support)."""
    return build_tiny_qwen2_5_vl(
        tmp_path_factory.mktemp("tiny-qwen2_5_vl-stock"), seed=0, chat_template="qwen2_5_vl"
    )


@pytest.fixture(scope="session")
def tiny_qwen3_vl_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Qwen3-VL checkpoint."""
    return build_tiny_qwen3_vl(tmp_path_factory.mktemp("tiny-qwen3_vl"), seed=0)


@pytest.fixture(scope="session")
def tiny_lora_path(tiny_vlm_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA adapter for ``tiny_vlm_path`` with non-zero B weights."""
    return build_tiny_lora_adapter(tiny_vlm_path, tmp_path_factory.mktemp("tiny-lora"), scale=2.0)
