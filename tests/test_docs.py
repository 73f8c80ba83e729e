"""The documentation: the site builds strictly (no warning) and its code examples run.

Every ```python block of the pages in `EXECUTED_PAGES` runs, in order, in one namespace per
page, from a temporary working directory. A block that is only an illustration is preceded
by the line `<!-- skip-test -->` in the Markdown.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
SKIP_MARKER = "<!-- skip-test -->"
FENCE = re.compile(r"^```python[^\n]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)

EXECUTED_PAGES = [
    "concepts/blocks.md",
    "concepts/state.md",
    pytest.param("concepts/scheduler.md", marks=pytest.mark.slow),  # ~30 s of compiling
    "concepts/sharding.md",
]


def python_blocks(page: Path) -> list[str]:
    """The ```python blocks of a Markdown page that are meant to run."""
    text = page.read_text()
    blocks = []
    for match in FENCE.finditer(text):
        before = text[: match.start()].rstrip().splitlines()
        if before and before[-1].strip() == SKIP_MARKER:
            continue
        blocks.append(match.group(1))
    return blocks


def run_page(page: Path, monkeypatch, tmp_path) -> dict:
    blocks = python_blocks(page)
    assert blocks, f"{page} has no Python example to run"
    monkeypatch.chdir(tmp_path)
    # A real (temporary) module, so that classes defined on the page (dataclasses, Equinox
    # modules) find their module in sys.modules.
    module = types.ModuleType(f"moseq_docs_{page.stem}")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    for number, source in enumerate(blocks, 1):
        code = compile(source, f"{page.relative_to(ROOT)} (block {number})", "exec",
                       dont_inherit=True)  # not this file's `from __future__ import annotations`
        exec(code, module.__dict__)
    return module.__dict__


def test_fence_extraction(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("text\n```python\na = 1\n```\n\n<!-- skip-test -->\n```python\nb = 2\n```\n"
                    "```bash\nls\n```\n```python title=\"x\"\nc = 3\n```\n")
    assert python_blocks(page) == ["a = 1\n", "c = 3\n"]


def test_site_builds_strictly(tmp_path):
    """`mkdocs build --strict` succeeds offline and logs no warning (docstrings included)."""
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    warnings = [line for line in output.splitlines() if "WARNING" in line]
    assert not warnings, "\n".join(warnings)
    for page in ("index.html", "quickstart/index.html", "formats/index.html",
                 "migration/index.html", "api/core/index.html"):
        assert (tmp_path / "site" / page).is_file(), page


def test_every_page_is_in_the_nav():
    config = (ROOT / "mkdocs.yml").read_text()
    pages = sorted(str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md"))
    assert [p for p in pages if p not in config] == []


@pytest.mark.parametrize("page", EXECUTED_PAGES)
def test_concept_examples_run(page, monkeypatch, tmp_path):
    run_page(DOCS / page, monkeypatch, tmp_path)


@pytest.mark.slow
def test_quickstart_runs(monkeypatch, tmp_path):
    """The quickstart, block by block: load the shipped clip, fit, export, report, AR-HMM."""
    namespace = run_page(DOCS / "quickstart.md", monkeypatch, tmp_path)
    assert (tmp_path / "my_fit" / "results.h5").is_file()
    assert (tmp_path / "my_fit" / "report" / "report.html").is_file()
    assert namespace["csv_files"]
    # The hand-made AR-HMM example has two 50-frame syllables; the page says the sampler
    # finds them.
    import numpy as np

    from moseq.utils import get_durations

    assert np.median(get_durations(np.asarray(namespace["arhmm_state"]["z"]))) == 50


def test_quickstart_commands_are_the_clis(monkeypatch, tmp_path):
    """Each `moseq ...` line of the quickstart's shell block parses with the CLI, and its
    `init-project` makes the project it says (on the shipped clip)."""
    import shlex

    from moseq import cli
    from moseq.data import JABS_CLIP
    from moseq.pipeline import Config

    text = (DOCS / "quickstart.md").read_text()
    shell = re.search(r"^```bash\nCLIP=.*?^```", text, re.MULTILINE | re.DOTALL).group(0)
    lines = shell.replace("\\\n", " ").splitlines()[2:-1]
    commands = [shlex.split(line.split("#")[0].replace("$CLIP", str(JABS_CLIP)))
                for line in lines if not line.lstrip().startswith("#")]
    assert [c[:2] for c in commands] == [["moseq", "init-project"], ["moseq", "fit"],
                                         ["moseq", "fit"], ["moseq", "apply"]]
    for command in commands:
        cli._parser().parse_args(command[1:])
    monkeypatch.chdir(tmp_path)
    assert cli.main(commands[0][1:]) == 0
    config = Config.load(tmp_path / "my_project")
    assert (config.fitting.ar_sweeps, config.fitting.full_sweeps) == (10, 20)
