"""The WKB → WKT converter (:mod:`binhub.binlog.wkt`) against the server's own ``ST_AsText`` of the
same values: every geometry type, both byte orders, awkward doubles; and Maxwell's JSON giving a
GEOMETRY column as that text, through a real stream."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from binhub.binlog.wkt import wkt
from binhub.errors import BinlogError
from tests.integration.conftest import PrimaryDb
from tests.integration.test_stream import lines_of, relay, stream

SHAPES = [
    "POINT(1 2)", "POINT(-1.5 0.1)", "POINT(0 -0.000001)", "POINT(123456789.123 1e20)", "POINT(1e-7 3.14159265358979)",
    "POINT(0.30000000000000004 -2.5e-300)", "POINT(1234567890123456789 0.5)",
    "LINESTRING(0 0,1 1,2.25 -3)", "POLYGON((0 0,10 0,10 10,0 10,0 0))",
    "POLYGON((0 0,10 0,10 10,0 10,0 0),(2 2,3 2,3 3,2 2))", "MULTIPOINT(1 1,2 2,-3 4.5)",
    "MULTILINESTRING((0 0,1 1),(2 2,3 3,4 5))", "MULTIPOLYGON(((0 0,1 0,1 1,0 0)),((5 5,6 5,6 6,5 5)))",
    "GEOMETRYCOLLECTION(POINT(1 2),LINESTRING(0 0,1 1),POLYGON((0 0,1 0,1 1,0 0)))",
    "GEOMETRYCOLLECTION(MULTIPOINT(1 1,2 2),MULTILINESTRING((0 0,1 1)),MULTIPOLYGON(((0 0,1 0,1 1,0 0))),POINT(7 8))",
]


def test_the_server_prints_the_same_text(primary_db: PrimaryDb) -> None:
    c = primary_db.conn.cursor()
    for shape in SHAPES:
        c.execute("SELECT ST_AsText(ST_GeomFromText(%s)), ST_AsBinary(ST_GeomFromText(%s))", (shape, shape))
        text, wkb = c.fetchone()
        assert wkb is not None, f"the server does not read {shape}"
        assert wkt(wkb) == text, shape
    # Coordinates: the server's double formatting, positional within 15 places, else with an exponent.
    values = [10.0 ** e for e in range(-20, 26)] + [1.2345 * 10.0 ** e for e in range(-20, 26)] + \
        [0.1 + 0.2, 1234567890123456.8, 1.2345678901234568e16, 1.7976931348623157e308, 5e-324]
    for v in values:
        c.execute("SELECT ST_AsText(POINT(%s, %s)), ST_AsBinary(POINT(%s, %s))", (repr(v), repr(-v), repr(v), repr(-v)))
        text, wkb = c.fetchone()
        assert wkt(wkb) == text, v
    # An empty collection, and big-endian WKB (the server reads either order; the binlog has its own).
    c.execute("SELECT ST_AsText(ST_GeomFromText('GEOMETRYCOLLECTION EMPTY')), "
              "ST_AsBinary(ST_GeomFromText('GEOMETRYCOLLECTION EMPTY'))")
    text, wkb = c.fetchone()
    assert wkt(wkb) == text
    big = b"\x00" + struct.pack(">Idd", 1, -7.25, 1e-5)
    c.execute("SELECT ST_AsText(ST_GeomFromWKB(%s))", (big,))
    assert wkt(big) == c.fetchone()[0]
    nested = b"\x00" + struct.pack(">II", 4, 2) + b"\x01" + struct.pack("<Idd", 1, 1, 2) + b"\x00" + \
        struct.pack(">Idd", 1, 3, 4)
    c.execute("SELECT ST_AsText(ST_GeomFromWKB(%s))", (nested,))
    assert wkt(nested) == c.fetchone()[0]


@pytest.mark.parametrize("bad,message", [
    (b"\x01" + struct.pack("<Id", 1, 1.0), "ends inside its WKB"),
    (b"\x02" + struct.pack("<Idd", 1, 1.0, 2.0), "byte order is 2"),
    (b"\x01" + struct.pack("<I", 99), "WKB type 99"),
    (b"\x01" + struct.pack("<Idd", 1, 1.0, 2.0) + b"x", "1 bytes after its WKB"),
    (b"\x01" + struct.pack("<II", 4, 1) + b"\x01" + struct.pack("<II", 2, 0), "a part of another type"),
])
def test_a_corrupt_value_is_a_clear_error(bad: bytes, message: str) -> None:
    with pytest.raises(BinlogError, match=message):
        wkt(bad)


def test_maxwell_gives_geometry_as_wkt_without_its_srid(primary_db: PrimaryDb, tmp_path: Path) -> None:
    c = primary_db.conn.cursor()
    c.execute("CREATE TABLE places (id INT PRIMARY KEY, g GEOMETRY, p POINT)")
    c.execute("INSERT INTO places VALUES (1, ST_GeomFromText('POLYGON((0 0,1 0,1 1,0 0))', 4326), "
              "ST_GeomFromText('POINT(-1.5 2.25)')), (2, NULL, ST_GeomFromText('POINT(3 4)', 3857))")
    c.execute("UPDATE places SET g = ST_GeomFromText('MULTIPOINT(1 1,2 2)') WHERE id = 2")
    c.execute("SELECT id, ST_AsText(g), ST_AsText(p) FROM places ORDER BY id")
    final = {row[0]: {"g": row[1], "p": row[2]} for row in c.fetchall()}
    data_dir = tmp_path / "store"
    relay(primary_db, data_dir)
    stream(data_dir, tmp_path / "out", "--format", "maxwell", "--include", f"{primary_db.name}.*")
    rows = [x for x in lines_of(tmp_path / "out") if x["type"] in ("insert", "update")]
    assert [r["data"]["g"] for r in rows] == ["POLYGON((0 0,1 0,1 1,0 0))", None, final[2]["g"]]
    assert {r["data"]["id"]: {"g": r["data"]["g"], "p": r["data"]["p"]} for r in rows} == final
    assert rows[2]["old"] == {"g": None}
