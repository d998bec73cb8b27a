"""Archive: zstd-compressed copies of binlog files that retention removes from the store.

An archived file is the binlog file compressed as one zstd frame (``NAME.zst``), so
``zstd -d`` gives back the original bytes; ``binhub binlog import`` reads ``.zst`` files directly.
"""

from __future__ import annotations

import os
from pathlib import Path

import zstandard

from binhub.store.fsutil import fsync_dir, storage_error

ZSTD_LEVEL = 3  # binlogs compress 3–8x at level 3; higher levels cost far more CPU for little gain
SUFFIX = ".zst"


def archive_file(source: Path, archive_dir: Path) -> Path:
    """Compress ``source`` into ``archive_dir`` durably (tmp, fsync, rename); returns the archive path."""
    archive_dir.mkdir(parents=True, exist_ok=True)
    target = archive_dir / (source.name + SUFFIX)
    tmp = target.with_name(target.name + ".tmp")
    try:
        with open(source, "rb") as src, open(tmp, "wb") as dst:
            zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_checksum=True).copy_stream(
                src, dst, size=source.stat().st_size)
            dst.flush()
            os.fsync(dst.fileno())
        os.replace(tmp, target)
        fsync_dir(archive_dir)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise storage_error(exc, f"cannot archive {source.name} to {archive_dir}") from exc
    return target


def open_binlog(path: Path) -> tuple[str, object]:
    """(binlog file name, readable binary stream) for a plain or a ``.zst`` archived binlog file."""
    if path.name.endswith(SUFFIX):
        raw = open(path, "rb")  # noqa: SIM115 - owned by the returned reader
        return path.name[: -len(SUFFIX)], zstandard.ZstdDecompressor().stream_reader(raw, closefd=True)
    return path.name, open(path, "rb")  # noqa: SIM115 - the caller closes it
