"""Compressed backup files: ``--compress zstd`` stores each data file as ``NAME.zst``.

The manifest keeps the file's own name, size and CRC-32C of the *uncompressed* bytes (what a
restore writes and checks) and names the stored file in ``stored``. The metadata files
(``xtrabackup_*``, ``backup-my.cnf``, ``manifest.json``) stay plain, as XtraBackup leaves them.
zstd level 1: the copy stays bound by reading the datadir, not by the compressor.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, BinaryIO

import zstandard

COMPRESSIONS = ("zstd",)
SUFFIX = {"zstd": ".zst"}
ZSTD_LEVEL = 1


def stored_name(relpath: str, compression: str | None) -> str:
    """The name a file of the backup is stored under."""
    return relpath + SUFFIX[compression] if compression else relpath


def compressing_writer(raw: BinaryIO, compression: str | None) -> BinaryIO:
    """A writer that compresses into ``raw`` (closing it when closed), or ``raw`` itself."""
    if compression is None:
        return raw
    return zstandard.ZstdCompressor(level=ZSTD_LEVEL).stream_writer(raw, closefd=True)


def open_stored(root: Path, entry: dict[str, Any]) -> BinaryIO:
    """The uncompressed bytes of the manifest ``entry``'s file in the backup at ``root``."""
    stored = entry.get("stored")
    if not stored:
        return open(root / str(entry["relpath"]), "rb")
    raw = open(root / str(stored), "rb")  # noqa: SIM115 - handed to the decompressing reader, which closes it
    return zstandard.ZstdDecompressor().stream_reader(raw, closefd=True)
