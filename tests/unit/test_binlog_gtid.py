"""GTID values and sets of both flavours: parsing, formatting, algebra and the binary encoding."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from binhub.binlog.gtid import (
    MariadbGtid,
    MariadbGtidList,
    MysqlGtid,
    MysqlGtidSet,
    parse_gtid_set,
)
from binhub.errors import GtidError

A = uuid.UUID("3e11fa47-71ca-11e1-9e33-c80aa9429562")
B = uuid.UUID("4ab46c2c-8a1f-11ee-b3e1-0242ac120002")


def test_parse_and_canonical_text() -> None:
    s = MysqlGtidSet.parse("""
        4AB46C2C-8A1F-11EE-B3E1-0242AC120002:1-100,
        3e11fa47-71ca-11e1-9e33-c80aa9429562:7:1-5:Beta:30:10-20:alpha:1-3
    """)
    assert str(s) == ("3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5:7:alpha:1-3:beta:10-20:30,"
                      "4ab46c2c-8a1f-11ee-b3e1-0242ac120002:1-100")
    assert s.to_string(",\n").count("\n") == 1
    assert len(s) == 5 + 1 + 3 + 11 + 1 + 100


def test_adjacent_intervals_merge() -> None:
    assert str(MysqlGtidSet.parse(f"{A}:1-3:4-6:8,{A}:7")) == f"{A}:1-8"


@pytest.mark.parametrize("text", [
    f"{A}", f"{A}:0", f"{A}:5-3", f"{A}:x-3", "nonsense:1", f"{A}:9223372036854775807",
    f"{A}:1tag:1", f"{A}:{'t' * 33}:1",
])
def test_parse_errors(text: str) -> None:
    with pytest.raises(GtidError):
        MysqlGtidSet.parse(text)


def test_contains_add_union_subtract() -> None:
    s = MysqlGtidSet.parse(f"{A}:1-5:10,{B}:tag:1")
    assert MysqlGtid(A, 5) in s and MysqlGtid(A, 6) not in s and MysqlGtid(A, 10) in s
    assert MysqlGtid(B, 1, "tag") in s and MysqlGtid(B, 1) not in s
    assert str(s.add(MysqlGtid(A, 6))) == f"{A}:1-6:10,{B}:tag:1"
    assert str(s - MysqlGtidSet.parse(f"{A}:2-3")) == f"{A}:1:4-5:10,{B}:tag:1"
    assert (s | MysqlGtidSet.parse(f"{A}:6-9")) == MysqlGtidSet.parse(f"{A}:1-10,{B}:tag:1")
    assert s.issuperset(MysqlGtidSet.parse(f"{A}:2-4")) and not s.issubset(MysqlGtidSet.parse(f"{A}:1-10"))
    assert (s - s).is_empty() and str(MysqlGtidSet()) == ""
    assert MysqlGtid(A, 3, "TaG").tag == "tag" and str(MysqlGtid.parse(f"{A}:Tag:3")) == f"{A}:tag:3"


def test_encode_choice_of_format() -> None:
    untagged = MysqlGtidSet.parse(f"{A}:1-5")
    assert untagged.encode()[:8] == (1).to_bytes(8, "little")
    tagged = MysqlGtidSet.parse(f"{A}:x:1-5")
    assert tagged.encode()[7] == 1  # format marker in the high byte
    with pytest.raises(GtidError):
        tagged.encode(tagged=False)
    with pytest.raises(GtidError):
        MysqlGtidSet.decode(untagged.encode()[:-1])
    with pytest.raises(GtidError):
        MysqlGtidSet.decode(b"\x01" + bytes(6) + b"\x07")  # unknown format 7


def test_mariadb_gtid_and_list() -> None:
    g = MariadbGtid.parse("0-1-42")
    assert (g.domain_id, g.server_id, g.seq_no, str(g)) == (0, 1, 42, "0-1-42")
    pos = MariadbGtidList.parse("1-2-3, 0-1-5")
    assert str(pos) == "0-1-5,1-2-3" and pos.domains == (0, 1)
    assert pos.contains(MariadbGtid(0, 9, 5)) and not pos.contains(MariadbGtid(0, 1, 6))
    assert MariadbGtid(2, 1, 1) not in pos
    assert str(pos.update(MariadbGtid(0, 3, 9))) == "0-3-9,1-2-3"
    assert str(pos | MariadbGtidList.parse("0-1-4,2-1-1")) == "0-1-5,1-2-3,2-1-1"
    assert pos.covers(MariadbGtidList.parse("0-1-4")) and not pos.covers(MariadbGtidList.parse("2-1-1"))
    assert MariadbGtidList.parse("").is_empty() and str(MariadbGtidList.parse("")) == ""
    assert pos == MariadbGtidList.parse("0-1-5,1-2-3") and hash(pos) == hash(MariadbGtidList.parse("0-1-5,1-2-3"))
    with pytest.raises(GtidError):
        MariadbGtidList.parse("0-1-5,0-2-6")
    with pytest.raises(GtidError):
        MariadbGtid.parse("0-1")


def test_parse_gtid_set_detects_flavour() -> None:
    assert isinstance(parse_gtid_set(f"{A}:1-3"), MysqlGtidSet)
    assert isinstance(parse_gtid_set("0-1-3,1-1-1"), MariadbGtidList)
    assert parse_gtid_set("", "mariadb") == MariadbGtidList()
    assert parse_gtid_set("") == MysqlGtidSet()
    with pytest.raises(GtidError):
        parse_gtid_set("garbage")


# ---- properties

uuids = st.sampled_from([A, B, uuid.UUID(int=1), uuid.UUID(int=2**128 - 1)])
tags = st.sampled_from(["", "", "a", "blue", "_x9"])
gnos = st.integers(min_value=1, max_value=60)


@st.composite
def gtid_sets(draw: st.DrawFn) -> MysqlGtidSet:
    acc: dict[tuple[uuid.UUID, str], list[tuple[int, int]]] = {}
    for _ in range(draw(st.integers(0, 6))):
        start = draw(gnos)
        acc.setdefault((draw(uuids), draw(tags)), []).append((start, start + draw(st.integers(1, 8))))
    return MysqlGtidSet(acc)


gtids = st.builds(MysqlGtid, uuids, gnos, tags)


@given(gtid_sets())
def test_text_round_trip(s: MysqlGtidSet) -> None:
    assert MysqlGtidSet.parse(str(s)) == s
    assert MysqlGtidSet.parse(s.to_string(",\n")) == s


@given(gtid_sets(), st.none() | st.just(True))
def test_binary_round_trip(s: MysqlGtidSet, tagged: bool | None) -> None:
    assert MysqlGtidSet.decode(s.encode(tagged=tagged)) == s


@given(gtid_sets(), gtid_sets(), gtids)
def test_set_laws(a: MysqlGtidSet, b: MysqlGtidSet, g: MysqlGtid) -> None:
    assert (g in (a | b)) == (g in a or g in b)
    assert (g in (a - b)) == (g in a and g not in b)
    assert (g in (a & b)) == (g in a and g in b)
    assert a | b == b | a
    assert (a | b).issuperset(a) and a.issubset(a | b)
    assert (a - b) | (a & b) == a
    assert ((a - b) & b).is_empty()
    assert g in a.add(g) and a.add(g).issuperset(a)
    assert len(a | b) == len(a) + len(b) - len(a & b)
    assert hash(a | b) == hash(b | a)


mariadb_gtids = st.builds(MariadbGtid, st.integers(0, 3), st.integers(1, 3), st.integers(0, 50))
mariadb_lists = st.lists(mariadb_gtids, max_size=6).map(lambda gs: MariadbGtidList({g.domain_id: g for g in gs}.values()))


@given(mariadb_lists, mariadb_lists, mariadb_gtids)
def test_mariadb_laws(a: MariadbGtidList, b: MariadbGtidList, g: MariadbGtid) -> None:
    assert MariadbGtidList.parse(str(a)) == a
    u = a | b
    assert u.covers(a) and u.covers(b)
    assert u.contains(g) == (a.contains(g) or b.contains(g))
    assert a.update(g).contains(g) and a.update(g).get(g.domain_id) == g
