"""Every notebook under notebooks/ executes top to bottom, offline, without errors.

The notebooks are kept in git without outputs; each is run here in a fresh Jupyter kernel
(nbclient), and must show at least one image inline.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
EXPECTED = {"quickstart", "data_and_training", "evaluation"}


def test_the_three_notebooks_exist_without_outputs() -> None:
    assert {p.stem for p in NOTEBOOKS} >= EXPECTED
    for path in NOTEBOOKS:
        notebook = nbformat.read(path, as_version=4)
        nbformat.validate(notebook)
        for cell in notebook.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, path.name


def _offline_env(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    """The kernel imports this checkout and finds no API key and no model hub."""
    path = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), path])))
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "CODEVISION_MODEL", "CODEVISION_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(home / "hf"))
    monkeypatch.setenv("MPLBACKEND", "Agg")


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _offline_env(monkeypatch, tmp_path)
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()
    outputs = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    ]
    assert [o for o in outputs if o.get("output_type") == "error"] == []
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert images, "the notebook should show at least one image"
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    assert not re.search(r"Traceback \(most recent call last\)", text)
