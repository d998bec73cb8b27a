"""The public API is declared, sorted and importable (httpx's test_exported_members)."""

from __future__ import annotations

import subprocess
import sys
from types import ModuleType

import pytest

import binhub
import binhub.binlog


@pytest.mark.parametrize("package", [binhub, binhub.binlog])
def test_every_exported_name_resolves(package: ModuleType) -> None:
    exported = {name for names in package._EXPORTS.values() for name in names}
    assert set(package.__all__) - {"__version__"} == exported
    for name in package.__all__:
        assert getattr(package, name) is not None, name
    assert dir(package) == sorted(package.__all__)  # dir() sorts what __dir__ returns
    with pytest.raises(AttributeError):
        _ = package.NoSuchThing


def test_every_exported_error_is_a_binhub_error() -> None:
    for name in binhub.__all__:
        obj = getattr(binhub, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, binhub.BinhubError), name


def test_import_binhub_is_cheap() -> None:
    # Every command starts by importing the package: it must not drag in the whole stack.
    code = "import sys, binhub; print(sorted(m for m in sys.modules if m.startswith('binhub')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "['binhub', 'binhub.lazy']"  # the lazy exports' few lines, nothing else"
