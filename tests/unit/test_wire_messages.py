"""OK / ERR / EOF packets and text result sets, both directions."""

from __future__ import annotations

import pytest

from binhub.errors import MalformedPacket, UnexpectedPacket
from binhub.wire.constants import Capability, ColumnType, ServerStatus
from binhub.wire.messages import (
    DEFAULT_CAPS,
    ColumnDefinition,
    EofPacket,
    ErrPacket,
    OkPacket,
    ResultSet,
    ResultSetParser,
    Row,
    build_text_result_set,
    is_eof,
    parse_result_set,
)

DEPRECATE = DEFAULT_CAPS | Capability.DEPRECATE_EOF
TRACK = DEFAULT_CAPS | Capability.SESSION_TRACK


@pytest.mark.parametrize("caps", [DEFAULT_CAPS, TRACK, Capability.PROTOCOL_41])
def test_ok_round_trip(caps: Capability) -> None:
    ok = OkPacket(affected_rows=300, last_insert_id=2**40, status=ServerStatus.AUTOCOMMIT | ServerStatus.IN_TRANS,
                  warnings=2, info="Rows matched: 1")
    assert OkPacket.parse(ok.build(caps), caps) == ok


def test_ok_session_state_round_trip() -> None:
    ok = OkPacket(status=ServerStatus.SESSION_STATE_CHANGED, info="", session_state=b"\x00\x05\x03abc")
    assert OkPacket.parse(ok.build(TRACK), TRACK) == ok


def test_ok_known_bytes() -> None:
    # A MariaDB "SET" answer: 07 00 00 02 00 00 00 02 00 00 00 without the header.
    ok = OkPacket.parse(bytes.fromhex("00000002000000"))
    assert ok.affected_rows == 0 and ok.status == ServerStatus.AUTOCOMMIT and ok.warnings == 0


def test_err_round_trip_and_known_bytes() -> None:
    err = ErrPacket(1045, "28000", "Access denied for user 'repl'@'localhost' (using password: YES)")
    raw = err.build()
    assert raw[:9] == b"\xff\x15\x04#28000"
    assert ErrPacket.parse(raw) == err


def test_err_without_sqlstate() -> None:
    # Sent before capabilities are agreed, e.g. "Too many connections".
    err = ErrPacket.parse(b"\xff\x10\x04Too many connections")
    assert err == ErrPacket(1040, "HY000", "Too many connections")


def test_eof_round_trip() -> None:
    eof = EofPacket(3, ServerStatus.AUTOCOMMIT | ServerStatus.MORE_RESULTS_EXISTS)
    raw = eof.build()
    assert len(raw) == 5 and is_eof(raw)
    assert EofPacket.parse(raw) == eof


def test_wrong_headers() -> None:
    with pytest.raises(UnexpectedPacket):
        OkPacket.parse(b"\xff\x00\x00")
    with pytest.raises(UnexpectedPacket):
        ErrPacket.parse(b"\x00\x00\x00")
    with pytest.raises(UnexpectedPacket):
        EofPacket.parse(b"\x00")


@pytest.mark.parametrize("caps", [DEFAULT_CAPS, DEPRECATE])
def test_result_set_round_trip(caps: Capability) -> None:
    rows: list[Row] = [("1", None, "héllo"), ("", "x" * 300, None)]
    payloads = build_text_result_set(["a", "b", "c"], rows, caps)
    expected_len = 1 + 3 + (0 if caps & Capability.DEPRECATE_EOF else 1) + 2 + 1
    assert len(payloads) == expected_len
    rs = parse_result_set(payloads, caps)
    assert rs == ResultSet(["a", "b", "c"], rows)
    assert rs.column("B") == [None, "x" * 300]


@pytest.mark.parametrize("caps", [DEFAULT_CAPS, DEPRECATE])
def test_empty_result_set(caps: Capability) -> None:
    rs = parse_result_set(build_text_result_set(["Variable_name", "Value"], [], caps), caps)
    assert rs.columns == ["Variable_name", "Value"] and rs.rows == []


def test_result_set_ints_and_bytes() -> None:
    payloads = build_text_result_set(["n", "b"], [(42, b"raw")])
    assert parse_result_set(payloads).rows == [("42", "raw")]


def test_column_definition_round_trip() -> None:
    col = ColumnDefinition("Value", ColumnType.LONGLONG, 63, 21, 0x20, 0, "db", "t", "t0", "v")
    assert ColumnDefinition.parse(col.build()) == col


def test_ok_response_is_empty_result() -> None:
    parser = ResultSetParser(DEFAULT_CAPS)
    assert parser.feed(OkPacket(affected_rows=1).build())
    assert parser.ok is not None and parser.ok.affected_rows == 1
    assert parser.result.columns == []


def test_err_response() -> None:
    parser = ResultSetParser(DEFAULT_CAPS)
    assert parser.feed(ErrPacket(1146, "42S02", "Table 'x.y' doesn't exist").build())
    assert parser.error is not None and parser.error.code == 1146


def test_truncated_row_is_malformed() -> None:
    payloads = build_text_result_set(["a"], [("abcdef",)])
    payloads[3] = payloads[3][:-2]
    with pytest.raises(MalformedPacket):
        parse_result_set(payloads)


def test_row_with_extra_bytes_is_malformed() -> None:
    payloads = build_text_result_set(["a"], [("abc",)])
    payloads[3] += b"\x01z"
    with pytest.raises(MalformedPacket):
        parse_result_set(payloads)


def test_result_set_missing_terminator() -> None:
    payloads = build_text_result_set(["a"], [("abc",)])
    with pytest.raises(MalformedPacket, match="ends before"):
        parse_result_set(payloads[:-1])


def test_row_width_checked_when_building() -> None:
    with pytest.raises(ValueError):
        build_text_result_set(["a", "b"], [("only one",)])


def test_big_eof_lookalike_is_a_row() -> None:
    # A row starting with 0xFE (a value of >= 2^24 bytes) must not be taken for EOF.
    assert not is_eof(b"\xfe" + b"\x00" * 20, DEFAULT_CAPS)
    assert is_eof(OkPacket().build(DEPRECATE, header=0xFE), DEPRECATE)
