"""TransactionTracker edge cases on synthetic streams (layouts as in the vendor sources) and real files."""

from __future__ import annotations

import struct
import uuid
from pathlib import Path

from binhub.binlog.checksum import with_crc
from binhub.binlog.constants import EventType
from binhub.binlog.file import read_events
from binhub.binlog.gtid import MariadbGtid, MysqlGtid
from binhub.binlog.header import HEADER_STRUCT
from binhub.binlog.transaction import TransactionTracker

SID = uuid.UUID("3e11fa47-71ca-11e1-9e33-c80aa9429562")
FL_STANDALONE, FL_TRANSACTIONAL, FL_DDL, FL_PREPARED_XA, FL_COMPLETED_XA = 1, 4, 32, 64, 128


def event(type_code: int, body: bytes, *, server_id: int = 1, ts: int = 1700000000, crc: bool = True) -> bytes:
    size = 19 + len(body) + (4 if crc else 0)
    raw = HEADER_STRUCT.pack(ts, type_code, server_id, size, 0, 0) + body
    return with_crc(raw) if crc else raw


def query(sql: str, schema: str = "db", status: bytes = b"\x00\x00\x00\x00\x00", **kw: int) -> bytes:
    # Query_event post-header: thread_id, exec_time, db_len, error_code, status_vars_len.
    post = struct.pack("<IIBHH", 7, 0, len(schema), 0, len(status))
    return event(EventType.QUERY, post + status + schema.encode() + b"\0" + sql.encode(), **kw)  # type: ignore[arg-type]


def mysql_gtid(gno: int) -> bytes:
    return event(EventType.GTID, b"\x01" + SID.bytes + struct.pack("<qBqq", gno, 2, 0, 1))


def maria_gtid(seq: int, flags2: int, domain: int = 0) -> bytes:
    return event(EventType.MARIA_GTID, struct.pack("<QIB", seq, domain, flags2) + bytes(6), server_id=3)


def xid(n: int = 1) -> bytes:
    return event(EventType.XID, struct.pack("<Q", n))


def simple(type_code: int, body: bytes = b"\0" * 9) -> bytes:
    return event(type_code, body)


def run(stream: list[bytes], tracker: TransactionTracker | None = None) -> tuple[list[bool], TransactionTracker]:
    t = tracker or TransactionTracker()
    return [t.feed(raw) for raw in stream], t


def test_mysql_dml_transaction() -> None:
    rows = simple(EventType.WRITE_ROWS_V2, bytes(6) + b"\x01\x00" + b"\x02\x00" + b"\x01\x00")
    flags, t = run([mysql_gtid(5), query("BEGIN"), simple(EventType.TABLE_MAP), rows, xid()])
    assert flags == [False, False, False, False, True]
    assert t.last_gtid == MysqlGtid(SID, 5) and t.transactions == 1 and not t.in_transaction
    assert t.last_timestamp == 1700000000


def test_mysql_ddl_without_begin() -> None:
    flags, t = run([mysql_gtid(6), query("CREATE TABLE t (a INT)"), mysql_gtid(7), query("drop table t")])
    assert flags == [False, True, False, True]
    assert t.transactions == 2 and t.last_gtid == MysqlGtid(SID, 7)


def test_savepoint_and_rollback_to_stay_inside() -> None:
    stream = [mysql_gtid(8), query("BEGIN"), query("SAVEPOINT s1"), query("INSERT INTO t VALUES (1)"),
              query("ROLLBACK TO s1"), query("rollback")]
    flags, _ = run(stream)
    assert flags == [False] * 5 + [True]


def test_commit_query_ends_and_begin_is_case_insensitive() -> None:
    flags, _ = run([query("begin"), query("UPDATE t SET a = 1"), query("COMMIT")])
    assert flags == [False, False, True]


def test_mysql_xa() -> None:
    xa_prepare = simple(EventType.XA_PREPARE, b"\x00" + struct.pack("<III", 1, 1, 0) + b"x")
    stream = [mysql_gtid(9), query("XA START X'78',X'',1"), query("INSERT INTO t VALUES (2)"),
              query("XA END X'78',X'',1"), xa_prepare,
              mysql_gtid(10), query("XA COMMIT X'78',X'',1")]
    flags, t = run(stream)
    assert flags == [False, False, False, False, True, False, True]
    assert t.transactions == 2 and t.last_gtid == MysqlGtid(SID, 10)


def test_mariadb_standalone_ddl_with_prefix_events() -> None:
    stream = [maria_gtid(5, FL_STANDALONE | FL_DDL), simple(EventType.MARIA_ANNOTATE_ROWS, b"CREATE ..."),
              query("CREATE TABLE t (a INT)"), maria_gtid(6, FL_STANDALONE),
              simple(EventType.INTVAR, b"\x02" + bytes(8)), simple(EventType.USER_VAR),
              query("INSERT INTO myisam_t VALUES (LAST_INSERT_ID())")]
    flags, t = run(stream)
    assert flags == [False, False, True, False, False, False, True]
    assert t.last_gtid == MariadbGtid(0, 3, 6)


def test_mariadb_transactional_gtid_acts_as_begin() -> None:
    stream = [maria_gtid(7, FL_TRANSACTIONAL), simple(EventType.MARIA_ANNOTATE_ROWS, b"INSERT ..."),
              simple(EventType.TABLE_MAP), query("INSERT INTO t VALUES (3)"), xid()]
    flags, t = run(stream)
    assert flags == [False, False, False, False, True]
    assert t.last_gtid == MariadbGtid(0, 3, 7)


def test_mariadb_xa_prepare_then_commit() -> None:
    xa_gtid = event(EventType.MARIA_GTID, struct.pack("<QIB", 8, 0, FL_PREPARED_XA | FL_TRANSACTIONAL)
                    + struct.pack("<IBB", 1, 1, 0) + b"x", server_id=3)
    xa_prepare = simple(EventType.XA_PREPARE, b"\x00" + struct.pack("<III", 1, 1, 0) + b"x")
    stream = [xa_gtid, query("INSERT INTO t VALUES (4)"), query("XA END X'78',X'',1"), xa_prepare,
              maria_gtid(9, FL_COMPLETED_XA), query("XA COMMIT X'78',X'',1"),
              maria_gtid(10, FL_COMPLETED_XA | FL_STANDALONE), query("XA ROLLBACK X'79',X'',1")]
    flags, t = run(stream)
    assert flags == [False, False, False, True, False, True, False, True]
    assert t.transactions == 3 and t.last_gtid == MariadbGtid(0, 3, 10)


def test_pre_gtid_stream_and_control_events() -> None:
    stream = [simple(EventType.FORMAT_DESCRIPTION), query("BEGIN"), query("INSERT INTO t VALUES (1)"),
              simple(EventType.ROTATE), xid(), simple(EventType.INTVAR, b"\x02" + bytes(8)),
              query("INSERT INTO t2 VALUES (NULL)"), simple(100), simple(EventType.STOP, b"")]
    flags, t = run(stream)
    # ROTATE inside an open group belongs to it; unknown 100 and STOP outside one are units.
    assert flags == [True, False, False, False, True, False, True, True, True]
    assert t.transactions == 2 and t.last_gtid is None


def test_new_gtid_replaces_an_unfinished_group() -> None:
    flags, t = run([mysql_gtid(1), query("BEGIN"), mysql_gtid(2), query("BEGIN"), xid()])
    assert flags == [False, False, False, False, True]
    assert t.last_gtid == MysqlGtid(SID, 2) and t.transactions == 1


def test_checksum_none_and_memoryview_input() -> None:
    t = TransactionTracker()
    assert not t.feed(memoryview(query("BEGIN", crc=False)), 0)
    assert t.feed(memoryview(query("COMMIT", crc=False)), 0)


def test_transaction_payload_ends_group() -> None:
    anon = event(EventType.ANONYMOUS_GTID, b"\x00" + bytes(16) + struct.pack("<qBqq", 0, 2, 0, 1))
    flags, t = run([anon, simple(EventType.TRANSACTION_PAYLOAD)])
    assert flags == [False, True] and t.last_gtid is None


def test_statement_based_user_var_file(shared_binlogs: Path) -> None:
    """14_user_var: two DDLs, then GTID, BEGIN, INTVAR, USER_VAR x3, INSERT, XID."""
    t = TransactionTracker()
    cut_after = [raw.header.type_name for raw in read_events(shared_binlogs / "rust-us__mysql-cdc-rs/5.7/14_user_var/log.bin")
                 if t.feed(raw.data)]
    assert cut_after == ["FORMAT_DESCRIPTION", "PREVIOUS_GTIDS", "QUERY", "QUERY", "XID", "ROTATE"]
    assert t.last_gtid == MysqlGtid(uuid.UUID("e3e2a4ee-b6dc-11ea-8bcf-0242ac150002"), 3)


def test_load_data_file(shared_binlogs: Path) -> None:
    """17_18_load: GTID, BEGIN, BEGIN_LOAD_QUERY, EXECUTE_LOAD_QUERY, XID is one transaction."""
    t = TransactionTracker()
    seen = [(raw.header.type_name, t.feed(raw.data))
            for raw in read_events(shared_binlogs / "rust-us__mysql-cdc-rs/5.7/17_18_load/log.bin")]
    assert seen == [("FORMAT_DESCRIPTION", True), ("PREVIOUS_GTIDS", True), ("GTID", False), ("QUERY", False),
                    ("BEGIN_LOAD_QUERY", False), ("EXECUTE_LOAD_QUERY", False), ("XID", True), ("ROTATE", True)]
    assert t.transactions == 1


def test_tagged_gtid_is_decoded_lazily(shared_binlogs: Path) -> None:
    t = TransactionTracker()
    for raw in read_events(shared_binlogs / "blackbeam__rust_mysql_common/binlog_transaction_with_GTID_TAG.000001"):
        t.feed(raw.data)
    assert str(t.last_gtid) == "55778904-0299-11f1-b1b8-4ef0c4956feb:mytag:3"


def test_gtid_event_domain_reads_the_domain_id(tmp_path: Path) -> None:
    """The store folds one GTID per domain by this: reading the wrong bytes merged domains (and lost one)."""
    from binhub.binlog.file import BinlogFileReader
    from binhub.binlog.transaction import TransactionTracker, gtid_event_domain
    from tests.binlog_factory import BinlogFileBuilder

    b = BinlogFileBuilder("mariadb-bin.000001", "mariadb")
    b.gtid_list([])
    for domain, seq in ((0, 5), (1, 7), (70000, 9), (0, 6)):
        b.maria_txn(domain, seq)
    path = b.save(tmp_path)
    tracker = TransactionTracker()
    seen = []
    with open(path, "rb") as f:
        for ev in BinlogFileReader(f, path.name):
            event = tracker.last_gtid_event
            if tracker.feed(ev.data, 4) and tracker.last_gtid_event is not event:
                gtid, raw = tracker.last_gtid, tracker.last_gtid_event
                assert isinstance(gtid, MariadbGtid) and raw is not None
                seen.append((gtid.domain_id, gtid_event_domain(raw)))
    assert seen == [(0, 0), (1, 1), (70000, 70000), (0, 0)]
