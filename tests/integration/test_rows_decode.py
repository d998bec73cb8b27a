"""The row decoder against a real MariaDB: a table with every column type, written with the
default ``binlog_row_metadata`` (no names in the binlog: they come from a TableSchema, as the
schema history will supply them) and with FULL (plus compressed binlog events). Two oracles:
``mariadb-binlog -v`` on the same events, column by column, and the primary's own SELECT against
the table rebuilt by replaying the decoded changes."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from binhub.binlog.changes import RowChange
from binhub.binlog.column_values import Geometry, UndecodedText
from binhub.binlog.columns import ColumnInfo, TableSchema
from binhub.binlog.file import row_changes
from binhub.errors import SchemaMismatch
from binhub.sandbox import Sandbox
from tests.rowcheck import decoded_rows, inflate_compressed, parse_verbose, printed_rows, run_mariadb_binlog

pytestmark = pytest.mark.skipif(shutil.which("mariadb-binlog") is None, reason="mariadb-binlog is not installed")

TABLE_DDL = """
CREATE TABLE every_type (
  id INT NOT NULL PRIMARY KEY,
  ti TINYINT, tiu TINYINT UNSIGNED, si SMALLINT, siu SMALLINT UNSIGNED, mi MEDIUMINT, miu MEDIUMINT UNSIGNED,
  i INT, iu INT UNSIGNED, bi BIGINT, biu BIGINT UNSIGNED,
  d1 DECIMAL(10,3), d2 DECIMAL(65,30), d3 DECIMAL(5,0) UNSIGNED, d4 DECIMAL(18,9),
  f FLOAT, db DOUBLE,
  dt DATE, t0 TIME, t1 TIME(1), t3 TIME(3), t6 TIME(6),
  dtm0 DATETIME, dtm2 DATETIME(2), dtm6 DATETIME(6),
  ts0 TIMESTAMP NULL DEFAULT NULL, ts4 TIMESTAMP(4) NULL DEFAULT NULL, ts6 TIMESTAMP(6) NULL DEFAULT NULL,
  y YEAR,
  c CHAR(10) CHARACTER SET utf8mb4, vc VARCHAR(300) CHARACTER SET utf8mb4, l1 VARCHAR(50) CHARACTER SET latin1,
  gb VARCHAR(50) CHARACTER SET gbk, u3 VARCHAR(20) CHARACTER SET utf8mb3,
  bn BINARY(8), vb VARBINARY(100), tx TEXT CHARACTER SET utf8mb4, mtx MEDIUMTEXT CHARACTER SET utf8mb4,
  bl BLOB, lbl LONGBLOB,
  e ENUM('a','b','c'), s SET('x','y','z'), b1 BIT(1), b13 BIT(13), b64 BIT(64),
  j JSON, g GEOMETRY, pt POINT,
  el ENUM('é','ü') CHARACTER SET latin1, uc VARCHAR(20) CHARACTER SET utf8mb4 COLLATE utf8mb4_uca1400_ai_ci,
  cz VARCHAR(2000) CHARACTER SET utf8mb4 COMPRESSED, bz BLOB COMPRESSED
) ENGINE=InnoDB
"""
COLUMNS = ["id", "ti", "tiu", "si", "siu", "mi", "miu", "i", "iu", "bi", "biu", "d1", "d2", "d3", "d4", "f", "db",
           "dt", "t0", "t1", "t3", "t6", "dtm0", "dtm2", "dtm6", "ts0", "ts4", "ts6", "y", "c", "vc", "l1", "gb", "u3",
           "bn", "vb", "tx", "mtx", "bl", "lbl", "e", "s", "b1", "b13", "b64", "j", "g", "pt", "el", "uc",
           "cz", "bz"]
MIB_BLOB = bytes((i * 7 + i // 256) & 0xFF for i in range(1 << 20))
D65 = "9" * 35 + "." + "9" * 30

ROWS: list[dict[str, Any]] = [
    {"id": 1},  # every other column NULL
    dict(id=2, ti=-128, tiu=0, si=-32768, siu=0, mi=-8388608, miu=0, i=-2147483648, iu=0, bi=-9223372036854775808,
         biu=0, d1="-9999999.999", d2="-" + D65, d3="0", d4="-0.000000001", f=-3.40282e38,
         db=-1.7976931348623157e308, dt="1000-01-01", t0="-838:59:59", t1="-00:00:00.1", t3="-00:00:00.010",
         t6="-12:34:56.789012", dtm0="1000-01-01 00:00:00", dtm2="1000-01-01 00:00:00.01",
         dtm6="1000-01-01 00:00:00.000001", ts0="1970-01-01 00:00:01", ts4="1970-01-01 00:00:01.0001",
         ts6="2038-01-19 03:14:07.999999", y=1901, c="", vc="", l1="", gb="", u3="", bn=b"", vb=b"", tx="", mtx="",
         bl=b"", lbl=b"", e="a", s="", b1=0, b13=0, b64=0, j="[]", g="POINT(0 0)", pt="POINT(1 2)"),
    dict(id=3, ti=127, tiu=255, si=32767, siu=65535, mi=8388607, miu=16777215, i=2147483647, iu=4294967295,
         bi=9223372036854775807, biu=18446744073709551615, d1="9999999.999", d2=D65, d3="99999",
         d4="999999999.999999999", f=3.40282e38, db=1.7976931348623157e308, dt="9999-12-31", t0="838:59:59",
         t1="838:59:59.9", t3="838:59:59.999", t6="838:59:59.000000", dtm0="9999-12-31 23:59:59",
         dtm2="9999-12-31 23:59:59.99", dtm6="9999-12-31 23:59:59.999999", ts0="2038-01-19 03:14:07",
         ts4="2038-01-19 03:14:07.9999", ts6="2001-02-03 04:05:06.500000", y=2155, c="abcdefghij",
         vc="\U0001F600" * 300, l1="café€ÿ", gb="中文汉字", u3="ñandú", bn=b"\x00\x01\xff", vb=bytes(range(100)),
         tx="text\n\t\\'\"\x00end", mtx="é" * 1000, bl=bytes(range(256)), lbl=MIB_BLOB, e="c", s="x,z", b1=1,
         b13=0x1FFF, b64=0xFFFFFFFFFFFFFFFF, j='{"a": [1, 2.5, "x", null, true, false], "b": {"c": "ü"}}',
         g="POLYGON((0 0,10 0,10 10,0 10,0 0))", pt="POINT(-1.5 2.25)", el="ü", uc="ÄÖ ß",
         cz="compressible é " * 100, bz=bytes(range(256)) * 8),
    dict(id=4, ti=0, cz="x", bz=b"", d1="-0.001", d2="0.000000000000000000000000000001", d4="0.000000000", f=1.1, db=0.1,
         dt="0000-00-00", t0="00:00:00", t1="00:00:00.0", t3="00:00:00.000", t6="-00:00:00.000001",
         dtm0="0000-00-00 00:00:00", dtm6="2020-02-29 12:00:00.123456", ts0="0000-00-00 00:00:00", y=0, e="",
         s="x,y,z", j='"a string"', c="trailing  ", vc="spaces at end   "),
    dict(id=5, j="null", t0="-00:00:01", t1="-00:00:00.5", t3="-01:00:00.001", f=-0.0, d3="1", e="b", s="y",
         j_unused=None),
]


def _literal(column: str, value: Any) -> tuple[str, list[Any]]:
    if column in ("g", "pt"):
        return ("ST_GeomFromText(%s, 4326)" if column == "g" and value.startswith("POLYGON") else
                "ST_GeomFromText(%s)"), [value]
    return "%s", [value]


def _insert(cur: Any, row: dict[str, Any]) -> None:
    cols = [c for c in row if c in COLUMNS]
    parts, args = [], []
    for c in cols:
        sql, a = _literal(c, row[c])
        parts.append(sql)
        args += a
    cur.execute(f"INSERT INTO every_type ({', '.join(cols)}) VALUES ({', '.join(parts)})", args)


def run_workload(sb: Sandbox, db: str) -> str:
    """Create, fill, update and delete; return the binlog file that holds it all (complete)."""
    conn = sb.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SET SESSION sql_mode = '', time_zone = '+00:00'")
            cur.execute(f"CREATE DATABASE {db}")
            cur.execute(f"USE {db}")
            cur.execute("FLUSH BINARY LOGS")
            cur.execute("SHOW MASTER STATUS")
            binlog_file = cur.fetchone()[0]
            cur.execute(TABLE_DDL)
            for row in ROWS:
                _insert(cur, row)
            cur.execute("UPDATE every_type SET vc = 'changed \U0001F680', d1 = '1.5', t6 = '-00:00:00.5', "
                        "j = JSON_OBJECT('k', 1), lbl = NULL, b64 = 1 WHERE id = 3")
            cur.execute("UPDATE every_type SET ti = ti + 1 WHERE id IN (2, 4)")  # one event, two rows
            cur.execute("UPDATE every_type SET id = 40 WHERE id = 4")  # the key itself changes
            cur.execute("DELETE FROM every_type WHERE id = 2")
            cur.execute("SET SESSION binlog_row_image = 'MINIMAL'")
            cur.execute("UPDATE every_type SET gb = '更新' WHERE id = 5")  # images: the key, the changed column
            cur.execute("INSERT INTO every_type (id, l1) VALUES (6, 'minimal')")
            cur.execute("SET SESSION binlog_row_image = 'FULL'")
            cur.execute("FLUSH BINARY LOGS")
        return binlog_file
    finally:
        conn.close()


def schema_from_information_schema(sb: Sandbox, db: str, table: str) -> TableSchema:
    """What the schema history will supply for a table (here read from information_schema)."""
    conn = sb.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT COLUMN_NAME, COLUMN_TYPE, DATA_TYPE, CHARACTER_SET_NAME, IS_NULLABLE, COLUMN_KEY "
                        "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA=%s AND TABLE_NAME=%s "
                        "ORDER BY ORDINAL_POSITION", (db, table))
            rows = cur.fetchall()
    finally:
        conn.close()
    columns = []
    for name, column_type, data_type, charset, nullable, _key in rows:
        labels = tuple(x.replace("''", "'") for x in re.findall(r"'((?:[^']|'')*)'", column_type)) \
            if data_type in ("enum", "set") else None
        if charset is None and data_type in ("binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob"):
            charset = "binary"
        columns.append(ColumnInfo(name=name, unsigned="unsigned" in column_type, charset=charset,
                                  enum_values=labels if data_type == "enum" else None,
                                  set_values=labels if data_type == "set" else None, sql_type=column_type,
                                  nullable=nullable == "YES"))
    key = tuple(r[0] for r in rows if r[5] == "PRI")
    return TableSchema(db, table, tuple(columns), key)


@pytest.fixture(scope="module", params=["default-metadata", "full-metadata"])
def workload(request: pytest.FixtureRequest, mariadb_factory: Any) -> Iterator[tuple[str, Sandbox, Path]]:
    extra = [] if request.param == "default-metadata" else [
        "--binlog-row-metadata=FULL", "--log-bin-compress=ON", "--log-bin-compress-min-len=10"]
    sb = mariadb_factory(f"rows_{request.param}", extra_args=extra)
    binlog_file = run_workload(sb, "cdc")
    yield request.param, sb, sb.datadir / binlog_file


def _schemas(sb: Sandbox) -> Any:
    schema = schema_from_information_schema(sb, "cdc", "every_type")
    return lambda db, table: schema if (db, table) == ("cdc", "every_type") else None


def test_rows_equal_mariadb_binlog(workload: tuple[str, Sandbox, Path]) -> None:
    mode, sb, path = workload
    theirs = printed_rows(parse_verbose(run_mariadb_binlog(path)))
    assert len(theirs) == 5 + 1 + 2 + 1 + 1 + 1 + 1
    for schemas in (None, _schemas(sb)):
        ours = decoded_rows(path, schemas)
        for i, (a, b) in enumerate(zip(theirs, ours, strict=True)):
            a = (*a[:3], inflate_compressed(a[3], b[3]), inflate_compressed(a[4], b[4]))
            assert a == b, f"{mode}: row change {i + 1} differs"


def test_names_and_marks(workload: tuple[str, Sandbox, Path]) -> None:
    mode, sb, path = workload
    plain = list(row_changes(path))
    if mode == "full-metadata":
        assert all(c.names_known for c in plain)
        assert plain[2].after is not None and plain[2].after["vc"] == "\U0001F600" * 300
        assert plain[0].primary_key == ("id",)
    else:
        # No names, no charsets, no signedness in the binlog: positional names, text kept as bytes.
        assert not any(c.names_known for c in plain)
        after = plain[2].after
        assert after is not None
        assert after["@31"] == UndecodedText(("\U0001F600" * 300).encode(), None)
        assert after["@3"] == -1  # TINYINT UNSIGNED 255, read as signed for want of metadata
        assert plain[0].primary_key is None
    minimal = [c for c in plain if not c.complete]
    assert [c.op for c in minimal] == ["update", "insert"]


def _select_state(sb: Sandbox) -> dict[int, dict[str, Any]]:
    temporal = {"dt", "t0", "t1", "t3", "t6", "dtm0", "dtm2", "dtm6", "ts0", "ts4", "ts6"}
    exprs = []
    for c in COLUMNS:
        if c in temporal:
            exprs.append(f"CAST({c} AS CHAR)")
        elif c in ("b1", "b13", "b64"):
            exprs.append(f"{c} + 0")
        elif c in ("g", "pt"):
            exprs.append(f"ST_SRID({c}), ST_AsBinary({c})")
        else:
            exprs.append(c)
    conn = sb.connect(database="cdc")
    try:
        with conn.cursor() as cur:
            cur.execute("SET SESSION time_zone = '+00:00'")
            cur.execute(f"SELECT {', '.join(exprs)} FROM every_type ORDER BY id")
            out = {}
            for raw in cur.fetchall():
                values = list(raw)
                row: dict[str, Any] = {}
                for c in COLUMNS:
                    if c in ("g", "pt"):
                        srid, wkb = values.pop(0), values.pop(0)
                        row[c] = None if wkb is None else Geometry(srid, wkb)
                        continue
                    v = values.pop(0)
                    if c in ("d1", "d2", "d3", "d4") and v is not None:
                        v = format(v, "f")
                    row[c] = v
                out[row["id"]] = row
            return out
    finally:
        conn.close()


def _replay(changes: list[RowChange]) -> dict[int, dict[str, Any]]:
    state: dict[int, dict[str, Any]] = {}
    for change in changes:
        if change.op == "insert":
            assert change.after is not None
            full = dict.fromkeys(COLUMNS)  # MINIMAL inserts leave defaults (NULL here) out
            full.update(change.after)
            state[change.after["id"]] = full
        elif change.op == "update":
            assert change.before is not None and change.after is not None
            row = state.pop(change.before["id"])
            row.update(change.after)
            state[row["id"]] = row
        else:
            assert change.before is not None
            del state[change.before["id"]]
    return state


def test_replayed_changes_rebuild_the_table(workload: tuple[str, Sandbox, Path]) -> None:
    mode, sb, path = workload
    schemas = None if mode == "full-metadata" else _schemas(sb)
    changes = [c for c in row_changes(path, schemas=schemas) if c.table == "every_type"]
    rebuilt = _replay(changes)
    selected = _select_state(sb)
    assert sorted(rebuilt) == sorted(selected) == [1, 3, 5, 6, 40]
    for key, row in selected.items():
        for column in COLUMNS:
            assert rebuilt[key][column] == row[column], f"{mode}: id {key} column {column}"


def test_schema_with_other_columns_is_refused(workload: tuple[str, Sandbox, Path]) -> None:
    mode, sb, path = workload
    schema = schema_from_information_schema(sb, "cdc", "every_type")
    narrower = TableSchema("cdc", "every_type", schema.columns[:-1], ("id",))
    with pytest.raises(SchemaMismatch) as info:
        list(row_changes(path, schemas=lambda db, table: narrower))
    message = str(info.value)
    assert "52 columns (LONG, TINY" in message and "51 columns (id, ti," in message
    assert info.value.file == path.name and info.value.offset is not None


def test_json_fast_path_equals_pure(workload: tuple[str, Sandbox, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    from binhub.binlog import row_json
    from binhub.binlog.file import row_json_lines

    mode, sb, path = workload
    schemas = None if mode == "full-metadata" else _schemas(sb)
    if row_json.rows_json is None:
        pytest.skip("the C extension binhub._speedups._rows is not built")
    fast = [orjson.loads(x) for chunk in row_json_lines(path, schemas=schemas) for x in chunk.splitlines()]
    monkeypatch.setattr(row_json, "rows_json", None)
    pure = [orjson.loads(x) for chunk in row_json_lines(path, schemas=schemas) for x in chunk.splitlines()]
    assert len(fast) == 12
    for i, (a, b) in enumerate(zip(fast, pure, strict=True)):
        assert a == b, f"{mode}: line {i + 1}"


def _cli(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "binhub", "binlog", "show", *args], capture_output=True, timeout=120)


def test_cli_show_rows(workload: tuple[str, Sandbox, Path], tmp_path: Path) -> None:
    mode, sb, path = workload
    fast = _cli("--rows", "--format", "json", str(path))
    assert fast.returncode == 0, fast.stderr
    lines = [orjson.loads(x) for x in fast.stdout.splitlines()]
    assert len(lines) == 12 and [x["op"] for x in lines[-3:]] == ["delete", "update", "insert"]
    assert lines[2]["after"]["vc" if mode == "full-metadata" else "@31"] == (
        "\U0001F600" * 300 if mode == "full-metadata" else
        {"undecoded": base64.b64encode(("\U0001F600" * 300).encode()).decode(), "charset": None})
    limited = _cli("--rows", "--format", "json", "--limit", "2", str(path))  # the RowChange path
    assert [orjson.loads(x) for x in limited.stdout.splitlines()] == lines[:2]
    text = _cli("--rows", str(path))
    assert text.returncode == 0 and b"### INSERT INTO `cdc`.`every_type`" in text.stdout
    # A file cut inside a rows event: a clear error naming the file and where it stops.
    cut = tmp_path / path.name
    cut.write_bytes(path.read_bytes()[:lines[2]["pos"] + 100])
    broken = _cli("--rows", "--format", "json", str(cut))
    assert broken.returncode != 0
    assert f"{path.name} at offset {lines[2]['pos']}".encode() in broken.stderr, broken.stderr
