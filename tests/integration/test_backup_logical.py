"""``binhub backup --logical`` and its restore against real servers.

The oracles are the servers themselves: every table's ``CHECKSUM TABLE`` and every object's
``SHOW CREATE`` on a fresh server loaded from the backup equal the source's (the 52-type table of
the row-decoder tests among them), and under a concurrent write load equal those of a real replica
stopped with ``START SLAVE UNTIL master_gtid_pos`` at the GTID the backup recorded. The faults: the
source killed mid-backup (manifest incomplete, restore refuses), a corrupted chunk (named), a
target that already has the tables (refused, untouched).
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zstandard

from binhub.backup.catalog import list_backups, verify_backup
from binhub.backup.config import ServerAddress
from binhub.backup.logical import (
    LogicalBackup,
    LogicalBackupConfig,
    LogicalManifest,
    LogicalRestore,
    LogicalRestoreConfig,
    NoProgress,
    restore_logical,
)
from binhub.backup.logical.literals import Layout
from binhub.backup.logical.tsv import split_parts
from binhub.errors import BackupError, ConfigError, ConnectionFailed
from binhub.sandbox import Sandbox
from tests.conftest import TEST_DATA
from tests.integration.conftest import MariadbFactory
from tests.integration.test_backup_physical import _stop_replica_at
from tests.integration.test_rows_decode import ROWS, TABLE_DDL, _insert
from tests.integration.workload import q, table_checksums, wait_until

ALL = "alltypes"
SHOP = "shop"


def _address(sb: Sandbox) -> ServerAddress:
    return ServerAddress("127.0.0.1", sb.port, "root")


def _backup(sb: Sandbox, target: Path, **kw: Any) -> LogicalManifest:
    return LogicalBackup(LogicalBackupConfig(_address(sb), target, **kw)).run()


def _all_types_schema(sb: Sandbox) -> None:
    """Every column type, tables without a key, with a composite VARCHAR key and with a NOT NULL unique
    key only, generated and invisible columns, MyISAM and Aria, views over views, routines, a
    trigger, an event, a role and a user."""
    conn = sb.connect()
    with conn.cursor() as cur:
        cur.execute("SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO', time_zone = '+00:00'")
        cur.execute(f"CREATE DATABASE {ALL} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        cur.execute(f"USE {ALL}")
        cur.execute(TABLE_DDL)
        for row in ROWS:
            _insert(cur, row)
        cur.execute("CREATE TABLE no_key (a INT, b TEXT, c DOUBLE) ENGINE=InnoDB")
        cur.executemany("INSERT INTO no_key VALUES (%s, %s, %s)",
                        [(1, "dup", 0.1), (1, "dup", 0.1), (None, None, None), (2, "", -0.0)] * 30)
        cur.execute("CREATE TABLE composite (region VARCHAR(20) CHARACTER SET utf8mb4, n INT, note TEXT, "
                    "PRIMARY KEY (region, n), KEY by_note (note(10))) ENGINE=InnoDB")
        regions = ["north", "süd", "東", "emoji \U0001F600", "quote ' and \\ and\nnewline", ""]
        cur.executemany("INSERT INTO composite VALUES (%s, %s, %s)",
                        [(regions[i % len(regions)], i, f"note {i}") for i in range(500)])
        cur.execute("CREATE TABLE unique_only (code CHAR(8) CHARACTER SET latin1 NOT NULL, v INT, "
                    "UNIQUE KEY (code)) ENGINE=InnoDB")
        cur.executemany("INSERT INTO unique_only VALUES (%s, %s)", [(f"c{i:05d}é", i) for i in range(300)])
        cur.execute("CREATE TABLE counters (id INT AUTO_INCREMENT PRIMARY KEY, hits BIGINT NOT NULL, "
                    "doubled BIGINT AS (hits * 2) VIRTUAL, tripled BIGINT AS (hits * 3) PERSISTENT, "
                    "secret INT INVISIBLE DEFAULT 7, KEY (hits), UNIQUE KEY (tripled)) ENGINE=InnoDB")
        cur.execute("INSERT INTO counters (id, hits) VALUES (0, 0)")  # id 0: loads only under NO_AUTO_VALUE_ON_ZERO
        cur.execute(f"INSERT INTO counters (hits, secret) SELECT seq, seq FROM {ALL}.seq_1_to_3000")
        cur.execute("DELETE FROM counters WHERE id BETWEEN 1000 AND 1500")  # a hole in the key ranges
        cur.execute("CREATE TABLE legacy_myisam (id INT PRIMARY KEY, v VARCHAR(10)) ENGINE=MyISAM")
        cur.execute("INSERT INTO legacy_myisam VALUES (1, 'a'), (2, NULL)")
        cur.execute("CREATE TABLE log_aria (id INT AUTO_INCREMENT PRIMARY KEY, e TEXT) ENGINE=Aria")
        cur.execute("INSERT INTO log_aria (e) VALUES ('x'), ('ÿ')")
        cur.execute("CREATE TABLE empty_one (id INT PRIMARY KEY) ENGINE=InnoDB")
        cur.execute("CREATE VIEW z_base AS SELECT region, COUNT(*) AS n FROM composite GROUP BY region")
        cur.execute("CREATE VIEW a_over_view AS SELECT region FROM z_base WHERE n > 1")  # created before z_base
        cur.execute("CREATE PROCEDURE bump(IN by_n INT) MODIFIES SQL DATA "
                    "UPDATE counters SET hits = hits + by_n WHERE id = 0")
        cur.execute("CREATE FUNCTION greet(who VARCHAR(20)) RETURNS VARCHAR(40) DETERMINISTIC "
                    "RETURN CONCAT('héllo ', who)")
        cur.execute("CREATE TRIGGER upper_note BEFORE INSERT ON composite FOR EACH ROW SET NEW.note = UPPER(NEW.note)")
        cur.execute("CREATE EVENT nightly ON SCHEDULE EVERY 1 DAY STARTS '2030-01-01 00:00:00' DISABLE "
                    "DO DELETE FROM log_aria WHERE id < 0")
        cur.execute("CREATE ROLE reader")
        cur.execute(f"GRANT SELECT ON {ALL}.* TO reader")
        cur.execute("CREATE USER 'app'@'%' IDENTIFIED BY 'secret-pw'")
        cur.execute(f"GRANT SELECT, INSERT, EXECUTE ON {ALL}.* TO 'app'@'%'")
        cur.execute("GRANT reader TO 'app'@'%'")
        cur.execute("ANALYZE TABLE counters, composite")
    conn.close()


def _rows(sb: Sandbox, table: str) -> list[tuple[Any, ...]]:
    return sb.query(f"SELECT id, hits, doubled, tripled, secret FROM {q(ALL, table)} ORDER BY id")


def _show_creates(sb: Sandbox, db: str) -> dict[str, str]:
    out = {}
    conn = sb.connect()
    with conn.cursor() as cur:
        cur.execute("SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s", (db,))
        for name, kind in cur.fetchall():
            cur.execute(f"SHOW CREATE {'VIEW' if kind == 'VIEW' else 'TABLE'} {q(db, name)}")
            out[f"table {name}"] = cur.fetchone()[1]
        for kind in ("PROCEDURE", "FUNCTION"):
            cur.execute(f"SHOW {kind} STATUS WHERE Db = %s", (db,))
            for row in cur.fetchall():
                cur.execute(f"SHOW CREATE {kind} {q(db, row[1])}")
                out[f"{kind} {row[1]}"] = cur.fetchone()[2]
        cur.execute("SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = %s", (db,))
        for (name,) in cur.fetchall():
            cur.execute(f"SHOW CREATE TRIGGER {q(db, name)}")
            out[f"trigger {name}"] = cur.fetchone()[2]
        cur.execute("SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = %s", (db,))
        for (name,) in cur.fetchall():
            cur.execute(f"SHOW CREATE EVENT {q(db, name)}")
            out[f"event {name}"] = cur.fetchone()[3]
        cur.execute("SHOW CREATE USER 'app'@'%'")
        out["user app"] = cur.fetchone()[0]
        cur.execute("SHOW GRANTS FOR 'app'@'%'")
        out["grants app"] = "\n".join(sorted(r[0] for r in cur.fetchall()))
        cur.execute("SHOW GRANTS FOR reader")
        out["grants reader"] = "\n".join(sorted(r[0] for r in cur.fetchall()))
    conn.close()
    return out


@pytest.fixture(scope="module")
def source(mariadb_factory: MariadbFactory) -> Sandbox:
    sb = mariadb_factory("logical_source", server_id=31)
    _all_types_schema(sb)
    return sb


@pytest.fixture(scope="module")
def good_backup(source: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, LogicalManifest]:
    target = tmp_path_factory.mktemp("logical") / "backup"
    manifest = _backup(source, target, parallel=3, chunk_rows=200, include=(f"{ALL}.*",))
    return target, manifest


def test_every_type_and_object_round_trips_into_a_fresh_server(
        source: Sandbox, good_backup: tuple[Path, LogicalManifest], mariadb_factory: MariadbFactory) -> None:
    backup, manifest = good_backup
    assert manifest.complete and manifest.kind == "logical" and manifest.flavour == "mariadb"
    assert manifest.gtid == source.query("SELECT @@gtid_binlog_pos")[0][0]
    assert (manifest.binlog_file, manifest.binlog_position) == tuple(source.query("SHOW MASTER STATUS")[0][:2])
    assert manifest.lock == "BACKUP STAGE BLOCK_COMMIT" and manifest.lock_seconds < 5
    by_name = {t.name: t for t in manifest.tables}
    assert len(by_name["counters"].chunks) > 5  # integer ranges
    assert len(by_name["composite"].chunks) == 3  # keyset pages of 200
    assert len(by_name["unique_only"].chunks) == 2
    assert by_name["no_key"].rows == 120 and by_name["empty_one"].chunks == []
    assert not by_name["legacy_myisam"].transactional and not by_name["log_aria"].transactional
    assert {(o.kind, o.name) for o in manifest.objects} == {
        ("VIEW", "z_base"), ("VIEW", "a_over_view"), ("PROCEDURE", "bump"), ("FUNCTION", "greet"),
        ("TRIGGER", "upper_note"), ("EVENT", "nightly")}
    assert {(u.user, u.is_role) for u in manifest.users} >= {("app", False), ("reader", True)}

    target = mariadb_factory("logical_target", server_id=32)
    binlog_before = target.query("SHOW MASTER STATUS")
    result = restore_logical(backup, _address(target), parallel=3, indexes_after=True)
    assert result.rows == manifest.rows and result.gtid == manifest.gtid
    expected = table_checksums(source.connect(), ALL)
    assert len(expected) == 8
    # CHECKSUM TABLE is no oracle for a table with a VIRTUAL column: two servers (or two copies in one)
    # with the same rows give different sums. Its rows, the generated and invisible columns included, are.
    assert _rows(target, "counters") == _rows(source, "counters")
    expected.pop("counters")
    assert {k: v for k, v in table_checksums(target.connect(), ALL).items() if k != "counters"} == expected
    assert _show_creates(target, ALL) == _show_creates(source, ALL)
    # The restore wrote nothing to the target's binlog (sql_log_bin=0).
    assert target.query("SHOW MASTER STATUS") == binlog_before
    # The restored objects work: the trigger fires on new rows (not on the loaded ones), the function runs.
    conn = target.connect("app", ALL, password="secret-pw")
    with conn.cursor() as cur:
        cur.execute("INSERT INTO composite VALUES ('new', 1, 'lower')")
        cur.execute("SELECT note FROM composite WHERE region = 'new'")
        assert cur.fetchone()[0] == "LOWER"
        cur.execute("SELECT greet('x')")
        assert cur.fetchone()[0] == "héllo x"


def test_a_chunk_is_the_lines_the_mariadb_clients_load_data_loads(
        source: Sandbox, good_backup: tuple[Path, LogicalManifest], mariadb_factory: MariadbFactory,
        tmp_path: Path) -> None:
    """Independent of binhub's loader: the mariadb client's own LOAD DATA LOCAL INFILE of the
    decompressed chunks (the statement the manifest's columns make) loads the 52-type table exactly."""
    backup, manifest = good_backup
    table = next(t for t in manifest.tables if t.name == "every_type")
    target = mariadb_factory("logical_client_target", server_id=33)
    target.execute("CREATE DATABASE c", "USE c", table.create)
    client = shutil.which("mariadb") or shutil.which("mysql")
    assert client, "the mariadb client is not installed"
    statements = []
    for number, chunk in enumerate(table.chunks):
        lines = tmp_path / f"{number}.tsv"
        lines.write_bytes(zstandard.ZstdDecompressor().decompress((backup / chunk.file).read_bytes()))
        statements.append(Layout.of(table.columns).load_data("`c`.`every_type`").decode()
                          .replace("'chunk'", f"'{lines}'") + ";")
    session = "SET time_zone = '+00:00', sql_mode = 'NO_AUTO_VALUE_ON_ZERO';"
    subprocess.run([client, "-h127.0.0.1", f"-P{target.port}", "-uroot", "--local-infile=1", "c",
                    "-e", session + "".join(statements)], check=True, timeout=60)
    assert table_checksums(target.connect(), "c") == {"every_type": table_checksums(source.connect(), ALL)["every_type"]}


def test_restore_refuses_a_corrupted_chunk_naming_it_and_touches_nothing(
        good_backup: tuple[Path, LogicalManifest], mariadb_factory: MariadbFactory, tmp_path: Path) -> None:
    backup, manifest = good_backup
    damaged = tmp_path / "damaged"
    shutil.copytree(backup, damaged)
    chunk = next(t for t in manifest.tables if t.name == "counters").chunks[2]
    data = bytearray((damaged / chunk.file).read_bytes())
    data[len(data) // 2] ^= 0x01
    (damaged / chunk.file).write_bytes(bytes(data))
    # The catalogue reads logical backups too: verify names the damaged chunk, ls sizes the chunks.
    assert verify_backup(backup) == []
    assert [p.relpath for p in verify_backup(damaged)] == [chunk.file]
    (entry,) = list_backups(damaged)
    assert entry.kind == "logical" and entry.size == manifest.chunk_bytes
    target = mariadb_factory("logical_refusing_target", server_id=34)
    with pytest.raises(BackupError, match=f"chunk {chunk.file} is corrupted"):
        restore_logical(damaged, _address(target))
    assert not target.query(f"SHOW DATABASES LIKE '{ALL}'")
    (damaged / chunk.file).unlink()
    with pytest.raises(BackupError, match=f"chunk {chunk.file} is missing"):
        restore_logical(damaged, _address(target))

    # A target that already has the backup's tables is refused before anything is written.
    target.execute(f"CREATE DATABASE {ALL}", f"CREATE TABLE {ALL}.counters (id INT)")
    with pytest.raises(BackupError, match=f"the target already has {ALL} \\(1 tables and views\\)"):
        restore_logical(backup, _address(target))
    assert target.query(f"SHOW TABLES FROM {ALL}") == [("counters",)]

    # So is a target that does not take LOAD DATA LOCAL, saying what to set.
    target.execute(f"DROP DATABASE {ALL}", "SET GLOBAL local_infile = OFF")
    try:
        with pytest.raises(BackupError, match="local_infile = OFF") as refused:
            restore_logical(backup, _address(target))
        assert "SET GLOBAL local_infile = ON" in str(refused.value.hint)
        assert not target.query(f"SHOW DATABASES LIKE '{ALL}'")
    finally:
        target.execute("SET GLOBAL local_infile = ON")


def test_backup_target_must_be_new_or_empty(source: Sandbox, tmp_path: Path) -> None:
    (tmp_path / "x").write_text("")
    with pytest.raises(ConfigError, match="not empty"):
        _backup(source, tmp_path)


def test_include_and_exclude_take_the_named_tables(source: Sandbox, tmp_path: Path) -> None:
    manifest = _backup(source, tmp_path / "b", include=(f"{ALL}.c*", f"{ALL}.no_key"), exclude=("*.counters",),
                       users=False)
    assert sorted(t.name for t in manifest.tables) == ["composite", "no_key"]
    assert [d.name for d in manifest.databases] == [ALL] and manifest.users == []
    assert {o.name for o in manifest.objects} == {"upper_note", "bump", "greet", "nightly"}  # views: not included


# --- consistency under writes ---------------------------------------------------------------------


class Transfers:
    """Autocommit writes while the backup runs: InnoDB transactions that move money between accounts
    (the total never changes), inserts into an InnoDB journal and a MyISAM table. Records the
    longest a single commit waited."""

    def __init__(self, sb: Sandbox) -> None:
        self.sb = sb
        self.commits = 0
        self.longest_wait = 0.0
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Transfers:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(60)

    def _run(self) -> None:
        conn = self.sb.connect(database=SHOP)
        try:
            with conn.cursor() as cur:
                i = 0
                while not self._stop.is_set():
                    i += 1
                    started = time.monotonic()
                    cur.execute("BEGIN")
                    cur.execute("UPDATE accounts SET balance = balance - 5 WHERE id = %s", (i % 1000 + 1,))
                    cur.execute("UPDATE accounts SET balance = balance + 5 WHERE id = %s", ((i * 7) % 1000 + 1,))
                    cur.execute("INSERT INTO journal (account, amount) VALUES (%s, 5)", (i % 1000 + 1,))
                    cur.execute("COMMIT")
                    cur.execute("INSERT INTO hits_myisam (n) VALUES (%s)", (i,))
                    self.longest_wait = max(self.longest_wait, time.monotonic() - started)
                    self.commits += 1
        except BaseException as exc:  # reported by the test
            self.errors.append(exc)
        finally:
            conn.close()


@pytest.fixture(scope="module")
def source_and_replica(mariadb_factory: MariadbFactory) -> Iterator[tuple[Sandbox, Sandbox]]:
    source = mariadb_factory("logical_shop_source", server_id=41)
    replica = mariadb_factory("logical_shop_replica", server_id=42)
    gtid = source.query("SELECT @@gtid_binlog_pos")[0][0]
    replica.execute("STOP SLAVE", f"SET GLOBAL gtid_slave_pos = '{gtid}'",
                    f"CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={source.port}, "
                    f"MASTER_USER='{source.repl_user}', MASTER_PASSWORD='{source.repl_password}', "
                    "MASTER_CONNECT_RETRY=1, MASTER_USE_GTID=slave_pos")
    source.execute(
        f"CREATE DATABASE {SHOP}",
        f"CREATE TABLE {SHOP}.accounts (id INT PRIMARY KEY, balance BIGINT NOT NULL, pad CHAR(200)) ENGINE=InnoDB",
        f"INSERT INTO {SHOP}.accounts SELECT seq, 1000, REPEAT('p', 200) FROM {SHOP}.seq_1_to_1000",
        f"CREATE TABLE {SHOP}.journal (id BIGINT AUTO_INCREMENT PRIMARY KEY, account INT, amount INT, "
        "at DATETIME(6) DEFAULT NOW(6), KEY (account)) ENGINE=InnoDB",
        f"CREATE TABLE {SHOP}.hits_myisam (id INT AUTO_INCREMENT PRIMARY KEY, n INT) ENGINE=MyISAM",
        f"CREATE TABLE {SHOP}.bulk (id INT PRIMARY KEY, body VARCHAR(300)) ENGINE=InnoDB",
        f"INSERT INTO {SHOP}.bulk SELECT seq, REPEAT(CHAR(65 + seq % 26), 300) FROM {SHOP}.seq_1_to_60000",
        f"ANALYZE TABLE {SHOP}.bulk")
    yield source, replica


class SlowDump(NoProgress):
    """Makes the dump take a while after the lock is gone (so the writer demonstrably runs during it)."""

    def __init__(self, transfers: Transfers) -> None:
        self.transfers = transfers
        self.commits_at_tables: int | None = None

    def phase(self, name: str, total: int) -> None:
        if name == "tables":
            self.commits_at_tables = self.transfers.commits

    def advance(self, amount: int) -> None:
        time.sleep(amount / 20_000)  # 3 s for the 60,000 rows of shop.bulk, however the dump batches them


def test_backup_under_writes_equals_a_replica_stopped_at_its_gtid(
        source_and_replica: tuple[Sandbox, Sandbox], mariadb_factory: MariadbFactory, tmp_path: Path) -> None:
    source, replica = source_and_replica
    with Transfers(source) as transfers:
        wait_until(lambda: transfers.commits > 50, timeout=30, message="the writer did not start")
        progress = SlowDump(transfers)
        started = time.monotonic()
        manifest = LogicalBackup(LogicalBackupConfig(_address(source), tmp_path / "b", parallel=2, chunk_rows=3000,
                                                     include=(f"{SHOP}.*",), users=False), progress).run()
        dump_seconds = time.monotonic() - started
        commits_during_dump = transfers.commits - (progress.commits_at_tables or 0)
    assert not transfers.errors, transfers.errors
    # Writers were held off only for the instant of the consistent point, and went on during the dump.
    assert manifest.lock_seconds < 1.0, manifest.lock_seconds
    assert commits_during_dump > 20, (commits_during_dump, dump_seconds)
    assert transfers.longest_wait < 1.0 + manifest.lock_seconds, transfers.longest_wait
    assert dump_seconds > 3 * transfers.longest_wait

    _stop_replica_at(replica, manifest.gtid or "")
    expected = table_checksums(replica.connect(), SHOP)
    assert expected != table_checksums(source.connect(), SHOP), "the writer did not change anything after the backup"
    restored = mariadb_factory("logical_shop_restored", server_id=43)
    restore_logical(tmp_path / "b", _address(restored), parallel=2)
    assert table_checksums(restored.connect(), SHOP) == expected
    assert restored.query(f"SELECT SUM(balance) FROM {SHOP}.accounts") == [(1_000_000,)]


# --- faults and the command line ------------------------------------------------------------------


class KillAfterFirstRows(NoProgress):
    def __init__(self, sb: Sandbox) -> None:
        self.sb = sb
        self.killed = False

    def advance(self, amount: int) -> None:
        if not self.killed:
            self.killed = True
            self.sb.kill()


def test_source_killed_mid_backup_leaves_it_incomplete_and_restore_refuses(
        mariadb_factory: MariadbFactory, tmp_path: Path) -> None:
    victim = mariadb_factory("logical_victim", server_id=51)
    victim.execute("CREATE DATABASE v", "CREATE TABLE v.t (id INT PRIMARY KEY, pad CHAR(100))",
                   "INSERT INTO v.t SELECT seq, 'x' FROM v.seq_1_to_20000", "ANALYZE TABLE v.t")
    target = tmp_path / "b"
    with pytest.raises(Exception) as raised:
        LogicalBackup(LogicalBackupConfig(_address(victim), target, parallel=2, chunk_rows=1000),
                      KillAfterFirstRows(victim)).run()
    assert isinstance(raised.value, ConnectionFailed) and "lost the connection" in str(raised.value)
    manifest = LogicalManifest.read(target)
    assert not manifest.complete and manifest.error and manifest.finished_at
    with pytest.raises(BackupError, match="incomplete backup"):
        restore_logical(target, ServerAddress("127.0.0.1", 1, "root"))
    # The command line says the same, with exit status 1.
    proc = _cli("restore", str(target), "--to", "mysql://root@127.0.0.1:1")
    assert proc.returncode == 1 and "incomplete backup" in proc.stderr


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "binhub", *args], capture_output=True, text=True, timeout=300)


def test_a_backup_of_format_1_made_by_the_binhub_before_still_restores_exactly(
        source: Sandbox, mariadb_factory: MariadbFactory, tmp_path: Path) -> None:
    """tests/data/logical-format1: INSERT-statement chunks, taken by the binhub of format 1 from the
    same alltypes tables the ``source`` fixture makes; loaded statement by statement as before."""
    backup = tmp_path / "format1"
    shutil.copytree(TEST_DATA / "logical-format1", backup)
    manifest = LogicalManifest.read(backup)
    assert manifest.format == 1 and all(c.file.endswith(".sql.zst") for t in manifest.tables for c in t.chunks)
    target = mariadb_factory("logical_format1_target", server_id=38)
    result = restore_logical(backup, _address(target), parallel=2)
    assert result.rows == manifest.rows > 2500
    restored = table_checksums(target.connect(), ALL)
    assert sorted(restored) == sorted(t.name for t in manifest.tables)
    assert _rows(target, "counters") == _rows(source, "counters")  # a VIRTUAL column: CHECKSUM is no oracle
    restored.pop("counters")
    assert restored == {t: v for t, v in table_checksums(source.connect(), ALL).items() if t in restored}


def test_cli_backs_up_and_restores(source: Sandbox, mariadb_factory: MariadbFactory, tmp_path: Path) -> None:
    target = tmp_path / "b"
    proc = _cli("backup", "--logical", "--source", f"mysql://root@127.0.0.1:{source.port}", "--to", str(target),
                "--include", f"{ALL}.counters", "--include", f"{ALL}.composite", "--parallel", "2",
                "--chunk-rows", "500", "--no-users")
    assert proc.returncode == 0, proc.stderr
    gtid = source.query("SELECT @@gtid_binlog_pos")[0][0]
    assert "backup complete" in proc.stdout and f"GTID {gtid}" in proc.stdout and "2 tables" in proc.stdout
    restored = mariadb_factory("logical_cli_target", server_id=35)
    proc = _cli("restore", str(target), "--to", f"mysql://root@127.0.0.1:{restored.port}", "--parallel", "2",
                "--indexes-after")
    assert proc.returncode == 0, proc.stderr
    assert "restore complete" in proc.stdout and f"GTID {gtid}" in proc.stdout
    assert table_checksums(restored.connect(), ALL)["composite"] == table_checksums(source.connect(), ALL)["composite"]
    assert _rows(restored, "counters") == _rows(source, "counters")
    proc = _cli("backup", "--source", f"mysql://root@127.0.0.1:{source.port}", "--to", str(tmp_path / "c"))
    assert proc.returncode == 2 and "--physical or --logical" in proc.stderr


def test_rows_longer_than_max_allowed_packet_and_than_a_packet_round_trip(
        mariadb_factory: MariadbFactory, tmp_path: Path) -> None:
    """A plain SELECT sends a row as the server holds it, however long: a row longer than the
    source's max_allowed_packet is dumped and loaded back, and so is one longer than a protocol
    packet (16 MiB: the server sends it in several, which the dump joins)."""
    sb = mariadb_factory("logical_small_packet", server_id=52, extra_args=["--max-allowed-packet=64M"])
    sb.execute("CREATE DATABASE p", "CREATE TABLE p.t (id INT PRIMARY KEY, a LONGBLOB, b MEDIUMBLOB)",
               "INSERT INTO p.t VALUES (1, REPEAT(X'0061', 300000), REPEAT(X'FF5C', 300000)), (2, 'small', NULL), "
               "(3, NULL, ''), (4, REPEAT(X'5C090A00', 4500000), 'x')",  # row 1: 1.2 MB; row 4: 18 MB, escaped: 36
               "SET GLOBAL max_allowed_packet = 1024 * 1024")
    manifest = _backup(sb, tmp_path / "b", include=("p.*",), users=False)
    assert manifest.tables[0].rows == 4
    target = mariadb_factory("logical_small_packet_target", server_id=53, extra_args=["--max-allowed-packet=1M"])
    restore_logical(tmp_path / "b", _address(target))
    assert table_checksums(target.connect(), "p") == table_checksums(sb.connect(), "p")


class AlterBeforeTheRowsAreRead(NoProgress):
    """Rebuilds a table after the consistent point, before any worker has read it."""

    def __init__(self, sb: Sandbox) -> None:
        self.sb = sb

    def phase(self, name: str, total: int) -> None:
        if name == "tables":
            self.sb.execute("ALTER TABLE d.t FORCE, ALGORITHM=COPY")


def test_ddl_after_the_consistent_point_fails_the_backup_naming_the_table(
        mariadb_factory: MariadbFactory, tmp_path: Path) -> None:
    sb = mariadb_factory("logical_ddl", server_id=54)
    sb.execute("CREATE DATABASE d", "CREATE TABLE d.t (id INT PRIMARY KEY, v INT)", "INSERT INTO d.t VALUES (1, 1)")
    with pytest.raises(BackupError, match="d.t was changed by DDL during the backup"):
        LogicalBackup(LogicalBackupConfig(_address(sb), tmp_path / "b", include=("d.*",), users=False),
                      AlterBeforeTheRowsAreRead(sb)).run()
    manifest = LogicalManifest.read(tmp_path / "b")
    assert not manifest.complete and "changed by DDL" in (manifest.error or "")


def test_a_consistency_lock_that_times_out_names_the_session_it_waited_for(source: Sandbox, tmp_path: Path) -> None:
    """A long CREATE ... SELECT holds the backup lock: the error names its session, account, time and
    statement, with the processlist alone and with MariaDB's metadata_lock_info plugin."""
    for plugin in (False, True):
        if plugin:
            source.execute("INSTALL SONAME 'metadata_lock_info'")
        blocker = source.connect()
        try:
            with blocker.cursor() as cur:
                cur.execute("SELECT CONNECTION_ID()")
                session = cur.fetchone()[0]
            ddl = threading.Thread(target=_ignore_errors, daemon=True, args=(
                blocker, f"CREATE TABLE {ALL}.slow_ctas ENGINE=InnoDB AS SELECT SLEEP(60) AS s"))
            ddl.start()
            sleeping = f"SELECT 1 FROM information_schema.PROCESSLIST WHERE ID = {session} AND STATE = 'User sleep'"
            wait_until(lambda sql=sleeping: source.query(sql) != [], timeout=30, message="no CTAS")
            with pytest.raises(BackupError) as raised:
                _backup(source, tmp_path / f"b{plugin}", include=(f"{ALL}.no_key",), users=False, lock_wait_timeout=1)
            message = str(raised.value)
            assert message.startswith("BACKUP STAGE BLOCK_COMMIT waited 1s (--lock-wait-timeout) for "
                                      f"session {session} (root@127.0.0.1, running "), message
            assert f"CREATE TABLE {ALL}.slow_ctas ENGINE=InnoDB AS SELECT SLEEP(60) AS s" in message
            assert f"KILL {session}" in message
            assert not LogicalManifest.read(tmp_path / f"b{plugin}").complete
        finally:
            source.execute(f"KILL {session}")
            ddl.join(30)
            blocker.close()
            source.execute(f"DROP TABLE IF EXISTS {ALL}.slow_ctas")
            if plugin:
                source.execute("UNINSTALL SONAME 'metadata_lock_info'")


def _ignore_errors(conn: Any, sql: str) -> None:
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
    except Exception:  # killed on purpose
        pass


# --- sequences and system-versioned tables ----------------------------------------------------------

HIST = "hist"
VERSIONED_TABLES = {"accounts": "id, balance", "notes": "code, body, rs, re", "loose": "a, b"}


def _history_schema(sb: Sandbox) -> None:
    """Sequences (one cached and used, one cycled, one a column's DEFAULT) and system-versioned tables
    with history: hidden period columns and an integer key (ranges), declared ones and a VARCHAR key
    (keyset pages), no key at all (one scan)."""
    sb.execute(
        f"CREATE DATABASE {HIST}", f"USE {HIST}",
        "CREATE SEQUENCE ids START WITH 1000 INCREMENT BY 10 CACHE 50",
        "CREATE SEQUENCE ring MAXVALUE 3 CYCLE NOCACHE",
        "SELECT NEXTVAL(ids), NEXTVAL(ring), NEXTVAL(ring), NEXTVAL(ring), NEXTVAL(ring)",
        "CREATE TABLE accounts (id INT PRIMARY KEY DEFAULT NEXTVAL(ids), balance INT) WITH SYSTEM VERSIONING",
        "INSERT INTO accounts SELECT seq, 0 FROM seq_1_to_300",
        "UPDATE accounts SET balance = balance + 1", "UPDATE accounts SET balance = balance + 1 WHERE id % 3 = 0",
        "DELETE FROM accounts WHERE id % 7 = 0", "INSERT INTO accounts (balance) VALUES (5)",
        "CREATE TABLE notes (code VARCHAR(10) PRIMARY KEY, body TEXT, "
        "rs TIMESTAMP(6) GENERATED ALWAYS AS ROW START, re TIMESTAMP(6) GENERATED ALWAYS AS ROW END, "
        "PERIOD FOR SYSTEM_TIME (rs, re)) WITH SYSTEM VERSIONING",
        "INSERT INTO notes (code, body) SELECT CONCAT('n', seq), 'first' FROM seq_1_to_250",
        "UPDATE notes SET body = 'second\\nline' WHERE code LIKE 'n1%'", "DELETE FROM notes WHERE code LIKE 'n2%'",
        "CREATE TABLE loose (a INT, b TEXT) WITH SYSTEM VERSIONING",
        "INSERT INTO loose VALUES (1, 'x'), (1, 'x'), (NULL, NULL)", "UPDATE loose SET b = 'y' WHERE a = 1",
        "ANALYZE TABLE accounts, notes")


def _history(sb: Sandbox, table: str) -> list[tuple[Any, ...]]:
    columns = VERSIONED_TABLES[table] + (", row_start, row_end" if table != "notes" else "")
    return sorted(sb.query(f"SELECT {columns} FROM {q(HIST, table)} FOR SYSTEM_TIME ALL"), key=repr)


def test_sequences_and_system_versioned_history_round_trip(
        source: Sandbox, mariadb_factory: MariadbFactory, tmp_path: Path) -> None:
    _history_schema(source)
    manifest = _backup(source, tmp_path / "b", parallel=2, chunk_rows=100, include=(f"{HIST}.*",), users=False)
    by_name = {t.name: t for t in manifest.tables}
    assert {n: t.kind for n, t in by_name.items()} == {
        "ids": "sequence", "ring": "sequence", "accounts": "system-versioned", "notes": "system-versioned",
        "loose": "system-versioned"}
    assert (by_name["ids"].sequence_next, by_name["ring"].sequence_next, by_name["ring"].sequence_round) == (1500, 2, 1)
    assert len(by_name["accounts"].chunks) > 2 and len(by_name["notes"].chunks) > 2  # ranges, keyset pages
    assert by_name["accounts"].rows == len(_history(source, "accounts")) > 600

    target = mariadb_factory("logical_history_target", server_id=36)
    restore_logical(tmp_path / "b", _address(target), parallel=2, indexes_after=True)
    for table in VERSIONED_TABLES:
        assert _history(target, table) == _history(source, table), table  # current rows and history alike
    assert target.query(f"SELECT * FROM {HIST}.accounts") == source.query(f"SELECT * FROM {HIST}.accounts")
    for sequence in ("ids", "ring"):
        assert target.query(f"SELECT * FROM {HIST}.{sequence}") == source.query(f"SELECT * FROM {HIST}.{sequence}")
    # NEXTVAL goes on where the source's next restart would: past every value it handed out.
    assert target.query(f"SELECT NEXTVAL({HIST}.ids), NEXTVAL({HIST}.ring)") == [(1500, 2)]
    target.execute(f"INSERT INTO {HIST}.accounts (balance) VALUES (9)")  # the DEFAULT NEXTVAL works
    assert target.query(f"SELECT id FROM {HIST}.accounts WHERE balance = 9") == [(1510,)]


def test_a_table_versioned_by_transaction_ids_is_refused_by_name(source: Sandbox, tmp_path: Path) -> None:
    source.execute("CREATE DATABASE trxv", "CREATE TABLE trxv.t (id INT, "
                   "rs BIGINT UNSIGNED GENERATED ALWAYS AS ROW START, re BIGINT UNSIGNED GENERATED ALWAYS AS ROW END, "
                   "PERIOD FOR SYSTEM_TIME (rs, re)) ENGINE=InnoDB WITH SYSTEM VERSIONING")
    with pytest.raises(BackupError, match=r"trxv.t is versioned by transaction ids .*--exclude 'trxv.t'"):
        _backup(source, tmp_path / "b", include=("trxv.*",), users=False)


# --- resuming a restore ----------------------------------------------------------------------------

RESUMABLE = "resumable"


def test_a_restore_killed_mid_load_resumes_without_loading_a_chunk_twice(
        source: Sandbox, mariadb_factory: MariadbFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """kill -9 of `binhub restore` while chunks load; `--resume` loads the rest: every table equals the
    source's. A chunk loaded twice would fail on the primary key (InnoDB) or show in the keyless
    table's checksum; the MyISAM table, loaded in part, is emptied and loaded again."""
    source.execute(
        f"CREATE DATABASE {RESUMABLE}",
        f"CREATE TABLE {RESUMABLE}.big (id INT PRIMARY KEY, k INT, u INT, pad CHAR(100), KEY (k), UNIQUE KEY (u)) "
        "ENGINE=InnoDB",
        f"INSERT INTO {RESUMABLE}.big SELECT seq, seq % 97, seq, REPEAT('b', 100) FROM {RESUMABLE}.seq_1_to_40000",
        f"CREATE TABLE {RESUMABLE}.heap (a INT, b VARCHAR(20)) ENGINE=InnoDB",
        f"INSERT INTO {RESUMABLE}.heap SELECT seq % 10, 'same' FROM {RESUMABLE}.seq_1_to_20000",
        f"CREATE TABLE {RESUMABLE}.mi (id INT PRIMARY KEY, v VARCHAR(20)) ENGINE=MyISAM",
        f"INSERT INTO {RESUMABLE}.mi SELECT seq, 'm' FROM {RESUMABLE}.seq_1_to_20000",
        f"ANALYZE TABLE {RESUMABLE}.big")
    backup = tmp_path / "b"
    manifest = _backup(source, backup, parallel=2, chunk_rows=1000, include=(f"{RESUMABLE}.*",), users=False)
    chunks = sum(len(t.chunks) for t in manifest.tables)
    target = mariadb_factory("logical_resume_target", server_id=37)
    dsn = f"mysql://root@127.0.0.1:{target.port}"
    restore = subprocess.Popen([sys.executable, "-m", "binhub", "restore", str(backup), "--to", dsn, "--parallel", "2",
                                "--indexes-after", "--no-progress"], stdout=subprocess.DEVNULL, stderr=(tmp_path / "restore.err").open("wb"))
    counted = "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'binhub' " \
              "AND TABLE_NAME = 'logical_restore_chunks'"
    try:
        wait_until(lambda: target.query(counted)[0][0] == 1
                   and target.query("SELECT COUNT(*) FROM binhub.logical_restore_chunks")[0][0] >= 5,
                   timeout=120, interval=0.02, message="the restore loaded no chunk (see restore.err)")
    finally:
        restore.kill()
        restore.wait(30)
    loaded = target.query("SELECT COUNT(*) FROM binhub.logical_restore_chunks")[0][0]
    assert 5 <= loaded < chunks, (loaded, chunks)

    # Without --resume the half-loaded target is refused, and the message says how to go on.
    proc = _cli("restore", str(backup), "--to", dsn, "--no-progress")
    assert proc.returncode == 1 and "did not finish: add --resume" in proc.stderr, proc.stderr
    proc = _cli("restore", str(backup), "--to", dsn, "--parallel", "2", "--resume", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert table_checksums(target.connect(), RESUMABLE) == table_checksums(source.connect(), RESUMABLE)
    assert _show_create_tables(target) == _show_create_tables(source)  # the deferred keys were added
    assert target.query("SELECT COUNT(*) FROM binhub.logical_restore_chunks") == [(0,)]
    assert target.query("SELECT finished_at IS NOT NULL FROM binhub.logical_restores") == [(1,)]
    proc = _cli("restore", str(backup), "--to", dsn, "--resume", "--no-progress")
    assert proc.returncode == 1 and "nothing to resume" in proc.stderr, proc.stderr

    # A MyISAM table has no rollback: a resume that finds a chunk of it unlisted empties it and loads it
    # whole again (loading only the unlisted chunk would hit rows already there).
    files = [c.file for t in manifest.tables for c in t.chunks]
    myisam = [c.file for t in manifest.tables if t.name == "mi" for c in t.chunks]
    (backup_id,) = target.query("SELECT backup FROM binhub.logical_restores")[0]
    target.execute("UPDATE binhub.logical_restores SET finished_at = NULL",
                   "INSERT INTO binhub.logical_restore_chunks (backup, chunk) VALUES "
                   + ",".join(f"('{backup_id}', '{f}')" for f in files if f != myisam[-1]))
    proc = _cli("restore", str(backup), "--to", dsn, "--resume", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert table_checksums(target.connect(), RESUMABLE) == table_checksums(source.connect(), RESUMABLE)

    # A chunk cut after its first part (parts of 16 KiB here): the resume loads the others only (the
    # first again would hit the primary key: LOAD DATA LOCAL skips such rows with a warning, logged).
    chunk = max(next(t for t in manifest.tables if t.name == "big").chunks, key=lambda c: c.sql_bytes)
    lines = zstandard.ZstdDecompressor().decompress((backup / chunk.file).read_bytes())
    later = [bytes(line).split(b"\t", 1)[0].decode() for part in split_parts(lines, 16384)[1:]
             for line in bytes(part).splitlines()]
    assert later, "the chunk has a single part"
    target.execute("UPDATE binhub.logical_restores SET finished_at = NULL",
                   "INSERT INTO binhub.logical_restore_chunks (backup, chunk, statements) VALUES "
                   + ",".join(f"('{backup_id}', '{f}', {1 if f == chunk.file else 'NULL'})" for f in files),
                   f"DELETE FROM {RESUMABLE}.big WHERE id IN ({','.join(later)})")
    with caplog.at_level(logging.WARNING, logger="binhub.backup.logical"):
        LogicalRestore(LogicalRestoreConfig(backup, _address(target), resume=True, part_bytes=16384)).run()
    assert not [r.getMessage() for r in caplog.records if "warnings" in r.getMessage()]
    assert table_checksums(target.connect(), RESUMABLE) == table_checksums(source.connect(), RESUMABLE)


def _show_create_tables(sb: Sandbox) -> dict[str, str]:
    return {name: sb.query(f"SHOW CREATE TABLE {q(RESUMABLE, name)}")[0][1] for name in ("big", "heap", "mi")}


def test_history_is_refused_up_front_by_a_target_with_secure_timestamp(
        source: Sandbox, mariadb_factory: MariadbFactory, tmp_path: Path) -> None:
    source.execute("CREATE DATABASE vers", "CREATE TABLE vers.t (id INT PRIMARY KEY) WITH SYSTEM VERSIONING",
                   "INSERT INTO vers.t VALUES (1)", "DELETE FROM vers.t")
    _backup(source, tmp_path / "b", include=("vers.*",), users=False)
    target = mariadb_factory("logical_secure_timestamp", server_id=38, extra_args=["--secure-timestamp=YES"])
    with pytest.raises(BackupError, match=r"system-versioned tables \(vers.t\) .* secure_timestamp = YES"):
        restore_logical(tmp_path / "b", _address(target))
    assert not target.query("SHOW DATABASES LIKE 'vers'")  # refused before anything was written
