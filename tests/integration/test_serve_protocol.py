"""binhub's server answering as its upstream does, checked against the upstream's own answers.

The shared MariaDB primary is the oracle: the same statement goes to it and to binhub (serving a
store relayed from it), and the answers must match: columns, values, error numbers and messages.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest

from binhub.sandbox import Sandbox
from binhub.store.state import UpstreamSource
from tests.integration.serveutil import PASSWORD, USER, ServerThread, mariadb_store


@pytest.fixture
def empty_hub(tmp_path: Path) -> Iterator[ServerThread]:
    store = mariadb_store(tmp_path / "store")
    store.update_state(source=UpstreamSource(host="127.0.0.1", port=3306, user="repl"))  # a relay has connected
    server = ServerThread(store, tls=False)
    yield server
    server.stop()
    store.close()


def hub_connect(port: int) -> Any:
    return pymysql.connect(host="127.0.0.1", port=port, user=USER, password=PASSWORD, connect_timeout=10)


def answer(conn: Any, statement: str) -> tuple[list[str], list[tuple[Any, ...]]] | tuple[int, str]:
    """(column names, rows), or (error number, message)."""
    try:
        with conn.cursor() as cur:
            cur.execute(statement)
            return [d[0] for d in cur.description or ()], [tuple(r) for r in cur.fetchall()]
    except pymysql.MySQLError as exc:
        return int(exc.args[0]), str(exc.args[1])


@pytest.mark.parametrize("statement", [
    "SHOW SLAVE STATUS FOR CHANNEL ''", "SHOW REPLICA STATUS FOR CHANNEL ''", "SHOW SLAVE '' STATUS",
    "SHOW SLAVE STATUS FOR CHANNEL 'eu_west'", "SHOW REPLICA STATUS FOR CHANNEL 'eu_west'",
    "SHOW SLAVE 'eu_west' STATUS", "SHOW REPLICA 'eu_west' STATUS", "SHOW REPLICA `eu_west` STATUS",
])
def test_show_slave_status_of_a_named_connection(primary: Sandbox, empty_hub: ServerThread, statement: str) -> None:
    """The default channel / unnamed connection is binhub's upstream; another name is unknown, as on mariadbd."""
    mine = primary.connect()
    hub = hub_connect(empty_hub.port)
    try:
        expected, got = answer(mine, statement), answer(hub, statement)
        default = answer(hub, "SHOW SLAVE STATUS")
    finally:
        mine.close()
        hub.close()
    if expected[0] == 1064:  # a syntax error on both sides: the texts differ, as parsers do
        assert got[0] == 1064, got
    elif isinstance(expected[0], int):
        assert got == expected  # (1617, "There is no master connection 'eu_west'")
    else:
        # The primary replicates from no one (no row); binhub shows its relay's row, same columns.
        assert isinstance(got[0], list) and got[0] == expected[0], got
        assert got == default and len(got[1]) == 1
