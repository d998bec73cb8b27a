"""The logical dump's row loop: text-protocol row packets to LOAD DATA lines, the compiled loop
(binhub/_speedups/_tsv.c, where built) against its pure twin, and both against an independent reader
of the lines (the unescaping rules of the server's LOAD DATA: sql/sql_load.cc READ_INFO)."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest

from binhub.backup.logical import tsv
from binhub.errors import UpstreamError

IMPLEMENTATIONS: dict[str, tuple[Callable[..., Any], Callable[..., Any]]] = {
    "pure": (tsv.rows_to_tsv_pure, tsv.row_to_tsv_pure)}
if tsv._tsv_c is not None:
    IMPLEMENTATIONS["c"] = (tsv._tsv_c.rows_to_tsv, tsv._tsv_c.row_to_tsv)
EOF = b"\x05\x00\x00\x09\xfe\x00\x00\x02\x00"
UNESCAPE = {ord("0"): 0, ord("t"): 9, ord("n"): 10, ord("\\"): 92}


def field(value: bytes | None) -> bytes:
    if value is None:
        return b"\xfb"
    n = len(value)
    if n < 251:
        return bytes([n]) + value
    if n < 1 << 16:
        return b"\xfc" + n.to_bytes(2, "little") + value
    if n < 1 << 24:
        return b"\xfd" + n.to_bytes(3, "little") + value
    return b"\xfe" + n.to_bytes(8, "little") + value


def packets(payload: bytes, seq: int = 0) -> bytes:
    """``payload`` framed as the server sends it (16 MiB - 1 at most a packet; a full one is followed by more)."""
    out = []
    while True:
        piece, payload = payload[:tsv.MAX_PAYLOAD], payload[tsv.MAX_PAYLOAD:]
        out.append(len(piece).to_bytes(3, "little") + bytes([seq & 0xFF]) + piece)
        seq += 1
        if len(piece) < tsv.MAX_PAYLOAD:
            return b"".join(out)


def read_lines(data: bytes) -> list[list[bytes | None]]:
    """The rows LOAD DATA reads from ``data`` (default terminators and escape)."""
    rows = []
    for line in data.split(b"\n")[:-1]:
        row: list[bytes | None] = []
        for text in line.split(b"\t"):
            if text == b"\\N":
                row.append(None)
                continue
            out = bytearray()
            i = 0
            while i < len(text):
                if text[i] == 92:
                    out.append(UNESCAPE[text[i + 1]])
                    i += 2
                else:
                    out.append(text[i])
                    i += 1
            row.append(bytes(out))
        rows.append(row)
    return rows


def random_rows(rng: random.Random, count: int, width: int) -> list[list[bytes | None]]:
    special = [b"", b"\\", b"\t", b"\n", b"\x00", b"\\N", b"N", b"\xfb", b"\xfe"]
    rows = []
    for _ in range(count):
        row: list[bytes | None] = []
        for _ in range(width):
            kind = rng.random()
            if kind < 0.1:
                row.append(None)
            elif kind < 0.4:
                row.append(rng.choice(special) + rng.choice(special))
            elif kind < 0.95:
                row.append(rng.randbytes(rng.randrange(60)))
            else:
                row.append(rng.randbytes(rng.choice([251, 300, 70_000])))
        rows.append(row)
    return rows


@pytest.fixture(params=sorted(IMPLEMENTATIONS))
def impl(request: pytest.FixtureRequest) -> tuple[Callable[..., Any], Callable[..., Any]]:
    return IMPLEMENTATIONS[request.param]


def test_every_byte_and_null_reads_back_as_it_was_however_the_stream_is_cut(impl: Any) -> None:
    rows_to_tsv, _ = impl
    rng = random.Random(7)
    rows = random_rows(rng, 200, 5)
    stream = b"".join(packets(b"".join(field(v) for v in row), i + 1) for i, row in enumerate(rows)) + EOF
    for step in (3, 61, 4096, len(stream)):
        lines, seen, pos, buf, status = bytearray(), 0, 0, b"", tsv.NEED_MORE
        fed = 0
        while status != tsv.END:
            pos, n, status, last = rows_to_tsv(buf, pos, 5, 5, 1_000_000, lines)
            seen += n
            assert last is None and status in (tsv.NEED_MORE, tsv.END)
            if status == tsv.NEED_MORE:
                assert fed < len(stream)
                buf, pos = buf[pos:] + stream[fed:fed + step], 0
                fed += step
        assert seen == len(rows) and pos == len(buf)
        assert read_lines(bytes(lines)) == rows


def test_both_loops_write_the_same_bytes() -> None:
    rng = random.Random(11)
    rows = random_rows(rng, 300, 4)
    stream = b"".join(packets(b"".join(field(v) for v in row)) for row in rows) + EOF
    prefix = b"lines before\n"
    outs = {name: bytearray(prefix) for name in IMPLEMENTATIONS}
    results = {name: fn(stream, 0, 3, 4, 1000, outs[name]) for name, (fn, _) in IMPLEMENTATIONS.items()}
    assert len(set(map(repr, results.values()))) == 1 and len(set(map(bytes, outs.values()))) == 1
    assert results["pure"][3] == tuple(rows[-1][3:])  # the extras of the last row
    assert outs["pure"].startswith(prefix) and read_lines(bytes(outs["pure"][len(prefix):])) == [r[:3] for r in rows]


def test_max_rows_stops_and_the_extras_are_the_last_rows(impl: Any) -> None:
    rows_to_tsv, _ = impl
    rows = [[str(i).encode(), b"k%d" % i, None] for i in range(10)]
    stream = b"".join(packets(b"".join(field(v) for v in row)) for row in rows) + EOF
    out = bytearray()
    pos, n, status, last = rows_to_tsv(stream, 0, 1, 3, 4, out)
    assert (out, n, status, last) == (b"0\n1\n2\n3\n", 4, tsv.FULL, (b"k3", None))
    pos, n, status, last = rows_to_tsv(stream, pos, 1, 3, 100, out)
    assert (n, status, last, pos) == (6, tsv.END, (b"k9", None), len(stream)) and out.endswith(b"8\n9\n")
    assert rows_to_tsv(EOF, 0, 1, 1, 5, out) == (len(EOF), 0, tsv.END, None)


def test_a_packet_of_16_mib_is_left_to_the_caller_who_joins_it(impl: Any) -> None:
    rows_to_tsv, row_to_tsv = impl
    big = b"\\" * (tsv.MAX_PAYLOAD + 10)
    stream = packets(field(b"a")) + packets(field(big)) + EOF
    out = bytearray()
    pos, n, status, _ = rows_to_tsv(stream, 0, 1, 1, 100, out)
    assert (out, n, status) == (b"a\n", 1, tsv.LARGE)
    assert row_to_tsv(field(big), 1, 1, out) is None and out == b"a\n" + b"\\\\" * len(big) + b"\n"


def test_a_malformed_row_is_an_error_not_a_guess(impl: Any) -> None:
    rows_to_tsv, row_to_tsv = impl
    out = bytearray(b"kept\n")
    with pytest.raises(ValueError, match="ends inside its field 2"):
        row_to_tsv(field(b"a") + b"\x05ab", 1, 2, out)
    with pytest.raises(ValueError, match="more than 1 fields"):
        row_to_tsv(field(b"a") + field(b"b"), 1, 1, out)
    with pytest.raises(ValueError, match="ends inside its field 1"):  # no line of a call that fails stays
        rows_to_tsv(packets(field(b"good")) + packets(b"\x09short"), 0, 1, 1, 10, out)
    assert out == b"kept\n"
    with pytest.raises(ValueError):
        rows_to_tsv(b"", 0, 2, 1, 1, out)


def test_the_reader_takes_a_result_from_a_socket_and_raises_its_error_packet() -> None:
    rows = [[b"%d" % i, b"x" * (i * 40)] for i in range(50)]
    error = b"\xff" + (1412).to_bytes(2, "little") + b"#HY000Table definition has changed"
    stream = b"".join(packets(b"".join(field(v) for v in row)) for row in rows) + packets(error)
    pieces = [stream[i:i + 333] for i in range(0, len(stream), 333)]
    reader = tsv.ResultLines(lambda: pieces.pop(0), 2, 2)
    taken: list[list[bytes | None]] = []
    with pytest.raises(UpstreamError) as caught:
        while True:
            lines = bytearray()
            count = reader.take(3, lines)
            assert 1 <= count <= 3  # what has arrived, never more than asked
            taken += read_lines(bytes(lines))
    assert caught.value.code == 1412 and caught.value.sqlstate == "HY000"
    assert taken == rows and reader.done


def test_a_chunk_splits_into_the_same_whole_line_parts_every_time() -> None:
    data = b"".join(b"%d\t%s\n" % (i, b"v" * (i % 17)) for i in range(1000))
    parts = tsv.split_parts(data, 500)
    assert b"".join(parts) == data and all(bytes(p).endswith(b"\n") for p in parts)
    assert all(500 <= len(p) < 500 + 30 for p in parts[:-1])
    assert [bytes(p) for p in tsv.split_parts(data, 500)] == [bytes(p) for p in parts]
    assert [bytes(p) for p in tsv.split_parts(data, 10**9)] == [data] and tsv.split_parts(b"", 5) == []
