"""The public API is declared, sorted and importable (httpx's test_exported_members)."""

from __future__ import annotations

import subprocess
import sys

import pytest

import binhub


def test_all_is_sorted_and_every_name_resolves() -> None:
    assert binhub.__all__ == sorted(binhub.__all__)
    assert set(binhub.__all__) == set(binhub._WHERE) | {"__version__"}
    for name in binhub.__all__:
        assert getattr(binhub, name) is not None, name
    with pytest.raises(AttributeError):
        _ = binhub.NoSuchThing  # type: ignore[attr-defined]


def test_every_exported_error_is_a_binhub_error() -> None:
    for name in binhub.__all__:
        obj = getattr(binhub, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, binhub.BinhubError), name


def test_import_binhub_is_cheap() -> None:
    # Every command starts by importing the package: it must not drag in the whole stack.
    code = "import sys, binhub; print(sorted(m for m in sys.modules if m.startswith('binhub')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "['binhub']"
