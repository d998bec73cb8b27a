"""Every module imports on its own, first, as in a fresh interpreter: no import cycle hides behind
the order in which the package happens to load its modules (``binlog/events.py`` once imported
``decode_event`` back from ``decode.py``, and worked only when ``events`` came first)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Each module is imported with every binhub module forgotten first: the same as a fresh interpreter
# for binhub's own imports, without paying an interpreter start per module.
SCRIPT = """
import importlib, pkgutil, sys, traceback
import binhub
names = sorted(m.name for m in pkgutil.walk_packages(binhub.__path__, "binhub.") if m.name != "binhub.__main__")
failed = []
for name in names:
    for loaded in [m for m in sys.modules if m == "binhub" or m.startswith("binhub.")]:
        if not loaded.startswith("binhub._speedups._"):  # a C extension cannot be loaded twice
            del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except Exception:
        failed.append(name + ": " + traceback.format_exc(limit=3))
print(len(names))
print("\\n".join(failed))
"""


def test_every_module_imports_first() -> None:
    proc = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    count, _, failures = proc.stdout.partition("\n")
    assert int(count) > 80, "the walk found binhub's modules"
    assert not failures.strip(), failures
