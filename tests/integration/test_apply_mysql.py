"""``binhub stream --to mysql://``: the primary's changes relayed into a store and applied to a
second, empty MariaDB. The oracle is the primary itself: every table's CHECKSUM TABLE downstream
equals the primary's."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from binhub.sandbox import Sandbox
from tests.integration.applyutil import apply, assert_same_tables, checksums, drop_database, query, relay
from tests.integration.conftest import MariadbFactory, PrimaryDb
from tests.integration.test_stream import write_workload

BIG = 17 << 20  # a row over 16 MiB: more than one protocol packet


@pytest.fixture(scope="session")
def downstream(mariadb_factory: MariadbFactory) -> Sandbox:
    return mariadb_factory("apply_downstream", server_id=51)


@pytest.fixture
def fresh(downstream: Sandbox, primary_db: PrimaryDb) -> Iterator[Sandbox]:
    drop_database(downstream, primary_db.name)
    yield downstream
    drop_database(downstream, primary_db.name)


def more_workload(primary_db: PrimaryDb) -> None:
    """JSON documents, a row over 16 MiB, a multi-statement transaction and a table without a key."""
    c = primary_db.conn.cursor()
    c.execute("CREATE TABLE docs (id INT PRIMARY KEY, doc JSON, body LONGBLOB, note TEXT)")
    c.execute("INSERT INTO docs VALUES (1, %s, NULL, 'j'), (2, '[1, 2.5, \"x\", null]', '', NULL)",
              (json.dumps({"a": {"b": [1, 2, {"c": "ü"}]}, "n": None}),))
    c.execute("INSERT INTO docs VALUES (3, '{}', %s, 'big')", (bytes(range(256)) * (BIG // 256),))
    c.execute("UPDATE docs SET doc = JSON_SET(doc, '$.a.z', 5) WHERE id = 1")
    c.execute("BEGIN")
    for i in range(10, 200):
        c.execute("INSERT INTO docs (id, doc, note) VALUES (%s, '{\"i\": 1}', %s)", (i, f"row {i}"))
    c.execute("UPDATE docs SET note = CONCAT(note, '!') WHERE id BETWEEN 50 AND 60")
    c.execute("DELETE FROM docs WHERE id BETWEEN 100 AND 120")
    c.execute("COMMIT")
    c.execute("UPDATE docs SET body = REVERSE(body) WHERE id = 3")


def test_stream_to_mysql_reproduces_every_table(primary_db: PrimaryDb, fresh: Sandbox, tmp_path: Path) -> None:
    write_workload(primary_db)
    more_workload(primary_db)
    relay(primary_db, tmp_path / "store")
    apply(tmp_path / "store", fresh, primary_db.name)
    assert_same_tables(primary_db.sandbox, fresh, primary_db.name)
    # The checkpoint row names where the stream stands; a second run applies nothing twice.
    rows = query(fresh, "SELECT file, pos, gtid_set FROM binhub.stream_checkpoint WHERE stream = %s",
                 (primary_db.name,))
    assert rows and rows[0][2]
    apply(tmp_path / "store", fresh, primary_db.name)
    assert_same_tables(primary_db.sandbox, fresh, primary_db.name)
    assert checksums(fresh, primary_db.name)["docs"] is not None
