"""The notebooks run from top to bottom (executed in a fresh kernel, as a reader would)."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"

# tests/conftest.py puts 8 virtual CPU devices into this process's XLA_FLAGS, and a kernel
# inherits the environment: run the notebooks without it, so each one starts as on a
# reader's machine (sharded_fit.ipynb must make its own devices).
KERNEL_ENV = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_ENABLE_X64")}


def execute(name: str):
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOKS)}})
    started = time.perf_counter()
    client.execute(env=KERNEL_ENV)
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


@pytest.mark.slow
def test_quickstart_notebook_fits_exports_and_draws_the_real_clip():
    notebook, seconds = execute("quickstart.ipynb")
    text = printed(notebook)
    assert "Y     (1, 1800, 12, 2)" in text
    assert "50 AR-only sweeps, then 100 sweeps of the full model" in text
    assert "syllables used" in text and "median duration" in text
    assert "marginals: (1, 1797, 20)" in text
    assert "syllable_probability" in text and "report.md" in text and "ethogram.png" in text
    images = [output for cell in notebook.cells for output in cell.get("outputs", [])
              if "image/png" in output.get("data", {})]
    assert images, "the ethogram is shown"
    # Compiling the two stages' sweeps is most of the time (about a minute on 2 CPU cores).
    assert seconds < 180, f"the notebook took {seconds:.0f} s; keep it near a minute"


@pytest.mark.slow
def test_sharded_fit_notebook_runs_on_eight_virtual_devices():
    notebook, seconds = execute("sharded_fit.ipynb")
    text = printed(notebook)
    assert "8 devices" in text, "the notebook makes its own 8 CPU devices"
    layout = re.search(r"^x: \(16, 300, 2\) (.*)$", text, re.MULTILINE)
    assert layout and "'batch'" in layout.group(1), "12 recordings padded to 16, sharded"
    assert "recordings [14, 15]  (padding)" in text
    assert "z identical on 8 devices and on 1: True" in text
    assert seconds < 180, f"the notebook took {seconds:.0f} s; keep it near a minute"
