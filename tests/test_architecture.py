"""The layering holds: every module of moseq imports only from the layers below its own
(docs/architecture.md), and nothing below the package's `__init__` imports `moseq` itself."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "moseq"

LEAVES = {"_version", "_atomic"}
"""Modules with no moseq imports, usable from every layer."""

BELOW = {
    "ops": set(),
    "utils": {"ops"},
    "core": {"ops"},
    "blocks": {"ops", "core"},
    "testing": {"ops", "core", "blocks"},
    "models": {"ops", "core", "blocks"},
    "io": {"ops"},
    "viz": {"ops", "core"},
    "export": {"ops", "io"},
    "data": set(),
    "pipeline": {"ops", "core", "blocks", "models", "io", "viz", "export", "data"},
    "demo": {"ops", "core", "blocks", "models", "io", "viz", "export", "data", "pipeline"},
    "cli": {"ops", "core", "blocks", "models", "io", "viz", "export", "data", "pipeline",
            "demo"},
    "__main__": {"cli"},
}
"""What each part of moseq may import besides itself and the leaves."""


def modules():
    return sorted(p for p in ROOT.rglob("*.py"))


def part(path: Path) -> str:
    relative = path.relative_to(ROOT)
    return relative.parts[0].removesuffix(".py")


def imported(path: Path):
    """(line, target): every moseq module `path` imports, at any depth of its code. A name
    imported from the root package (`from moseq import x`) is the submodule `x` when one
    exists, else the root itself ("moseq")."""
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "moseq" or alias.name.startswith("moseq."):
                    yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and (
                node.module == "moseq" or node.module.startswith("moseq.")):
            if node.module == "moseq":
                for alias in node.names:
                    exists = (ROOT / alias.name).is_dir() or (ROOT / f"{alias.name}.py").exists()
                    yield node.lineno, f"moseq.{alias.name}" if exists else "moseq"
            else:
                yield node.lineno, node.module


def test_every_part_is_in_the_table():
    parts = {part(p) for p in modules()} - {"__init__"} - LEAVES
    assert parts == set(BELOW), "add new parts of moseq to BELOW and docs/architecture.md"


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_point_down(path):
    own = part(path)
    if own == "__init__":
        return  # the package's namespace gathers everything
    allowed = {own} | LEAVES | BELOW.get(own, set())
    wrong = []
    for line, target in imported(path):
        if target == "moseq":
            wrong.append(f"line {line}: imports the moseq package itself (use moseq._version "
                         "or the submodule)")
            continue
        target_part = target.split(".")[1]
        if target_part not in allowed:
            wrong.append(f"line {line}: {target} ({target_part} is not below {own})")
    assert not wrong, wrong


def test_leaves_import_nothing_from_moseq():
    for name in LEAVES:
        assert not list(imported(ROOT / f"{name}.py")), name
