"""Length-encoded integers/strings and the bounds-checked Reader."""

from __future__ import annotations

import pytest

from binhub.errors import MalformedPacket
from binhub.wire.codec import Reader, lenenc_bytes, lenenc_int


@pytest.mark.parametrize("value, encoded", [
    (0, b"\x00"),
    (250, b"\xfa"),
    (251, b"\xfc\xfb\x00"),
    (0xFFFF, b"\xfc\xff\xff"),
    (0x10000, b"\xfd\x00\x00\x01"),
    (0xFFFFFF, b"\xfd\xff\xff\xff"),
    (0x1000000, b"\xfe\x00\x00\x00\x01\x00\x00\x00\x00"),
    (2**64 - 1, b"\xfe" + b"\xff" * 8),
])
def test_lenenc_int_edges(value: int, encoded: bytes) -> None:
    assert lenenc_int(value) == encoded
    r = Reader(encoded)
    assert r.lenenc_int() == value
    assert r.at_end()


@pytest.mark.parametrize("bad", [-1, 2**64])
def test_lenenc_int_out_of_range(bad: int) -> None:
    with pytest.raises(ValueError):
        lenenc_int(bad)


@pytest.mark.parametrize("prefix", [b"\xfb", b"\xff"])
def test_lenenc_int_invalid_prefix(prefix: bytes) -> None:
    with pytest.raises(MalformedPacket):
        Reader(prefix).lenenc_int()


@pytest.mark.parametrize("data", [b"\xfc\x01", b"\xfd\x01\x02", b"\xfe\x01\x02\x03", b""])
def test_lenenc_int_truncated(data: bytes) -> None:
    with pytest.raises(MalformedPacket):
        Reader(data).lenenc_int()


def test_lenenc_bytes_and_null() -> None:
    data = lenenc_bytes(b"abc") + b"\xfb" + lenenc_bytes(b"x" * 300)
    r = Reader(data)
    assert r.lenenc_bytes_or_null() == b"abc"
    assert r.lenenc_bytes_or_null() is None
    assert r.lenenc_bytes_or_null() == b"x" * 300
    assert r.at_end()


def test_lenenc_bytes_truncated() -> None:
    with pytest.raises(MalformedPacket, match="truncated"):
        Reader(b"\x05abc").lenenc_bytes()


def test_fixed_ints() -> None:
    r = Reader(bytes(range(1, 19)))
    assert r.u8() == 1
    assert r.u16() == 0x0302
    assert r.u24() == 0x060504
    assert r.u32() == 0x0A090807
    assert r.u64() == 0x1211100F0E0D0C0B
    with pytest.raises(MalformedPacket):
        r.u8()


def test_nul_strings() -> None:
    r = Reader(b"abc\x00def")
    assert r.nul_str() == b"abc"
    with pytest.raises(MalformedPacket, match="NUL"):
        Reader(b"def").nul_str()
    assert r.nul_str_or_rest() == b"def"
    assert r.at_end()


def test_view_is_zero_copy() -> None:
    data = bytearray(b"0123456789")
    v = Reader(data).view(4)
    data[0] = ord("X")
    assert bytes(v) == b"X123"
