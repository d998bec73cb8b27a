"""Gates on the source itself: the layers import only downwards, ruff and mypy --strict are clean."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "binhub"

# Each layer may import itself and what is listed (DESIGN.md: codecs → store → adapters → services → ops → cli).
# binhub.ops.metrics is a leaf (it imports nothing of binhub): services may count into it.
# binhub._speedups (the compiled hot loops and their pure twins) sits below everything: a codec.
BASE = {"errors", "_speedups", "bytefields"}
LEAVES = {"ops.metrics"}
ALLOWED = {
    "_speedups": set(),
    "wire": BASE,
    "binlog": BASE,
    "schema": BASE | {"binlog"},
    "store": BASE | {"binlog"},
    "net": BASE | {"wire", "binlog"},
    "relay": BASE | {"wire", "binlog", "store", "net"},
    "serve": BASE | {"wire", "binlog", "store", "net"},
}


def _runtime_imports(path: Path) -> set[str]:
    """binhub subpackages imported at run time (imports under ``if TYPE_CHECKING:`` do not count)."""
    tree = ast.parse(path.read_text(), str(path))
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for n in ast.walk(node))
    out = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "binhub" and len(parts) > 1 and ".".join(parts[1:3]) not in LEAVES:
                out.add(parts[1])
    return out


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_layers_import_only_downwards(layer: str) -> None:
    bad = []
    for path in sorted((PACKAGE / layer).glob("*.py")):
        for imported in _runtime_imports(path) - ALLOWED[layer] - {layer}:
            bad.append(f"{path.relative_to(ROOT)} imports binhub.{imported}")
    assert not bad, "layering broken:\n" + "\n".join(bad)


def test_leaves_import_nothing_of_binhub() -> None:
    for leaf in LEAVES:
        assert not _runtime_imports(PACKAGE / (leaf.replace(".", "/") + ".py"))


def test_bytefields_sits_below_both_codecs() -> None:
    assert _runtime_imports(PACKAGE / "bytefields.py") <= {"errors"}


def test_codecs_do_no_io() -> None:
    for layer in ("wire", "binlog"):
        for path in (PACKAGE / layer).glob("*.py"):
            tree = ast.parse(path.read_text())
            mods = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
            mods |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
            assert not mods & {"asyncio", "socket", "selectors"}, f"{path.name} does I/O"


def _tool(name: str) -> str:
    exe = Path(sys.executable).with_name(name)
    found = str(exe) if exe.exists() else shutil.which(name)
    if not found:
        pytest.skip(f"{name} is not installed (pip install -e '.[test]')")
    return found


def test_ruff_is_clean() -> None:
    proc = subprocess.run([_tool("ruff"), "check", "binhub", "tests", "bench"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy_strict_is_clean() -> None:
    proc = subprocess.run([_tool("mypy"), "binhub"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
