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

# Each layer may import itself and what is listed, at run time and under TYPE_CHECKING alike
# (DESIGN.md: codecs → schema → store → adapters → sinks → services → ops → cli). There are no exceptions:
# what a service counts or is told is its own (RelayMetrics, ServeConfig, ...) and ops composes it.
# binhub._speedups (the compiled hot loops and their pure twins) sits below everything: a codec.
BASE = {"errors", "_speedups", "bytefields", "fsutil", "frozen", "lazy", "metric_families"}
CODECS = BASE | {"wire", "binlog", "innodb"}
BELOW_SERVICES = CODECS | {"schema", "store", "net"}
SERVICES = {"relay", "serve", "stream", "backup", "flashback", "apply"}
ALLOWED = {
    "_speedups": set(),
    "bytefields": {"errors"},
    "fsutil": set(),
    "frozen": set(),
    "errors": set(),
    "lazy": set(),  # the packages' exports that load on first use
    "metric_families": set(),  # labelled metric families made once per registry
    "wire": BASE,
    "binlog": BASE,
    "innodb": BASE,
    "schema": BASE | {"binlog"},
    "store": BASE | {"binlog"},
    "net": BASE | {"wire", "binlog"},
    "sinks": BELOW_SERVICES,  # one module per destination, below the services that write through them
    **{service: BELOW_SERVICES | {"sinks"} for service in SERVICES},  # services never import each other
    "ops": BELOW_SERVICES | SERVICES | {"sinks"},
    "sandbox": BASE,  # a throwaway mariadbd for the demo and the tests: nothing of binhub's own
    "demo": BELOW_SERVICES | SERVICES | {"sinks", "ops", "sandbox"},
    "cli": BELOW_SERVICES | SERVICES | {"sinks", "ops", "sandbox", "demo"},
    "__init__": BELOW_SERVICES | SERVICES | {"sinks"},  # the public API re-exports the services, never ops or cli
    "__main__": {"cli"},
}


def _layer_files(layer: str) -> list[Path]:
    package = PACKAGE / layer
    if package.is_dir():
        return sorted(package.rglob("*.py"))
    module = PACKAGE / f"{layer}.py"
    return [module] if module.exists() else []


def _module_parts(path: Path) -> list[str]:
    """``binhub/serve/dump.py`` → ``["binhub", "serve", "dump"]`` (a package's ``__init__`` is the package)."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return parts[:-1] if parts[-1] == "__init__" else parts


def _imports(path: Path, source: str | None = None) -> set[str]:
    """The binhub layers ``path`` (or ``source`` placed at ``path``) imports: run-time, TYPE_CHECKING
    and function-level imports alike, absolute or relative."""
    tree = ast.parse(path.read_text() if source is None else source, str(path))
    package = _module_parts(path)
    if path.name != "__init__.py":
        package = package[:-1]
    out: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom):
            base = node.module.split(".") if node.module else []
            if node.level:
                base = package[: len(package) - node.level + 1] + base
            names = [".".join(base)]
            if base == ["binhub"]:  # from binhub import store: the names are the layers
                names = [f"binhub.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "binhub" and len(parts) > 1 and not parts[1].startswith("__version__"):
                out.add(parts[1])
    return out


def _layer_of(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return parts[0]


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_layers_import_only_downwards(layer: str) -> None:
    bad = []
    for path in _layer_files(layer):
        for imported in _imports(path) - ALLOWED[layer] - {layer}:
            bad.append(f"{path.relative_to(ROOT)} imports binhub.{imported}")
    assert not bad, "layering broken:\n" + "\n".join(bad)


def test_every_module_has_a_layer() -> None:
    """A new package or top-level module must be placed in ALLOWED before it can escape the rule."""
    found = {_layer_of(p) for p in PACKAGE.rglob("*.py")}
    assert found <= set(ALLOWED), f"not in the layer table: {sorted(found - set(ALLOWED))}"


def test_the_rule_sees_type_checking_and_relative_imports() -> None:
    """The checker itself: an import under TYPE_CHECKING, in a function, or relative still counts."""
    code = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from binhub.ops.daemon import Daemon\n"
        "def f():\n    from ..relay import Relay\n"
        "from .. import serve\n"
        "from . import index\n"
    )
    assert _imports(PACKAGE / "store" / "probe.py", code) == {"ops", "relay", "serve", "store"}


def test_codecs_do_no_io() -> None:
    for layer in ("wire", "binlog", "innodb"):
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
