"""Optional compiled versions of the per-event loops of the relay and the dump, with their pure-Python twins.

``_relay`` is a plain C extension built by setup.py when a compiler is there (``optional=True``:
without one binhub installs and runs on :mod:`binhub._speedups.pure`). ``BINHUB_NO_SPEEDUPS=1``
forces the pure path, e.g. to compare the two or to rule the extension out when debugging.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from types import ModuleType

from binhub._speedups import pure

IMPLEMENTATIONS: dict[str, ModuleType] = {"pure": pure}
impl: ModuleType = pure
if os.environ.get("BINHUB_NO_SPEEDUPS", "") in ("", "0"):
    try:
        from binhub._speedups import _relay
    except ImportError:  # not built (no compiler at install time): the pure twin does the same work
        pass
    else:
        IMPLEMENTATIONS["c"] = _relay
        impl = _relay

frame_dump = impl.frame_dump
frame_events: Callable[[bytes | memoryview, int, int], tuple[bytes, int, int, int, int]] = impl.frame_events
scan_batch = impl.scan_batch
crc32: Callable[[bytes | bytearray | memoryview], int] = impl.crc32
NAME = "c" if impl is not pure else "pure"
CRC32_METHOD: str = impl.CRC32_METHOD  # how crc32 computes: pclmulqdq, slicing-by-8 or zlib

__all__ = ["CRC32_METHOD", "IMPLEMENTATIONS", "NAME", "crc32", "frame_dump", "frame_events", "scan_batch"]
