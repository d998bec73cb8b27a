"""``binhub backup ls|verify|prune`` over a root of real backups, and ``--compress zstd`` end to end.

A compressed backup restores (decompressed, checked against the checksums of the uncompressed data)
to the source's tables; verify names a damaged file and, for InnoDB, the offset of the bad page;
prune never removes the newest complete backup, nor the oldest one the store can extend.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from binhub.backup import Manifest, PhysicalBackup
from binhub.backup.restore import PhysicalRestore, RestoreConfig
from binhub.sandbox import Sandbox, find_server_binary
from tests.integration.conftest import MariadbFactory
from tests.integration.relayutil import run_relay
from tests.integration.test_backup_physical import DB, _config, _start_on
from tests.integration.workload import table_checksums

BINHUB = str(Path(sys.executable).with_name("binhub"))


@dataclass
class Catalogue:
    source: Sandbox
    root: Path
    names: list[str]  # oldest first: plain, zstd, plain; then one incomplete


def _binhub(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([BINHUB, *args], capture_output=True, text=True, timeout=300)


def _write(source: Sandbox, n: int) -> None:
    source.execute(f"INSERT INTO {DB}.t (id, v) SELECT seq + {n * 10000}, REPEAT('z', 300) FROM {DB}.seq_1_to_2000")


@pytest.fixture(scope="module")
def catalogue(mariadb_factory: MariadbFactory, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Catalogue]:
    source = mariadb_factory("catalogue_source", server_id=91)
    source.execute(f"CREATE DATABASE {DB}", f"CREATE TABLE {DB}.t (id INT PRIMARY KEY, v TEXT) ENGINE=InnoDB",
                   f"CREATE TABLE {DB}.m (id INT PRIMARY KEY) ENGINE=MyISAM", f"INSERT INTO {DB}.m VALUES (1)")
    root = tmp_path_factory.mktemp("catalogue") / "backups"
    names = []
    for i, compress in enumerate((None, "zstd", None)):
        _write(source, i)
        source.execute("FLUSH BINARY LOGS")  # each backup in a file of its own: the store test starts at one
        name = f"b{i}"
        PhysicalBackup(_config(source, root / name, parallel=2, compress=compress)).run()
        names.append(name)
    incomplete = root / "b3-failed"
    incomplete.mkdir()
    data = json.loads((root / "b0" / "manifest.json").read_text())
    data.update(complete=False, error="the redo copy fell behind", started_at="2999-01-01T00:00:00Z",
                finished_at="2999-01-01T00:01:00Z")
    (incomplete / "manifest.json").write_text(json.dumps(data))
    yield Catalogue(source, root, names)


def test_compressed_backup_stores_zst_and_restores_to_the_source(catalogue: Catalogue,
                                                                 mariadb_factory: MariadbFactory,
                                                                 tmp_path: Path) -> None:
    backup = catalogue.root / "b1"
    manifest = Manifest.read(backup)
    assert manifest.compression == "zstd"
    ibd = next(f for f in manifest.files if f["relpath"] == f"{DB}/t.ibd")
    assert ibd["stored"] == f"{DB}/t.ibd.zst" and not (backup / DB / "t.ibd").exists()
    assert (backup / ibd["stored"]).stat().st_size < ibd["size"] / 3  # repetitive rows compress well
    assert (backup / "ib_logfile0.zst").is_file() and not (backup / "ib_logfile0").exists()
    assert (backup / "xtrabackup_checkpoints").is_file()  # the metadata files stay plain

    target = tmp_path / "datadir"
    PhysicalRestore(RestoreConfig(backup=backup, target=target, mariadbd=find_server_binary())).run()
    assert (target / DB / "t.ibd").is_file() and not list(target.rglob("*.zst"))
    restored = _start_on(mariadb_factory, "catalogue_restored", target)
    rows = restored.query(f"SELECT COUNT(*) FROM {DB}.t")[0][0]
    assert rows == 4000  # b1 was taken after the second batch
    # The source then moved on: compare with a source copy at that point, i.e. the rows with id < 20000.
    assert restored.query(f"SELECT MAX(id) FROM {DB}.t")[0][0] < 20000


def test_ls_lists_every_backup_with_its_state(catalogue: Catalogue) -> None:
    proc = _binhub("backup", "ls", str(catalogue.root), "--json")
    assert proc.returncode == 0, proc.stderr
    entries = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [Path(e["path"]).name for e in entries] == [*catalogue.names, "b3-failed"]
    assert [e["complete"] for e in entries] == [True, True, True, False]
    for e in entries[:3]:
        manifest = Manifest.read(Path(e["path"]))
        assert e["gtid"] == manifest.gtid and e["binlog"] == f"{manifest.binlog_file}:{manifest.binlog_position}"
        assert e["size"] == manifest.total_bytes
    text = _binhub("backup", "ls", str(catalogue.root))
    assert "INCOMPLETE" in text.stdout and "complete" in text.stdout


def test_verify_names_the_damaged_file_and_page_offset(catalogue: Catalogue, tmp_path: Path) -> None:
    ok = _binhub("backup", "verify", str(catalogue.root / "b0"), str(catalogue.root / "b1"))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.count(": OK") == 2

    import shutil
    damaged = tmp_path / "damaged"
    shutil.copytree(catalogue.root / "b2", damaged / "b2")
    with open(damaged / "b2" / DB / "t.ibd", "r+b") as f:
        f.seek(3 * 16384 + 5000)
        byte = f.read(1)
        f.seek(3 * 16384 + 5000)
        f.write(bytes([byte[0] ^ 0xFF]))
    bad = _binhub("backup", "verify", str(damaged))
    assert bad.returncode == 1
    assert f"{DB}/t.ibd at offset {3 * 16384}: CRC-32C" in bad.stdout

    incomplete = _binhub("backup", "verify", str(catalogue.root / "b3-failed"))
    assert incomplete.returncode == 1 and "INCOMPLETE (the redo copy fell behind)" in incomplete.stdout


def test_prune_keeps_the_newest_and_what_the_store_extends(catalogue: Catalogue, tmp_path: Path) -> None:
    import shutil
    root = tmp_path / "root"
    shutil.copytree(catalogue.root, root)
    # A store that begins after b0 (its oldest file starts at b1's GTID or later).
    source = catalogue.source
    b1 = Manifest.read(root / "b1")
    store = tmp_path / "store"
    assert b1.binlog_file is not None
    relayed = run_relay(source.dsn, store, "--start-file", b1.binlog_file)
    assert relayed.returncode == 0, relayed.stderr

    dry = _binhub("backup", "prune", str(root), "--keep", "1", "--data-dir", str(store), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert sorted(p.name for p in root.iterdir()) == ["b0", "b1", "b2", "b3-failed"]
    gone = _binhub("backup", "prune", str(root), "--keep", "1", "--data-dir", str(store))
    assert gone.returncode == 0, gone.stderr
    # b2: the newest; b1: the oldest the store can extend; b0 (before the store) and the failed one go.
    assert sorted(p.name for p in root.iterdir()) == ["b1", "b2"]
    assert dry.stdout.replace("would remove", "removing") == gone.stdout

    everything = _binhub("backup", "prune", str(root), "--older-than", "0s")
    assert everything.returncode == 0, everything.stderr
    assert sorted(p.name for p in root.iterdir()) == ["b2"]  # never the newest complete backup
    assert table_checksums(source.connect(), DB)  # the source is untouched by all this


def test_verify_restore_checks_every_table_of_the_restored_backup(catalogue: Catalogue) -> None:
    proc = _binhub("backup", "verify", "--restore", str(catalogue.root / "b1"))  # the compressed one
    assert proc.returncode == 0, proc.stdout + proc.stderr
    tables = int(proc.stdout.split("CHECK TABLE OK for ")[1].split()[0])
    assert tables > 30  # the mysql schema's tables and the two of the test
