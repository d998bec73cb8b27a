"""The InnoDB codecs on the files of a running MariaDB 10.11: the server's own checksums and LSNs are
the oracle (every page it flushed validates; the redo scan ends exactly at the LSN it reports)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from binhub.innodb import (
    START_OFFSET,
    LogHeader,
    RedoRing,
    ScanStop,
    TablespaceFlags,
    newest_checkpoint,
    page_corruption,
    scan_mtrs,
    scan_ring,
    space_id_of_page0,
)
from binhub.sandbox import Sandbox
from tests.integration.conftest import MariadbFactory


def _flushed_table(sb: Sandbox, db: str, table: str, ddl: str) -> Path:
    sb.execute(f"CREATE DATABASE IF NOT EXISTS {db}", f"CREATE TABLE {db}.{table} {ddl}",
               f"INSERT INTO {db}.{table} SELECT seq, REPEAT(CHAR(65 + seq % 26), 400) FROM {db}.seq_1_to_3000")
    conn = sb.connect()
    try:
        with conn.cursor() as cur:
            cur.execute(f"FLUSH TABLES {db}.{table} FOR EXPORT")
            cur.execute("UNLOCK TABLES")
    finally:
        conn.close()
    return sb.datadir / db / f"{table}.ibd"


def _check_every_page(path: Path) -> tuple[TablespaceFlags, int]:
    data = path.read_bytes()
    flags = TablespaceFlags.from_page0(data[:16384])
    size = flags.physical_size
    assert len(data) % size == 0
    bad = [(n, why) for n in range(len(data) // size)
           if (why := page_corruption(data[n * size:(n + 1) * size], flags)) is not None]
    assert not bad, bad[:5]
    return flags, len(data) // size


@pytest.fixture(scope="module")
def legacy_server(mariadb_factory: MariadbFactory) -> Sandbox:
    """New tablespaces in the pre-10.5 format with crc32 checksums."""
    return mariadb_factory("innodb_crc32", server_id=51, extra_args=["--innodb-checksum-algorithm=crc32"])


def test_full_crc32_pages_of_a_real_server_validate(primary: Sandbox) -> None:
    flags, pages = _check_every_page(primary.datadir / "ibdata1")
    assert flags.full_crc32 and flags.page_size == 16384 and pages >= 64
    assert space_id_of_page0((primary.datadir / "ibdata1").read_bytes()[:16384]) == 0


def test_legacy_crc32_and_compressed_pages_of_a_real_server_validate(legacy_server: Sandbox) -> None:
    plain = _flushed_table(legacy_server, "legacy", "plain", "(id INT PRIMARY KEY, v TEXT) ENGINE=InnoDB")
    flags, pages = _check_every_page(plain)
    assert not flags.full_crc32 and pages > 10
    zipped = _flushed_table(legacy_server, "legacy", "zipped",
                            "(id INT PRIMARY KEY, v TEXT) ENGINE=InnoDB ROW_FORMAT=COMPRESSED KEY_BLOCK_SIZE=4")
    flags, pages = _check_every_page(zipped)
    assert flags.zip_size == 4096 and pages > 10
    # One flipped byte in a data page is caught.
    data = bytearray(plain.read_bytes())
    data[3 * 16384 + 5000] ^= 0x20
    assert page_corruption(data[3 * 16384:4 * 16384], TablespaceFlags.from_page0(data[:16384])) is not None


def test_redo_scan_of_the_live_log_ends_at_the_servers_lsn(primary: Sandbox) -> None:
    primary.execute("CREATE DATABASE IF NOT EXISTS redo_probe",
                    "CREATE OR REPLACE TABLE redo_probe.t (id INT PRIMARY KEY, v TEXT) ENGINE=InnoDB",
                    "INSERT INTO redo_probe.t SELECT seq, REPEAT('r', 300) FROM redo_probe.seq_1_to_5000")
    conn = primary.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("FLUSH NO_WRITE_TO_BINLOG ENGINE LOGS")
            # Background work (purge) may log more after this, so the scan ends at or after it.
            cur.execute("SHOW GLOBAL STATUS LIKE 'Innodb_lsn_current'")
            lsn_now = int(cur.fetchone()[1])
        fd = os.open(primary.datadir / "ib_logfile0", os.O_RDONLY)
        try:
            area = os.pread(fd, START_OFFSET, 0)
            header = LogHeader.parse(area)
            checkpoint = newest_checkpoint(area)
            ring = RedoRing(os.fstat(fd).st_size, header.first_lsn)
            data = b"".join(os.pread(fd, n, at) for at, n in ring.spans(checkpoint.lsn, ring.capacity - 1))
        finally:
            os.close(fd)
    finally:
        conn.close()
    assert header.creator.startswith("MariaDB 10.")
    assert checkpoint.lsn <= checkpoint.end_lsn
    scan = scan_mtrs(data, checkpoint.lsn, ring.sequence_bit)
    assert scan.stop is ScanStop.END_OF_LOG
    assert scan_ring(data, checkpoint.lsn, ring) == scan  # the C scanner (when built) on a real server's log
    assert checkpoint.lsn + scan.length >= lsn_now
    # The checkpoint's mini-transaction starts where the checkpoint block says (end_lsn): FILE_MODIFY
    # records for the tablespaces written since, then the FILE_CHECKPOINT record naming the LSN.
    at = checkpoint.end_lsn - checkpoint.lsn
    assert at in [0, *scan.ends]
    end = min(e for e in scan.ends if e > at)
    record = end - 5 - 11  # before the end byte and the CRC: type, space 0, page 0, the LSN
    assert data[record] == 0xFA and int.from_bytes(data[record + 3:record + 11], "big") == checkpoint.lsn
