"""``START SLAVE UNTIL master_gtid_pos`` through binhub stops exactly where it stops from mariadbd.

MariaDB enforces the UNTIL position in the primary's dump thread (``@slave_until_gtid``), so a
point-in-time restore by replication from binhub depends on binhub doing it. For each stop
position, two real MariaDB replicas start from the same GTID position, one replicating from the
primary and one from binhub (serving a store relayed from that primary), and both must stop with
the same ``gtid_slave_pos``, the same tables and the same rows, both threads stopped without error.

The workload writes two GTID domains and leaves a hole in domain 0's sequence numbers, so the
cases of mariadbd's source are all here: several domains to reach, a domain the position does not
name (never sent), a stop GTID missing from the binlog (stop before the next one), a stop reached
inside the start file.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pymysql
import pytest

from binhub.binlog.constants import EventType
from binhub.errors import EndOfDump, UpstreamError
from binhub.net.client import UpstreamConnection
from binhub.sandbox import Sandbox
from binhub.serve.session import default_dump_handler
from binhub.store import StoreReader
from tests.integration.conftest import MariadbFactory
from tests.integration.relayutil import run_relay
from tests.integration.serveutil import PASSWORD, USER, ServerThread
from tests.integration.workload import table_checksums, wait_until

DB = "pitr"
PRIMARY_ID = 51


@dataclass
class UntilSetup:
    primary: Sandbox
    hub: ServerThread
    start_gtid: str  # the primary's gtid_binlog_pos before the workload
    mid: str  # its gtid_binlog_pos half-way, both domains
    hole: str  # a domain-0 GTID that does not exist (inside a gap of sequence numbers)
    end: str  # its gtid_binlog_pos at the end


def _pos(conn: Any) -> str:
    with conn.cursor() as cur:
        cur.execute("SELECT @@gtid_binlog_pos")
        return str(cur.fetchone()[0])


def _run(conn: Any, *statements: str) -> None:
    with conn.cursor() as cur:
        for s in statements:
            cur.execute(s)


@pytest.fixture(scope="module")
def setup(mariadb_factory: MariadbFactory, tmp_path_factory: pytest.TempPathFactory) -> Iterator[UntilSetup]:
    primary = mariadb_factory("until_primary", server_id=PRIMARY_ID)
    d0, d1 = primary.connect(), primary.connect()
    try:
        start = _pos(d0)
        _run(d0, f"CREATE DATABASE {DB}", f"CREATE TABLE {DB}.t0 (id INT PRIMARY KEY, v VARCHAR(20))",
             f"CREATE TABLE {DB}.t1 (id INT PRIMARY KEY, v VARCHAR(20))")
        _run(d1, "SET SESSION gtid_domain_id = 1")
        for i in range(1, 11):
            _run(d0, f"INSERT INTO {DB}.t0 VALUES ({i}, 'a')")
            _run(d1, f"INSERT INTO {DB}.t1 VALUES ({i}, 'a')")
        mid = _pos(d0)
        seq0 = int(mid.split(",")[0].rsplit("-", 1)[1])
        _run(d0, f"SET SESSION gtid_seq_no = {seq0 + 10}")  # domain 0 jumps: seq0+1 .. seq0+9 never exist
        for i in range(11, 21):
            _run(d0, f"INSERT INTO {DB}.t0 VALUES ({i}, 'b')")
            _run(d1, f"INSERT INTO {DB}.t1 VALUES ({i}, 'b')")
        _run(d0, f"CREATE TABLE {DB}.after0 (id INT PRIMARY KEY)", f"UPDATE {DB}.t0 SET v = 'c'")
        _run(d1, f"CREATE TABLE {DB}.after1 (id INT PRIMARY KEY)", f"DELETE FROM {DB}.t1 WHERE id > 15")
        end = _pos(d0)
    finally:
        d0.close()
        d1.close()
    data_dir = tmp_path_factory.mktemp("until") / "store"
    done = run_relay(primary.dsn, data_dir)
    assert done.returncode == 0, done.stderr
    hub = ServerThread(StoreReader.open(data_dir), tls=False, dump_handler=default_dump_handler)
    try:
        yield UntilSetup(primary, hub, start, mid, f"0-{PRIMARY_ID}-{seq0 + 5}", end)
    finally:
        hub.stop()


def _ahead(position: str) -> str:
    """``position`` with domain 0 five transactions further than the binlog goes."""
    first, _, rest = position.partition(",")
    domain, server, seq = first.split("-")
    return ",".join(filter(None, [f"{domain}-{server}-{int(seq) + 5}", rest]))


def _replicate_until(replica: Sandbox, port: int, user: str, password: str, start: str, until: str,
                     strict: bool) -> None:
    replica.execute("STOP SLAVE", f"SET GLOBAL gtid_strict_mode = {int(strict)}", f"SET GLOBAL gtid_slave_pos = '{start}'",
                    f"CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={port}, MASTER_USER='{user}', "
                    f"MASTER_PASSWORD='{password}', MASTER_CONNECT_RETRY=1, MASTER_USE_GTID=slave_pos",
                    f"START SLAVE UNTIL master_gtid_pos = '{until}'")


def _stopped(replica: Sandbox) -> dict[str, Any] | None:
    conn = replica.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW SLAVE STATUS")
            row = cur.fetchone()
            names = [d[0] for d in cur.description or ()]
    finally:
        conn.close()
    st = dict(zip(names, row, strict=True)) if row else {}
    return st if st.get("Slave_SQL_Running") == "No" and st.get("Slave_IO_Running") == "No" else None


def _outcome(replica: Sandbox) -> tuple[str, dict[str, int | None]]:
    conn = replica.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT @@gtid_slave_pos")
            pos = str(cur.fetchone()[0])
            cur.execute(f"SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '{DB}'")
            exists = cur.fetchone()[0]
        return pos, table_checksums(conn, DB) if exists else {}
    finally:
        conn.close()


CASES = ["both-domains", "missing-gtid-one-domain", "missing-gtid-strict-mode", "before-start",
         "ahead-of-the-binlog"]


@pytest.mark.parametrize("case", CASES)
def test_until_master_gtid_pos_stops_where_mariadbd_stops(setup: UntilSetup, mariadb_factory: MariadbFactory,
                                                          case: str) -> None:
    until, start = {
        # Both domains named, both reached half-way: the tables created at the end must not exist.
        "both-domains": (setup.mid, setup.start_gtid),
        # Domain 0's stop GTID falls in the gap (the next one is not sent); domain 1 is not named.
        "missing-gtid-one-domain": (setup.hole, setup.start_gtid),
        # The same with gtid_strict_mode on the replicas (sent as @slave_gtid_strict_mode).
        "missing-gtid-strict-mode": (setup.hole, setup.start_gtid),
        # A stop the start position is already past: nothing more is applied.
        "before-start": (setup.start_gtid, setup.mid),
        # A replica ahead of everything the primary has in domain 0, with a stop before its start:
        # no error (check_slave_start_position), nothing applied.
        "ahead-of-the-binlog": (setup.mid, _ahead(setup.end)),
    }[case]
    base = 200 + 10 * CASES.index(case)
    strict = case.endswith("strict-mode")
    direct = mariadb_factory(f"until_direct_{base}", server_id=base + 1)
    through = mariadb_factory(f"until_hub_{base}", server_id=base + 2)
    try:
        _replicate_until(direct, setup.primary.port, setup.primary.repl_user, setup.primary.repl_password, start,
                         until, strict)
        _replicate_until(through, setup.hub.port, USER, PASSWORD, start, until, strict)
        statuses = [wait_until(lambda r=r: _stopped(r), timeout=60, message=f"{r.name} did not stop at {until}")
                    for r in (direct, through)]
        for st in statuses:
            assert not st["Last_IO_Error"] and not st["Last_SQL_Error"], st
        expected, got = _outcome(direct), _outcome(through)
        assert got == expected
        if case == "both-domains":
            assert expected[0] == setup.mid and expected[1] and "after0" not in expected[1]
        assert expected[0] != setup.end
    finally:
        for sb in (direct, through):
            with contextlib.suppress(Exception):
                sb.kill()


async def _until_dump(port: int, user: str, password: str, start: str, until: str) -> tuple[list[int], str]:
    """A GTID dump with @slave_until_gtid: the types of the events sent, and how the dump ended."""
    conn = await UpstreamConnection.connect("127.0.0.1", port, user, password)
    kinds: list[int] = []
    try:
        for statement in ("SET @master_binlog_checksum = 'CRC32'", "SET @mariadb_slave_capability = 4",
                          f"SET @slave_connect_state = '{start}'", "SET @slave_gtid_strict_mode = 0",
                          "SET @slave_gtid_ignore_duplicates = 0", f"SET @slave_until_gtid = '{until}'"):
            await conn.execute(statement)
        await conn.start_binlog_dump("", 4, 778, 0)  # blocking: only the UNTIL stop ends it
        while True:
            try:
                events = await asyncio.wait_for(conn.read_events(), 10)
            except EndOfDump:
                return kinds, "EOF"
            except UpstreamError as exc:
                return kinds, f"ERR {exc.code}"
            kinds += [bytes(e[4:5])[0] for e in events]
            if len(kinds) > 10_000:
                return kinds, "runs on"
    finally:
        await conn.close()


@pytest.mark.parametrize("case", ["before-start", "ahead-of-the-binlog", "both-domains"])
def test_until_dump_ends_as_mariadbds(setup: UntilSetup, case: str) -> None:
    """The dump itself, as a replica's IO thread sees it: what is sent, then the UNTIL stop's EOF.

    (A replica checks a stop its own position is past before it connects; the primary's side of
    those cases is only visible here.)"""
    start, until = {"before-start": (setup.mid, setup.start_gtid), "ahead-of-the-binlog": (_ahead(setup.end), setup.mid),
                    "both-domains": (setup.start_gtid, setup.mid)}[case]
    primary = setup.primary
    expected = asyncio.run(_until_dump(primary.port, primary.repl_user, primary.repl_password, start, until))
    got = asyncio.run(_until_dump(setup.hub.port, USER, PASSWORD, start, until))
    assert expected[1] == "EOF" and expected[0][-1] == EventType.MARIA_GTID_LIST
    assert got == expected


@pytest.mark.parametrize("variable", ["slave_until_gtid", "slave_connect_state"])
def test_malformed_gtid_positions_are_refused_as_mariadbd_does(setup: UntilSetup, variable: str) -> None:
    """A @slave_until_gtid / @slave_connect_state mariadbd cannot parse: the same error from binhub."""
    import asyncio

    from binhub.errors import UpstreamError
    from binhub.net.client import UpstreamConnection

    async def ask(port: int, user: str, password: str) -> tuple[int, str]:
        conn = await UpstreamConnection.connect("127.0.0.1", port, user, password)
        try:
            for s in ("SET @master_binlog_checksum = 'CRC32'", "SET @mariadb_slave_capability = 4",
                      f"SET @slave_connect_state = '{setup.start_gtid}'", f"SET @slave_until_gtid = '{setup.end}'",
                      f"SET @{variable} = 'x-y'"):
                await conn.execute(s)
            await conn.start_binlog_dump("", 4, 777, 0)
            try:
                await conn.read_events()
            except UpstreamError as exc:
                return exc.code, exc.server_message
            raise AssertionError("the dump was not refused")
        finally:
            await conn.close()

    primary = setup.primary
    expected = asyncio.run(ask(primary.port, primary.repl_user, primary.repl_password))
    got = asyncio.run(ask(setup.hub.port, USER, PASSWORD))
    assert got[0] == expected[0] == 1941
    assert got[1].startswith(expected[1])


def test_two_domain_gtid_variables_are_the_primarys(setup: UntilSetup) -> None:
    """With two domains and a gap in one, binhub's GTID variables still say what the primary says."""
    statement = "SELECT @@gtid_binlog_pos, @@gtid_current_pos, @@gtid_binlog_state"
    answers = []
    for port, user, password in ((setup.primary.port, setup.primary.repl_user, setup.primary.repl_password),
                                 (setup.hub.port, USER, PASSWORD)):
        conn = pymysql.connect(host="127.0.0.1", port=port, user=user, password=password, connect_timeout=10)
        try:
            with conn.cursor() as cur:
                cur.execute(statement)
                answers.append(cur.fetchall())
        finally:
            conn.close()
    assert answers[0] == answers[1] and answers[0][0][0] == setup.end
