"""Column exclusion and masking (``--exclude-column``, ``--mask-column``) on binhub JSON lines."""

from __future__ import annotations

import hashlib
import json

import orjson
import pytest

from binhub.errors import ConfigError
from binhub.ops.config import load_config
from binhub.stream.columns import ColumnRules


def line(op: str, table: str, before: dict | None, after: dict | None, pk: dict | None) -> bytes:
    return orjson.dumps({"op": op, "db": "shop", "table": table, "pk": pk, "before": before, "after": after,
                         "gtid": "0-1-5", "file": "b.000001", "pos": 4, "ts": "2026-01-01T00:00:00Z"}) + b"\n"


def sha(value: object) -> str:
    return "sha256:" + hashlib.sha256(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()).hexdigest()


def test_rules_rewrite_only_the_tables_they_match() -> None:
    rules = ColumnRules(exclude=["shop.users.notes"],
                        mask=["shop.users.email", "shop.users.id=hash", "*.users.ssn=redact", "shop.u*.phone=null",
                              "shop.users.notes=redact"])
    users = line("update", "users", {"id": 7, "email": "é@x", "ssn": "1", "phone": "5", "notes": "n", "v": 1},
                 {"id": 7, "email": None, "ssn": "2", "phone": "6", "notes": "m", "v": 2}, {"id": 7}) + \
        line("delete", "users", {"id": 8, "email": "b", "ssn": None, "phone": None, "notes": None, "v": 3}, None,
             {"id": 8})
    out = [json.loads(x) for x in rules.apply(users).splitlines()]
    assert out[0]["before"] == {"id": sha(7), "email": sha("é@x"), "ssn": "[redacted]", "phone": None, "v": 1}
    assert out[0]["after"] == {"id": sha(7), "email": None, "ssn": "[redacted]", "phone": None, "v": 2}
    assert out[0]["pk"] == {"id": sha(7)}, "a masked key column is masked in the key too"
    assert out[1]["before"]["ssn"] is None and out[1]["after"] is None and out[1]["pk"] == {"id": sha(8)}
    assert {k: v for k, v in out[0].items() if k not in ("before", "after", "pk")} == \
        {k: v for k, v in json.loads(users.splitlines()[0]).items() if k not in ("before", "after", "pk")}
    # A table no rule names comes back untouched, as the very same bytes (no parsing).
    orders = line("insert", "orders", None, {"id": 1, "email": "x"}, {"id": 1})
    assert rules.apply(orders) is orders
    ddl = orjson.dumps({"op": "ddl", "db": "shop", "table": "users", "pk": None, "before": None, "after": None,
                        "sql": "ALTER TABLE users ADD ssn INT"}) + b"\n"
    assert rules.apply(ddl) is ddl
    assert not ColumnRules()


@pytest.mark.parametrize("exclude,mask,message", [
    (["shop.users"], [], "is not DB.TABLE.COLUMN"),
    (["users.email"], [], "is not DB.TABLE.COLUMN"),
    ([], ["shop.users.email=md5"], "the mask must be one of hash, null, redact"),
    ([], ["shop.users."], "is not DB.TABLE.COLUMN"),
])
def test_malformed_rules_are_refused(exclude: list[str], mask: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ColumnRules(exclude, mask)


def test_stream_sections_take_column_rules(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "binhub.toml"
    path.write_text('[store]\ndata_dir = "d"\n[[stream]]\nname = "a"\nto = "-"\nexclude_columns = ["s.t.c"]\n'
                    'mask_columns = ["s.*.email=null"]\nlease = false\n')
    stream = load_config(path).streams[0]
    assert stream.exclude_columns == ("s.t.c",) and stream.mask_columns == ("s.*.email=null",) and not stream.lease
    path.write_text('[store]\ndata_dir = "d"\n[[stream]]\nname = "a"\nto = "-"\nmask_columns = ["s.t.c=x"]\n')
    with pytest.raises(ConfigError, match=r"stream\[1\]\.mask_columns: 's.t.c=x': the mask must be one of"):
        load_config(path)


def test_a_keyed_message_of_several_lines_gets_each_lines_masked_key() -> None:
    # The binhub format hands a keyed sink a rows event's lines as one message with a key per line.
    from binhub.sinks import Message

    rules = ColumnRules(mask=["shop.users.id=hash"])
    chunk = line("insert", "users", None, {"id": 1, "v": 1}, {"id": 1}) + \
        line("insert", "users", None, {"id": 2, "v": 2}, {"id": 2})
    out = rules.apply_message(Message("shop", "users", None, chunk, keys=[b'{"id":1}', b'{"id":2}']))
    assert out.keys == [orjson.dumps({"id": sha(1)}), orjson.dumps({"id": sha(2)})]
    assert [json.loads(x)["pk"] for x in out.value.splitlines()] == [{"id": sha(1)}, {"id": sha(2)}]
    untouched = Message("shop", "orders", None, chunk.replace(b'"users"', b'"orders"'), keys=[b"1", b"2"])
    assert rules.apply_message(untouched) is untouched
