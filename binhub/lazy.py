"""Exports that load on first use (PEP 562), for the packages whose ``__init__`` re-exports names.

``import binhub`` and ``import binhub.binlog`` then cost nothing: a command pays only for the
modules it touches (the relay never runs the row decoder, ``binhub status`` no storage stack).
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(package: str, exports: Mapping[str, Iterable[str]],
                 namespace: dict[str, Any]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``package``, whose ``exports`` map a module (relative
    to the package when it starts with a dot) to the names taken from it. A name, once loaded, is
    kept in ``namespace`` (the package's globals), so the next lookup does not come here."""
    where = {name: importlib.util.resolve_name(module, package) if module.startswith(".") else module
             for module, names in exports.items() for name in names}

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return list(namespace.get("__all__", where))

    return __getattr__, __dir__
