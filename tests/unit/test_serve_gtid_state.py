"""The GTID variables follow the store's durable position, whatever the state file last said.

The relay writes ``state.json`` at most every second (and at rotation and close): a server that
answered from it reported the executed set of its last write. Here the state file is made stale on
purpose (as a relay that went idle right after a burst leaves it), and the answers must still be
the files' own: MySQL's next PREVIOUS_GTIDS, MariaDB's GTID events (mariadbd's checks are in
tests/integration/test_serve_protocol.py).
"""

from __future__ import annotations

from pathlib import Path

from binhub.binlog.decode import decode_event
from binhub.binlog.events import PreviousGtidsEvent
from binhub.binlog.file import BinlogFileReader
from binhub.binlog.gtid import MariadbGtid, MysqlGtidSet
from binhub.serve.queries import QueryHandler
from binhub.serve.server import BinlogServer
from binhub.serve.session import SessionState
from binhub.serve.users import UserDirectory, make_user
from binhub.store import StoreReader
from binhub.store.state import StoreState
from tests.binlog_factory import BinlogFileBuilder
from tests.unit.test_serve_dump import U1, make_store, mariadb_files, mysql_files


def _ask(store: StoreReader, sql: str) -> list[tuple[object, ...]]:
    server = BinlogServer(store, users=UserDirectory(users=[make_user("repl", "pw")]), server_id=77, port=3307)
    reply = QueryHandler(server, SessionState(user="repl", connection_id=1)).execute(sql)
    return list(getattr(reply, "rows", []))


def _stale(data_dir: Path, executed: str, last_file: str, last_position: int) -> None:
    path = data_dir / "state.json"
    state = StoreState.load(path)
    state.with_(executed_gtids=executed, last_file=last_file, last_position=last_position).save(path)


def test_mysql_gtid_executed_is_the_files_not_the_state_files(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    paths = mysql_files(src, txns=10, files=3)
    store = make_store(tmp_path, paths[:2])  # the third file's PREVIOUS_GTIDS is the oracle
    store.close()
    _stale(tmp_path / "store", f"{U1}:1-3", "mysql-bin.000002", 4)
    reader = StoreReader.open(tmp_path / "store")
    with open(paths[2], "rb") as f:
        expected = next(ev for ev in (decode_event(e.data, None) for e in BinlogFileReader(f, paths[2].name))
                        if isinstance(ev, PreviousGtidsEvent)).gtid_set
    assert expected == MysqlGtidSet.parse(f"{U1}:1-20")
    for sql in ("SELECT @@global.gtid_executed", "SELECT @@GLOBAL.GTID_EXECUTED"):
        assert MysqlGtidSet.parse(str(_ask(reader, sql)[0][0])) == expected
    assert MysqlGtidSet.parse(str(_ask(reader, "SHOW MASTER STATUS")[0][4])) == expected


def test_mariadb_positions_are_the_files_not_the_state_files(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    store = make_store(tmp_path, mariadb_files(src, txns=10, files=2))
    store.close()
    _stale(tmp_path / "store", "0-1-1", "mariadb-bin.000002", 4)
    reader = StoreReader.open(tmp_path / "store")
    assert _ask(reader, "SELECT @@gtid_binlog_pos, @@gtid_current_pos, @@gtid_binlog_state") == [
        ("0-1-20", "0-1-20", "0-1-20")]


def test_a_state_file_that_lost_a_domain_is_not_trusted(tmp_path: Path) -> None:
    """Older relays wrote only the last domain to state.json: the file's own GTID_LIST shows it, and
    the answer comes from reading the file instead."""
    src = tmp_path / "src"
    src.mkdir()
    first = BinlogFileBuilder("mariadb-bin.000001", "mariadb")
    first.gtid_list([])
    for seq in range(1, 4):
        first.maria_txn(0, seq)
        first.maria_txn(1, seq)
    first.rotate("mariadb-bin.000002")
    second = BinlogFileBuilder("mariadb-bin.000002", "mariadb")
    second.gtid_list([MariadbGtid(0, 1, 3), MariadbGtid(1, 1, 3)])
    second.maria_txn(0, 4)
    second.maria_txn(1, 4)
    store = make_store(tmp_path, [first.save(src), second.save(src)])
    end = store.durable_position
    store.close()
    assert end is not None
    _stale(tmp_path / "store", "1-1-4", "mariadb-bin.000002", end.position)
    reader = StoreReader.open(tmp_path / "store")
    assert _ask(reader, "SELECT @@gtid_binlog_pos") == [("0-1-4,1-1-4",)]
