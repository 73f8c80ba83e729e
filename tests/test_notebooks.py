"""The notebooks run from top to bottom (executed in a fresh kernel, as a reader would)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def execute(name: str):
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=120, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOKS)}})
    started = time.perf_counter()
    client.execute()
    return notebook, time.perf_counter() - started


def printed(notebook) -> str:
    texts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            texts.append(output.get("text", "") or output.get("data", {}).get("text/plain", ""))
    return "\n".join(texts)


def test_custom_block_notebook_runs_and_tells_its_story():
    notebook, seconds = execute("custom_block.ipynb")
    text = printed(notebook)
    assert "GaussianStateMeans keeps the contract" in text
    assert "SloppyMeans: resample reuses a random key" in text
    assert "Geweke test PASSED" in text and "Geweke test FAILED" in text
    assert "SBC PASSED" in text and "property holds" in text
    assert seconds < 120, f"the notebook took {seconds:.0f} s; keep it under a minute"
