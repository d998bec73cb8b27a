"""The output formats' value encodings where they are pure arithmetic (the field-by-field checks
against each tool's documented examples run on real rows in tests/integration/test_stream_formats.py),
and the Kafka sink's target parsing and topic names."""

from __future__ import annotations

import base64

import pytest

from binhub.errors import ConfigError
from binhub.sinks.kafka_config import KafkaTarget, topic_name
from binhub.stream.formats import output_format
from binhub.stream.formats.canal import canal_value, mysql_type
from binhub.stream.formats.columns import FormatColumn, Kind
from binhub.stream.formats.debezium import (
    debezium_value,
    decimal_bytes,
    default_expression,
    unrepresentable_date,
)


def column(kind: Kind, declared: str = "", *, int_type: str = "", unsigned: bool = False, fsp: int = 0,
           bits: int = 0, nullable: bool = True) -> FormatColumn:
    return FormatColumn("c", kind, declared, int_type, unsigned, 10, 3, fsp, bits, nullable)


@pytest.mark.parametrize("text", ["0", "12.300", "-12.300", "-1", "127", "128", "-128", "-129", "255", "256",
                                  "99999999999999999999999999999.999999999", "-0.001"])
def test_decimal_is_java_bigdecimal_unscaled_bytes(text: str) -> None:
    raw = base64.b64decode(decimal_bytes(text))
    unscaled = int.from_bytes(raw, "big", signed=True)
    assert unscaled == int(text.replace(".", ""))
    # Minimal, as BigInteger.toByteArray: one byte fewer would not hold the value with its sign.
    assert len(raw) == 1 or not -(1 << (8 * len(raw) - 9)) <= unscaled < 1 << (8 * len(raw) - 9)
    assert decimal_bytes("12.300") == "MAw="  # 12300 = 0x300C


def test_debezium_temporals_and_zero_dates() -> None:
    assert debezium_value(column(Kind.DATE), "1970-01-02") == 1
    assert debezium_value(column(Kind.DATE), "1969-12-31") == -1
    assert debezium_value(column(Kind.DATE), "0000-00-00") is None
    assert debezium_value(column(Kind.DATE, nullable=False), "0000-00-00") == 0
    assert debezium_value(column(Kind.TIME, fsp=6), "-00:00:00.000001") == -1
    assert debezium_value(column(Kind.TIME), "838:59:59") == 3_020_399_000_000
    assert debezium_value(column(Kind.DATETIME, fsp=3), "1970-01-01 00:00:01.500") == 1500
    assert debezium_value(column(Kind.DATETIME, fsp=6), "1970-01-01 00:00:01.500000") == 1_500_000
    assert debezium_value(column(Kind.DATETIME), "0000-00-00 00:00:00") is None
    assert debezium_value(column(Kind.TIMESTAMP, fsp=3), "2024-01-02 03:04:05.120") == "2024-01-02T03:04:05.120Z"
    assert debezium_value(column(Kind.TIMESTAMP, nullable=False), "0000-00-00 00:00:00") == "1970-01-01T00:00:00Z"
    # Zero months and days (ALLOW_INVALID_DATES) and the year 0 cannot be carried either.
    for text in ("2020-00-15", "2020-02-00", "0000-01-01"):
        assert unrepresentable_date(text) and unrepresentable_date(text + " 10:00:00")
        assert debezium_value(column(Kind.DATE), text) is None
        assert debezium_value(column(Kind.DATETIME), text + " 10:00:00") is None
    assert not unrepresentable_date("0001-01-01") and not unrepresentable_date("2020-10-10 00:00:00")
    assert debezium_value(column(Kind.INT, int_type="bigint", unsigned=True), 2**64 - 2) == -2
    assert debezium_value(column(Kind.BIT, bits=1), 1) is True
    assert base64.b64decode(debezium_value(column(Kind.BIT, bits=12), 0x801)) == b"\x01\x08"


def test_canal_text_and_types() -> None:
    assert canal_value(column(Kind.BINARY), b"\x00\xff") == "\x00\xff"  # ISO-8859-1
    assert (canal_value(column(Kind.INT), 5), canal_value(column(Kind.FLOAT), 0.5)) == ("5", "0.5")
    assert canal_value(column(Kind.JSON), {"a": [1]}) == '{"a":[1]}'
    assert mysql_type(column(Kind.INT, "int", int_type="int")) == "int(11)"
    assert mysql_type(column(Kind.INT, "int unsigned", int_type="int", unsigned=True)) == "int(10) unsigned"
    assert mysql_type(column(Kind.INT, "tinyint(1)", int_type="tinyint")) == "tinyint(1)"


def test_kafka_targets_and_topic_names() -> None:
    assert KafkaTarget.parse("kafka://a:9092,b:9092/cdc.{db}.{table}") == KafkaTarget("a:9092,b:9092", "cdc.{db}.{table}")
    for bad in ("kafka://a:9092", "kafka:///t", "kafka://a:9092/x/y", "kafka://a:9092/{schema}"):
        with pytest.raises(ConfigError):
            KafkaTarget.parse(bad)
    assert topic_name("cdc.{db}.{table}", "shop", "order$ lines") == "cdc.shop.order__lines"
    with pytest.raises(ConfigError, match="--format"):
        output_format("avro", stream_name="s", keyed=False)


def test_maxwell_holds_a_transaction_for_its_xid_and_releases_a_big_one_as_it_goes(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import orjson

    from binhub.binlog.changes import RowChange
    from binhub.stream.formats import maxwell

    monkeypatch.setattr(maxwell, "HOLD_ROWS", 3)
    fmt = maxwell.MaxwellFormat(stream_name="s", keyed=True)
    columns = {"id": column(Kind.INT, "int", int_type="int")}

    def rows(n: int) -> list[dict[str, object]]:
        out = []
        for i in range(n):
            change = RowChange("insert", "d", "t", None, {"id": i}, ("id",), "0-1-1", "b.000001", 100 + i,
                               1_700_000_000_000_000, True, True)
            out += [orjson.loads(m.value or b"") for m in fmt._encode(change, columns, 0, 1)]
        fmt.context.xid = 77
        return out + [orjson.loads(m.value or b"") for m in fmt.transaction_end()]

    small = rows(2)
    assert [(r["xid"], r.get("commit")) for r in small] == [(77, None), (77, True)]
    assert "xoffset" not in small[0]
    big = rows(5)  # three released before the end, without the XID they cannot know yet
    assert [(r["xid"], r["xoffset"], r.get("commit")) for r in big] == [
        (None, 0, None), (None, 1, None), (None, 2, None), (None, 3, None), (None, 4, True)]
    assert rows(1)[0]["xid"] == 77  # the next transaction is held again


@pytest.mark.parametrize(("default", "expected"), [
    (None, (False, None)),  # a NOT NULL column without a default
    ("NULL", (False, None)),  # the connector's parser sets nothing for DEFAULT NULL
    ("(1 + 2)", (True, None)),  # an expression: the connector's parser keeps no value
    ("curdate()", (True, None)),
    ("1.5e-3", (True, "1.5e-3")),
    ("current_timestamp(3)", (True, "1970-01-01 00:00:00")),
    ("b'101'", (True, "101")),
    ("'it''s \\\\ ok'", (True, "it's \\ ok")),
    ("1.50", (True, "1.50")),
    ("-5", (True, "-5")),
])
def test_debezium_default_value_expressions(default: str | None, expected: tuple[bool, str | None]) -> None:
    assert default_expression(default) == expected
