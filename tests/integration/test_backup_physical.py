"""``binhub backup --physical`` against real servers, with mariadb-backup and a replica as oracles.

The proof: back up a MariaDB while a workload writes InnoDB, Aria and MyISAM tables; prepare the copy
with the server's own ``mariadb-backup --prepare``; start a ``mariadbd`` on it; every table's
CHECKSUM TABLE equals that of a real replica stopped (START SLAVE UNTIL master_gtid_pos) at the GTID
the backup recorded. The faults: a redo log too small for the write load (a clear RedoOverrun, the
manifest marked incomplete), and a corrupted page in the source (named: file and page number).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from binhub.backup import Manifest, NoProgress, PhysicalBackup, PhysicalBackupConfig, ServerAddress
from binhub.errors import ConfigError, PageCorrupted, RedoOverrun
from binhub.innodb import LogHeader, RedoRing, TablespaceFlags, crc32c
from binhub.sandbox import Sandbox
from tests.integration.conftest import START_TIMEOUT, MariadbFactory, in_ci
from tests.integration.workload import q, table_checksums, wait_until

DB = "shop"


@pytest.fixture(scope="module")
def mariadb_backup() -> str:
    found = shutil.which("mariadb-backup")
    if not found:
        message = "mariadb-backup is not installed (scripts/setup.sh installs it)"
        if in_ci():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return found


def _address(sb: Sandbox) -> ServerAddress:
    return ServerAddress(unix_socket=sb.socket)


def _config(sb: Sandbox, target: Path, **kw: Any) -> PhysicalBackupConfig:
    return PhysicalBackupConfig(_address(sb), sb.datadir, target, **kw)


class Workload:
    """Autocommit writes in two threads: InnoDB inserts, updates and deletes in one, Aria and MyISAM
    inserts in the other (those wait while BACKUP STAGE blocks non-transactional writes; the InnoDB
    ones go on throughout the copy). ``innodb_only`` leaves the second thread out."""

    def __init__(self, sb: Sandbox, *, row_bytes: int = 200, innodb_only: bool = False) -> None:
        self.sb = sb
        self.row_bytes = row_bytes
        self.innodb_statements = 0
        self.other_statements = 0
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        targets = [self._innodb] if innodb_only else [self._innodb, self._other]
        self._threads = [threading.Thread(target=self._guarded, args=(t,), daemon=True) for t in targets]

    def __enter__(self) -> Workload:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)

    def _guarded(self, body: Any) -> None:
        conn = self.sb.connect(database=DB)
        try:
            with conn.cursor() as cur:
                body(cur)
        except BaseException as exc:  # reported by the test, never swallowed
            self.errors.append(exc)
        finally:
            conn.close()

    def _innodb(self, cur: Any) -> None:
        i = 0
        while not self._stop.is_set():
            i += 1
            cur.execute("INSERT INTO orders (customer, note) VALUES (%s, REPEAT('n', %s))", (i % 97, self.row_bytes))
            if i % 3 == 0:
                cur.execute("UPDATE orders SET amount = amount + 1 WHERE id = %s", (i // 2,))
            if i % 7 == 0:
                cur.execute("DELETE FROM orders WHERE id = %s", (i // 3,))
            self.innodb_statements += 1

    def _other(self, cur: Any) -> None:
        i = 0
        while not self._stop.is_set():
            i += 1
            cur.execute("INSERT INTO audit_aria (event) VALUES (%s)", (f"event {i}",))
            cur.execute("INSERT INTO counters_myisam (k, v) VALUES (%s, 1) ON DUPLICATE KEY UPDATE v = v + 1",
                        (i % 50,))
            self.other_statements += 1


class WatchInnodbCopy(NoProgress):
    """Counts the InnoDB statements the workload ran while the InnoDB files were being copied."""

    def __init__(self, workload: Workload) -> None:
        self.workload = workload
        self.at_start = self.at_end = 0

    def phase(self, name: str, total_bytes: int) -> None:
        if name == "InnoDB":
            self.at_start = self.workload.innodb_statements
        elif name == "other engines":
            self.at_end = self.workload.innodb_statements


class LapTheRing(NoProgress):
    """Holds the backup after the InnoDB copy until the server has written two redo rings' worth."""

    def __init__(self, sb: Sandbox) -> None:
        self.sb = sb

    def phase(self, name: str, total_bytes: int) -> None:
        if name != "other engines":
            return
        capacity = int(self.sb.query("SELECT @@innodb_log_file_size")[0][0]) - 12288
        start = self._lsn()
        wait_until(lambda: self._lsn() > start + 2 * capacity, timeout=120, interval=0.2,
                   message="the workload did not write two redo rings")

    def _lsn(self) -> int:
        return int(self.sb.query("SHOW GLOBAL STATUS LIKE 'Innodb_lsn_current'")[0][1])


def _create_schema(sb: Sandbox) -> None:
    sb.execute(
        f"CREATE DATABASE {DB}",
        f"CREATE TABLE {DB}.orders (id INT AUTO_INCREMENT PRIMARY KEY, customer INT NOT NULL, "
        "amount INT NOT NULL DEFAULT 0, note TEXT, KEY (customer)) ENGINE=InnoDB",
        f"CREATE TABLE {DB}.orders_compressed (id INT PRIMARY KEY, note TEXT) ENGINE=InnoDB "
        "ROW_FORMAT=COMPRESSED KEY_BLOCK_SIZE=8",
        f"INSERT INTO {DB}.orders_compressed SELECT seq, REPEAT('c', 300) FROM {DB}.seq_1_to_2000",
        f"CREATE TABLE {DB}.audit_aria (id INT AUTO_INCREMENT PRIMARY KEY, event VARCHAR(64)) ENGINE=Aria",
        f"CREATE TABLE {DB}.counters_myisam (k INT PRIMARY KEY, v INT NOT NULL) ENGINE=MyISAM",
        f"INSERT INTO {DB}.orders (customer, note) SELECT seq % 97, REPEAT('x', 200) FROM {DB}.seq_1_to_20000",
    )
    _flush_to_disk(sb, "orders_compressed")


def _flush_to_disk(sb: Sandbox, table: str) -> None:
    """Write a table's pages to its file (until then a new table may exist only in the redo log)."""
    conn = sb.connect()
    try:
        with conn.cursor() as cur:
            cur.execute(f"FLUSH TABLES {q(DB, table)} FOR EXPORT")
            cur.execute("UNLOCK TABLES")
    finally:
        conn.close()


def _prepare(mariadb_backup: str, backup: Path, work: Path) -> Path:
    """Prepare a copy of ``backup`` (a backup stays immutable) with the server's own mariadb-backup."""
    prepared = work / "prepared"
    shutil.copytree(backup, prepared)
    proc = subprocess.run([mariadb_backup, "--prepare", f"--target-dir={prepared}"], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return prepared


def _start_on(mariadb_factory: MariadbFactory, name: str, datadir: Path) -> Sandbox:
    restored = mariadb_factory(name, start=False, server_id=99)
    shutil.rmtree(restored.datadir)
    shutil.copytree(datadir, restored.datadir)
    restored.start(timeout=START_TIMEOUT)
    return restored


def _stop_replica_at(replica: Sandbox, gtid: str) -> None:
    replica.query(f"START SLAVE UNTIL master_gtid_pos = '{gtid}'")

    def stopped() -> bool:
        rows = replica.connect().cursor()
        rows.execute("SHOW SLAVE STATUS")
        status = dict(zip([d[0] for d in rows.description], rows.fetchone(), strict=True))
        assert not status["Last_SQL_Error"], status["Last_SQL_Error"]
        return bool(status["Slave_SQL_Running"] == "No")

    wait_until(stopped, timeout=120, message=f"the replica did not stop at {gtid}")


@pytest.fixture(scope="module")
def source_and_replica(mariadb_factory: MariadbFactory) -> Iterator[tuple[Sandbox, Sandbox]]:
    source = mariadb_factory("backup_source", server_id=21)
    replica = mariadb_factory("backup_replica", server_id=22)
    gtid = source.query("SELECT @@gtid_binlog_pos")[0][0]
    replica.query("STOP SLAVE")
    replica.query(f"SET GLOBAL gtid_slave_pos = '{gtid}'")
    replica.query(
        f"CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={source.port}, MASTER_USER='{source.repl_user}', "
        f"MASTER_PASSWORD='{source.repl_password}', MASTER_CONNECT_RETRY=1, MASTER_USE_GTID=slave_pos")
    yield source, replica


def test_backup_under_writes_prepares_and_matches_a_replica_at_the_recorded_gtid(
        source_and_replica: tuple[Sandbox, Sandbox], mariadb_factory: MariadbFactory, mariadb_backup: str,
        tmp_path: Path) -> None:
    source, replica = source_and_replica
    _create_schema(source)
    target = tmp_path / "backup"
    with Workload(source) as workload:
        wait_until(lambda: workload.innodb_statements > 200 and workload.other_statements > 50, timeout=60,
                   message="the workload did not start")
        watch = WatchInnodbCopy(workload)
        manifest = PhysicalBackup(_config(source, target, parallel=2), watch).run()
        wait_until(lambda: workload.other_statements > 0, timeout=30)
        other_before = workload.other_statements
        wait_until(lambda: workload.other_statements > other_before, timeout=30,
                   message="Aria/MyISAM writes did not resume after BACKUP STAGE END")
    assert not workload.errors, workload.errors
    assert watch.at_end > watch.at_start, "no InnoDB write ran during the InnoDB copy"

    # What the backup says about itself.
    assert manifest.complete and manifest.error is None
    assert Manifest.read(target).complete
    assert manifest.gtid and manifest.binlog_file and manifest.binlog_position
    assert manifest.checkpoint_lsn is not None and manifest.last_lsn is not None and manifest.end_lsn is not None
    assert manifest.checkpoint_lsn < manifest.end_lsn == manifest.last_lsn
    assert (target / "xtrabackup_binlog_info").read_text().split() == [
        manifest.binlog_file, str(manifest.binlog_position), manifest.gtid]
    copied = {f["relpath"] for f in manifest.files}
    ibdata1 = next(f for f in manifest.files if f["relpath"] == "ibdata1")
    assert ibdata1["crc32c"] == f"{crc32c((target / 'ibdata1').read_bytes()):08x}"
    assert ibdata1["size"] == (target / "ibdata1").stat().st_size
    assert {"ibdata1", f"{DB}/orders.ibd", f"{DB}/audit_aria.MAD", f"{DB}/counters_myisam.MYD",
            f"{DB}/orders.frm", "aria_log_control"} <= copied
    # ROW_FORMAT=COMPRESSED pages were validated with their own checksum.
    assert TablespaceFlags.from_page0((target / DB / "orders_compressed.ibd").read_bytes()[:16384]).zip_size == 8192

    # The oracle: a replica stopped exactly at the backup's GTID.
    _stop_replica_at(replica, manifest.gtid)
    expected = table_checksums(replica.connect(), DB)
    assert set(expected) == {"orders", "orders_compressed", "audit_aria", "counters_myisam"}

    prepared = _prepare(mariadb_backup, target, tmp_path)
    restored = _start_on(mariadb_factory, "backup_restored", prepared)
    assert table_checksums(restored.connect(), DB) == expected
    with restored.connect().cursor() as cur:
        cur.execute(f"CHECK TABLE {q(DB, 'orders')}, {q(DB, 'audit_aria')}, {q(DB, 'counters_myisam')}")
        assert {row[3] for row in cur.fetchall() if row[2] == "status"} == {"OK"}


def test_target_must_be_new_or_empty(source_and_replica: tuple[Sandbox, Sandbox], tmp_path: Path) -> None:
    source, _ = source_and_replica
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "ibdata1").write_bytes(b"precious")
    with pytest.raises(ConfigError, match="not empty"):
        PhysicalBackup(_config(source, tmp_path / "old")).run()
    assert (tmp_path / "old" / "ibdata1").read_bytes() == b"precious"


def test_redo_overrun_fails_clearly_and_marks_the_backup_incomplete(mariadb_factory: MariadbFactory,
                                                                     tmp_path: Path) -> None:
    source = mariadb_factory("backup_tiny_redo", server_id=31,
                             extra_args=["--innodb-log-file-size=4M", "--innodb-log-buffer-size=1M"])
    source.execute(f"CREATE DATABASE {DB}",
                   f"CREATE TABLE {DB}.orders (id INT AUTO_INCREMENT PRIMARY KEY, customer INT NOT NULL, "
                   "amount INT NOT NULL DEFAULT 0, note TEXT) ENGINE=InnoDB",
                   f"CREATE TABLE {DB}.audit_aria (id INT AUTO_INCREMENT PRIMARY KEY, event VARCHAR(64)) ENGINE=Aria",
                   f"CREATE TABLE {DB}.counters_myisam (k INT PRIMARY KEY, v INT NOT NULL) ENGINE=MyISAM")
    target = tmp_path / "backup"
    # The copier looks at the log only every 30 s; the backup is held until the writes went twice
    # round the 4 MiB ring, so the log it has not copied yet is gone.
    with Workload(source, row_bytes=20000, innodb_only=True), \
            pytest.raises(RedoOverrun, match="innodb_log_file_size") as caught:
        PhysicalBackup(_config(source, target, log_copy_interval=30.0), LapTheRing(source)).run()
    assert "overwrote redo log not yet copied" in str(caught.value)
    manifest = Manifest.read(target)
    assert not manifest.complete
    assert manifest.error and "innodb_log_file_size" in manifest.error
    assert not (target / "xtrabackup_checkpoints").exists()


def test_corrupted_page_is_named_with_its_file_and_number(mariadb_factory: MariadbFactory, tmp_path: Path) -> None:
    source = mariadb_factory("backup_corrupt", server_id=41)
    source.execute(f"CREATE DATABASE {DB}",
                   f"CREATE TABLE {DB}.victim (id INT PRIMARY KEY, note TEXT) ENGINE=InnoDB",
                   f"INSERT INTO {DB}.victim SELECT seq, REPEAT('v', 500) FROM {DB}.seq_1_to_3000")
    _flush_to_disk(source, "victim")  # so that the bytes we damage are the latest
    path = source.datadir / DB / "victim.ibd"
    with open(path, "r+b") as f:
        f.seek(4 * 16384 + 9000)
        f.write(b"\xde\xad" * 8)
    with pytest.raises(PageCorrupted) as caught:
        PhysicalBackup(_config(source, tmp_path / "backup", page_retries=2, page_retry_delay=0.01)).run()
    assert (caught.value.file, caught.value.page_no) == (f"{DB}/victim.ibd", 4)
    assert "page 4" in str(caught.value) and "checksum" in str(caught.value)
    assert not Manifest.read(tmp_path / "backup").complete


def test_cli_backs_up_and_reports_where_the_binlog_stood(source_and_replica: tuple[Sandbox, Sandbox],
                                                         tmp_path: Path) -> None:
    source, _ = source_and_replica
    binhub = Path(sys.executable).with_name("binhub")
    cmd = [str(binhub), "backup", "--physical", "--source", "mysql://root@localhost", "--socket", str(source.socket),
           "--datadir", str(source.datadir), "--to", str(tmp_path / "b"), "--parallel", "2"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    manifest = Manifest.read(tmp_path / "b")
    assert manifest.complete
    assert f"binlog {manifest.binlog_file}:{manifest.binlog_position}, GTID {manifest.gtid}" in proc.stdout
    assert "InnoDB" in proc.stderr  # the phases, one line each without a terminal

    again = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert again.returncode == 1
    assert "is not empty" in again.stderr


def test_a_wrapped_redo_ring_is_copied_in_order_with_fresh_sequence_bits(
        mariadb_factory: MariadbFactory, mariadb_backup: str, tmp_path: Path) -> None:
    """The server's log has gone round its ring an odd number of times (sequence bit 0) and the
    checkpoint-to-end range crosses the ring's end: the copy must join the two pieces and write
    every end byte as 1, or --prepare stops at the first mini-transaction."""
    source = mariadb_factory("backup_wrapped", server_id=61, extra_args=["--innodb-log-file-size=4M"])
    source.execute(f"CREATE DATABASE {DB}",
                   f"CREATE TABLE {DB}.wide (id INT AUTO_INCREMENT PRIMARY KEY, v MEDIUMTEXT) ENGINE=InnoDB",
                   f"CREATE TABLE {DB}.counters_myisam (k INT PRIMARY KEY, v INT NOT NULL) ENGINE=MyISAM",
                   f"INSERT INTO {DB}.counters_myisam SELECT seq, seq FROM {DB}.seq_1_to_100")
    header = (source.datadir / "ib_logfile0").read_bytes()[:512]
    ring = RedoRing((source.datadir / "ib_logfile0").stat().st_size, LogHeader.parse(header).first_lsn)

    def lap() -> int:
        lsn = int(source.query("SHOW GLOBAL STATUS LIKE 'Innodb_lsn_current'")[0][1])
        return (lsn - ring.first_lsn) // ring.capacity

    while lap() < 3 or lap() % 2 == 0:
        source.execute(f"INSERT INTO {DB}.wide (v) SELECT REPEAT(UUID(), 2000) FROM {DB}.seq_1_to_10")
    assert ring.sequence_bit(int(source.query("SHOW GLOBAL STATUS LIKE 'Innodb_lsn_current'")[0][1])) == 0

    manifest = PhysicalBackup(_config(source, tmp_path / "backup")).run()
    assert manifest.complete
    assert manifest.checkpoint_lsn is not None and manifest.last_lsn is not None
    prepared = _prepare(mariadb_backup, tmp_path / "backup", tmp_path)
    restored = _start_on(mariadb_factory, "backup_wrapped_restored", prepared)
    assert table_checksums(restored.connect(), DB) == table_checksums(source.connect(), DB)


class DdlDuringCopy(NoProgress):
    """Starts a CREATE TABLE once the InnoDB copy runs and notes whether it finished before the
    consistent point (it must not: BLOCK_DDL is held over the whole copy)."""

    def __init__(self, sb: Sandbox) -> None:
        self.sb = sb
        self.done = threading.Event()
        self.finished_before_consistent_point: bool | None = None
        self.thread = threading.Thread(target=self._ddl, daemon=True)

    def _ddl(self) -> None:
        conn = self.sb.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(f"CREATE TABLE {DB}.made_during_backup (id INT PRIMARY KEY) ENGINE=InnoDB")
        finally:
            conn.close()
            self.done.set()

    def phase(self, name: str, total_bytes: int) -> None:
        if name == "InnoDB":
            self.thread.start()
            wait_until(lambda: self.sb.query(
                "SELECT COUNT(*) FROM information_schema.processlist WHERE info LIKE 'CREATE TABLE%made_during%'"
            )[0][0], timeout=30, message="the CREATE TABLE did not start")
        elif name == "consistent point":
            self.finished_before_consistent_point = self.done.is_set()


def test_ddl_waits_for_the_backup_and_is_not_half_in_it(source_and_replica: tuple[Sandbox, Sandbox],
                                                        tmp_path: Path) -> None:
    source, _ = source_and_replica
    source.execute(f"CREATE DATABASE IF NOT EXISTS {DB}")
    ddl = DdlDuringCopy(source)
    manifest = PhysicalBackup(_config(source, tmp_path / "b"), ddl).run()
    assert ddl.finished_before_consistent_point is False
    assert ddl.done.wait(30), "the CREATE TABLE did not go on after BACKUP STAGE END"
    assert manifest.complete
    names = {f["relpath"] for f in manifest.files}
    assert not any("made_during_backup" in name for name in names)
