"""Vectors for the encodings that decoders get wrong most often (see cdc-anchors.md §4.3): each
value is encoded here by a transcription of the server's *writer* (MySQL ``my_time.cc``
``my_time_packed_to_binary`` / ``my_datetime_packed_to_binary``, ``decimal.cc`` ``decimal2bin``,
``json_binary.cc`` ``serialize``), with C's truncating division, and must decode to the text the
server prints."""

from __future__ import annotations

import decimal
import random
import struct
from typing import Any

import pytest

from binhub.binlog import column_values as cv
from binhub.binlog.charsets import charset_of_collation, text_decoder
from binhub.binlog.json_binary import JsonDiff, apply_json_diffs, parse_json_binary, parse_json_diffs

# ---- TIME2 / DATETIME2 / TIMESTAMP2 ------------------------------------------------------------


def _c_div(a: int, b: int) -> int:
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def _c_mod(a: int, b: int) -> int:
    return a - b * _c_div(a, b)


def _frac_store(frac_part: int, fsp: int) -> bytes:
    if fsp in (1, 2):
        return struct.pack(">b", _c_div(frac_part, 10000))
    if fsp in (3, 4):
        return struct.pack(">h", _c_div(frac_part, 100))
    return b""


def encode_time2(neg: bool, h: int, m: int, s: int, us: int, fsp: int) -> bytes:
    nr = (((h << 12) | (m << 6) | s) << 24) + us
    if neg:
        nr = -nr
    if fsp >= 5:
        return (nr + 0x800000000000).to_bytes(6, "big")
    intpart = nr >> 24  # MY_PACKED_TIME_GET_INT_PART: an arithmetic shift
    head = (0x800000 + intpart).to_bytes(3, "big")
    return head + (_frac_store(_c_mod(nr, 1 << 24), fsp) if fsp else b"")


def encode_datetime2(y: int, mo: int, d: int, h: int, mi: int, s: int, us: int, fsp: int) -> bytes:
    ymd = ((y * 13 + mo) << 5) | d
    hms = (h << 12) | (mi << 6) | s
    nr = (((ymd << 17) | hms) << 24) + us
    head = (0x8000000000 + (nr >> 24)).to_bytes(5, "big")
    if fsp >= 5:
        return head + (nr % (1 << 24)).to_bytes(3, "big")
    return head + (_frac_store(nr % (1 << 24), fsp) if fsp else b"")


def _fraction(us: int, fsp: int) -> str:
    return f".{us:06d}"[:fsp + 1] if fsp else ""


@pytest.mark.parametrize("fsp", range(7))
def test_time2_every_precision_both_signs(fsp: int) -> None:
    rng = random.Random(fsp)
    step = 10 ** (6 - fsp)
    cases = [(True, 0, 0, 0, step if fsp else 0), (True, 838, 59, 59, 0), (False, 838, 59, 59, 0),
             (True, 0, 0, 1, 0), (False, 0, 0, 0, 0), (True, 12, 34, 56, (999999 // step) * step)]
    cases += [(rng.random() < 0.5, rng.randrange(839), rng.randrange(60), rng.randrange(60),
               rng.randrange(0, 1000000, step)) for _ in range(300)]
    for neg, h, m, s, us in cases:
        data = b"\x00" + encode_time2(neg, h, m, s, us, fsp)
        sign = "-" if neg and (h or m or s or us) else ""
        assert cv.time2(data, 1, fsp) == f"{sign}{h:02d}:{m:02d}:{s:02d}{_fraction(us, fsp)}", (neg, h, m, s, us)


def test_time2_negative_fraction_known_bytes() -> None:
    # TIME(3) '-00:00:00.010' and TIME(2) '-00:00:00.01': the integer part borrows from the fraction.
    assert encode_time2(True, 0, 0, 0, 10000, 3) == bytes.fromhex("7fffffff9c")
    assert cv.time2(bytes.fromhex("7fffffff9c"), 0, 3) == "-00:00:00.010"
    assert cv.time2(bytes.fromhex("7fffffff"), 0, 2) == "-00:00:00.01"
    assert cv.time2(bytes.fromhex("7ffffffffff0"), 0, 6) == "-00:00:00.000016"


@pytest.mark.parametrize("fsp", range(7))
def test_datetime2_every_precision(fsp: int) -> None:
    rng = random.Random(100 + fsp)
    step = 10 ** (6 - fsp)
    cases = [(1000, 1, 1, 0, 0, 0, 0), (9999, 12, 31, 23, 59, 59, (999999 // step) * step), (0, 0, 0, 0, 0, 0, 0)]
    cases += [(rng.randrange(1000, 10000), rng.randrange(1, 13), rng.randrange(1, 29), rng.randrange(24),
               rng.randrange(60), rng.randrange(60), rng.randrange(0, 1000000, step)) for _ in range(300)]
    for y, mo, d, h, mi, s, us in cases:
        data = encode_datetime2(y, mo, d, h, mi, s, us, fsp)
        assert cv.datetime2(data, 0, fsp) == f"{y:04d}-{mo:02d}-{d:02d} {h:02d}:{mi:02d}:{s:02d}{_fraction(us, fsp)}"


@pytest.mark.parametrize(("raw", "fsp", "text"), [
    ("00000000", 0, "0000-00-00 00:00:00"),
    ("00000001", 0, "1970-01-01 00:00:01"),
    ("7fffffff", 0, "2038-01-19 03:14:07"),
    ("7fffffff270f", 4, "2038-01-19 03:14:07.9999"),
    ("3a7b837263", 1, "2001-02-03 04:05:06.9"),
    ("3a7b8372000001", 6, "2001-02-03 04:05:06.000001"),
    ("3a7b8372000a", 3, "2001-02-03 04:05:06.001"),
])
def test_timestamp2_utc(raw: str, fsp: int, text: str) -> None:
    assert cv.timestamp2(bytes.fromhex(raw), 0, fsp) == text


# ---- DECIMAL -------------------------------------------------------------------------------------

_DIG2BYTES = (0, 1, 1, 2, 2, 3, 3, 4, 4, 4)


def decimal2bin(text: str, precision: int, scale: int) -> bytes:
    """strings/decimal.cc decimal2bin, for a value that fits DECIMAL(precision, scale)."""
    negative = text.startswith("-")
    int_text, _, frac_text = text.lstrip("-").partition(".")
    frac_text = frac_text.ljust(scale, "0")
    intg = precision - scale
    int_text = int_text.rjust(intg, "0")
    out = bytearray()
    lead = intg % 9
    if lead:
        out += int(int_text[:lead]).to_bytes(_DIG2BYTES[lead], "big")
    for i in range(lead, intg, 9):
        out += int(int_text[i:i + 9]).to_bytes(4, "big")
    for i in range(0, scale - scale % 9, 9):
        out += int(frac_text[i:i + 9]).to_bytes(4, "big")
    if scale % 9:
        out += int(frac_text[scale - scale % 9:]).to_bytes(_DIG2BYTES[scale % 9], "big")
    if negative:
        out = bytearray(b ^ 0xFF for b in out)
    out[0] ^= 0x80
    return bytes(out)


@pytest.mark.parametrize(("text", "precision", "scale", "printed"), [
    ("0", 10, 0, "0"), ("0", 10, 3, "0.000"), ("-0.001", 10, 3, "-0.001"), ("12.3", 10, 3, "12.300"),
    ("1234567890.123456789", 19, 9, "1234567890.123456789"), ("-1234567890.123456789", 19, 9, "-1234567890.123456789"),
    ("0.5", 5, 5, "0.50000"), ("-0.5", 5, 5, "-0.50000"), ("99999", 5, 0, "99999"),
    ("9" * 35 + "." + "9" * 30, 65, 30, "9" * 35 + "." + "9" * 30),
    ("-" + "9" * 65, 65, 0, "-" + "9" * 65), ("1", 1, 0, "1"), ("-1", 1, 0, "-1"),
    ("100000000", 9, 0, "100000000"), ("1000000000", 10, 0, "1000000000"),
    ("0.000000001", 18, 9, "0.000000001"), ("12345678.87654321", 16, 8, "12345678.87654321"),
])
def test_newdecimal(text: str, precision: int, scale: int, printed: str) -> None:
    data = b"\xaa" + decimal2bin(text, precision, scale) + b"\xbb"
    assert len(data) - 2 == cv.decimal_size(precision, scale)
    assert cv.newdecimal(data, 1, precision, scale) == printed


def test_newdecimal_random_against_python_decimal() -> None:
    rng = random.Random(7)
    with decimal.localcontext() as context:
        context.prec = 100
        _random_decimals(rng)


def _random_decimals(rng: random.Random) -> None:
    for _ in range(2000):
        precision = rng.randrange(1, 66)
        scale = rng.randrange(0, min(precision, 30) + 1)
        digits = "".join(rng.choice("0123456789") for _ in range(precision))
        value = decimal.Decimal(("-" if rng.random() < 0.5 else "") + digits[:precision - scale] + "." +
                                digits[precision - scale:] if scale else digits)
        expected = format(value.quantize(decimal.Decimal(1).scaleb(-scale)), "f")
        if expected.startswith("-") and decimal.Decimal(expected) == 0:
            expected = expected[1:]
        assert cv.newdecimal(decimal2bin(expected, precision, scale), 0, precision, scale) == expected


# ---- scalars and text ----------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "shown"), [(1.1, 1.1), (0.1, 0.1), (-3.40282e38, -3.40282e38),
                                                (16777217.0, 16777216.0), (1e-45, 1.4013e-45), (0.0, 0.0)])
def test_float32_shortest(value: float, shown: float) -> None:
    raw = struct.unpack("<f", struct.pack("<f", value))[0]
    assert cv.float32(raw) == shown


def test_dates_and_old_temporals() -> None:
    assert cv.date3((2024 << 9) | (2 << 5) | 29) == "2024-02-29"
    assert cv.date3(0) == "0000-00-00"
    assert cv.old_time(-8385959) == "-838:59:59"
    assert cv.old_datetime(20240229123456) == "2024-02-29 12:34:56"
    assert cv.old_timestamp(0) == "0000-00-00 00:00:00"


def test_latin1_is_cp1252_with_mysqls_five_extra_bytes() -> None:
    decode = text_decoder("latin1")
    assert decode(bytes([0x80, 0x81, 0x8D, 0x9F, 0xE9, 0xFF])) == "€\x81\x8dŸéÿ"
    assert text_decoder("gbk")("中文".encode("gbk")) == "中文"


def test_collations() -> None:
    assert charset_of_collation(255, mariadb=False) == "utf8mb4"
    assert charset_of_collation(45, mariadb=True) == "utf8mb4"
    assert charset_of_collation(28, mariadb=False) == "gbk"
    assert charset_of_collation(63, mariadb=True) == "binary"
    assert charset_of_collation(1032, mariadb=True) == "latin1"  # latin1_swedish_nopad_ci
    assert charset_of_collation(248, mariadb=False) == "gb18030"
    assert charset_of_collation(999, mariadb=False) is None


# ---- JSON binary ---------------------------------------------------------------------------------

def _varlen(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _scalar(value: Any) -> tuple[int, bytes]:
    """(type, bytes) of a value stored outside its container (json_binary.cc serialize_json_value)."""
    if isinstance(value, dict | list):
        return jsonb_container(value, large=False)
    if value is None:
        return 4, b"\x00"
    if value is True:
        return 4, b"\x01"
    if value is False:
        return 4, b"\x02"
    if isinstance(value, float):
        return 11, struct.pack("<d", value)
    if isinstance(value, int):
        for kind, fmt in ((5, "<h"), (7, "<i"), (9, "<q"), (10, "<Q")):
            try:
                return kind, struct.pack(fmt, value)
            except struct.error:
                continue
    if isinstance(value, tuple):  # ("opaque", field type, payload)
        return 15, bytes([value[1]]) + _varlen(len(value[2])) + value[2]
    data = str(value).encode()
    return 12, _varlen(len(data)) + data


def jsonb_container(value: dict[str, Any] | list[Any], large: bool) -> tuple[int, bytes]:
    w = 4 if large else 2
    fmt = "<I" if large else "<H"
    items = list(value.items()) if isinstance(value, dict) else [(None, v) for v in value]
    header = 2 * w + (len(items) * (w + 2) if isinstance(value, dict) else 0) + len(items) * (1 + w)
    keys = b"".join(k.encode() for k, _ in items if k is not None)
    key_entries, value_entries, tail = b"", b"", b""
    key_pos = header
    for k, _ in items:
        if k is not None:
            key_entries += struct.pack(fmt, key_pos) + struct.pack("<H", len(k.encode()))
            key_pos += len(k.encode())
    offset = header + len(keys)
    for _, v in items:
        inline = v is None or isinstance(v, bool) or (isinstance(v, int) and -32768 <= v <= 32767)
        if inline:
            kind, payload = _scalar(v)
            value_entries += bytes([kind]) + payload.ljust(w, b"\0")
        else:
            kind, payload = _scalar(v)
            value_entries += bytes([kind]) + struct.pack(fmt, offset + len(tail))
            tail += payload
    body = key_entries + value_entries + keys + tail
    size = 2 * w + len(body)
    kind = (1 if large else 0) if isinstance(value, dict) else (3 if large else 2)
    return kind, struct.pack(fmt, len(items)) + struct.pack(fmt, size) + body


def jsonb(value: Any, large: bool = False) -> bytes:
    if isinstance(value, dict | list):
        kind, payload = jsonb_container(value, large)
    else:
        kind, payload = _scalar(value)
    return bytes([kind]) + payload


DOC = {"a": [1, -2, 70000, -5000000000, 2**64 - 1, 2.5, "x" * 200, None, True, False],
       "b": {"c": "ü", "d": {}, "e": []}, "": 0}


@pytest.mark.parametrize("large", [False, True])
def test_json_binary_every_type(large: bool) -> None:
    value = parse_json_binary(jsonb(DOC, large=large))
    assert value["a"][:7] == [1, -2, 70000, -5000000000, 2**64 - 1, 2.5, "x" * 200]
    assert [repr(x) for x in value["a"][7:]] == ["JSON_NULL", "True", "False"]
    assert value["b"] == {"c": "ü", "d": {}, "e": []} and value[""] == 0


def test_json_binary_scalars_and_opaque() -> None:
    assert parse_json_binary(jsonb("str")) == "str"
    assert parse_json_binary(jsonb(3.25)) == 3.25
    assert repr(parse_json_binary(b"")) == "JSON_NULL"
    assert parse_json_binary(jsonb(-32768)) == -32768
    dec = bytes([5, 2]) + decimal2bin("-123.45", 5, 2)
    assert parse_json_binary(jsonb(("opaque", 246, dec))) == decimal.Decimal("-123.45")
    packed_date = (((2024 * 13 + 2) << 5 | 29) << 17) << 24
    assert parse_json_binary(jsonb(("opaque", 10, struct.pack("<q", packed_date)))) == "2024-02-29"
    packed_dt = ((((2024 * 13 + 2) << 5 | 29) << 17 | (12 << 12 | 34 << 6 | 56)) << 24) + 5
    assert parse_json_binary(jsonb(("opaque", 12, struct.pack("<q", packed_dt)))) == "2024-02-29 12:34:56.000005"
    packed_time = -(((1 << 12 | 2 << 6 | 3) << 24) + 500000)
    assert parse_json_binary(jsonb(("opaque", 11, struct.pack("<q", packed_time)))) == "-01:02:03.500000"
    assert parse_json_binary(jsonb(("opaque", 252, b"\x01\x02"))) == "base64:type252:AQI="


def test_json_binary_corrupt() -> None:
    from binhub.errors import InvalidEvent
    with pytest.raises(InvalidEvent, match="corrupt"):
        parse_json_binary(jsonb(DOC)[:-5])
    with pytest.raises(InvalidEvent, match="unknown JSON value type 99"):
        parse_json_binary(b"\x63\x00")


def _diff(op: int, path: str, value: Any = None) -> bytes:
    p = path.encode()
    out = bytes([op]) + bytes([len(p)]) + p
    if op != JsonDiff.REMOVE:
        v = jsonb(value)
        out += bytes([len(v)]) + v
    return out


def test_json_diffs_apply_like_the_replica() -> None:
    before = {"a": [1, 2, 3], "b": {"c": 1}, "k": "v"}
    diffs = parse_json_diffs(_diff(0, "$.a[1]", 20) + _diff(1, "$.a[0]", 0) + _diff(2, "$.b.c") +
                             _diff(1, '$."new key"', "x") + _diff(0, "$.k", [True]) + _diff(1, "$.a[last]", 9))
    after = apply_json_diffs(before, diffs)
    assert after == {"a": [0, 1, 20, 9, 3], "b": {}, "k": [True], "new key": "x"}
    assert before == {"a": [1, 2, 3], "b": {"c": 1}, "k": "v"}  # the before image is left alone
