"""Archive: zstd copies made before retention removes files, and imports of archived files."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import zstandard

from binhub.store import BinlogStore, StoreReader
from binhub.store.archive import archive_file
from binhub.store.retention import PurgeRules


def _two_file_store(shared_binlogs: Path, tmp_path: Path) -> Path:
    src = shared_binlogs / "flike__kingbus" / "mysql_bin.000011"
    files = tmp_path / "files"
    files.mkdir()
    shutil.copy(src, files / "mysql_bin.000011")
    shutil.copy(src, files / "mysql_bin.000012")  # its ROTATE names 000012, so the chain holds
    store = tmp_path / "store"
    proc = subprocess.run([sys.executable, "-m", "binhub", "binlog", "import", "--data-dir", str(store),
                           str(files / "mysql_bin.000011"), str(files / "mysql_bin.000012")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return store


def test_archive_round_trip(shared_binlogs: Path, tmp_path: Path) -> None:
    src = shared_binlogs / "flike__kingbus" / "mysql_bin.000011"
    out = archive_file(src, tmp_path / "archive")
    assert out.name == "mysql_bin.000011.zst"
    assert zstandard.ZstdDecompressor().decompress(out.read_bytes()) == src.read_bytes()
    assert not list((tmp_path / "archive").glob("*.tmp"))


def test_purge_archives_before_removing(shared_binlogs: Path, tmp_path: Path) -> None:
    store_dir = _two_file_store(shared_binlogs, tmp_path)
    original = (store_dir / "binlog" / "mysql_bin.000011").read_bytes()
    store = BinlogStore.open(store_dir, archive_dir=tmp_path / "archive")
    try:
        removed, blocked = store.purge(PurgeRules(max_files=1))
    finally:
        store.close()
    assert removed == ["mysql_bin.000011"] and blocked == ""
    assert not (store_dir / "binlog" / "mysql_bin.000011").exists()
    archived = tmp_path / "archive" / "mysql_bin.000011.zst"
    assert zstandard.ZstdDecompressor().decompress(archived.read_bytes()) == original
    assert StoreReader.open(store_dir).files == ["mysql_bin.000012"]


def test_import_of_an_archived_file_restores_the_original_bytes(shared_binlogs: Path, tmp_path: Path) -> None:
    src = shared_binlogs / "flike__kingbus" / "mysql_bin.000011"
    archived = archive_file(src, tmp_path / "archive")
    store = tmp_path / "store"
    proc = subprocess.run([sys.executable, "-m", "binhub", "binlog", "import", "--data-dir", str(store),
                           str(archived)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert (store / "binlog" / "mysql_bin.000011").read_bytes() == src.read_bytes()


def test_import_refuses_a_corrupt_file_and_stores_nothing(shared_binlogs: Path, tmp_path: Path) -> None:
    data = bytearray((shared_binlogs / "flike__kingbus" / "mysql_bin.000011").read_bytes())
    data[1000] ^= 0xFF
    bad = tmp_path / "mysql_bin.000011"
    bad.write_bytes(bytes(data))
    store = tmp_path / "store"
    proc = subprocess.run([sys.executable, "-m", "binhub", "binlog", "import", "--data-dir", str(store), str(bad)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "refusing to import" in proc.stderr and "mysql_bin.000011" in proc.stderr
    assert not (store / "binlog" / "mysql_bin.000011").exists()
