"""Column exclusion and masking: ``--exclude-column`` and ``--mask-column`` (``[[stream]]``
``exclude_columns`` / ``mask_columns``).

A rule is ``DB.TABLE.COLUMN`` with globs in each part (``shop.*.email``; the column is what follows
the last dot). An excluded column leaves the before and after images and the key. A masked one
keeps its place with its value replaced: ``hash`` (the default) by ``"sha256:<hex>"`` of the value's
JSON text — equal values stay equal, so a masked key still identifies its row; ``null`` by null;
``redact`` by ``"[redacted]"``. A NULL stays NULL (that a value is missing is not the secret). A
masked key column is masked in ``pk`` too. Exclusion wins over masking.

Rules apply to the encoded lines of the tables they match only: each rows event's lines come as
one chunk that begins with the same ``{"op":…,"db":…,"table":…,`` head, and the rules for a head
are looked up once. A table without rules costs one dictionary lookup per rows event; the lines of
a table with rules are parsed, rewritten and serialised again.
"""

from __future__ import annotations

import fnmatch
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import orjson

from binhub.binlog.json_form import json_default
from binhub.errors import ConfigError
from binhub.sinks.base import Message

__all__ = ["MASKS", "ColumnRules", "TableColumnRules"]

MASKS: dict[str, Callable[[Any], Any]] = {
    # The value's JSON text in binhub's form (bytes as base64), whatever the output format: a
    # masked value is the same in every format, and joins across them.
    "hash": lambda v: "sha256:" + hashlib.sha256(orjson.dumps(v, default=json_default)).hexdigest(),
    "null": lambda v: None,
    "redact": lambda v: "[redacted]",
}
_DROP = "exclude"
_PK_MARK = b',"pk":'


@dataclass(frozen=True, slots=True)
class _Rule:
    table: str  # glob on db.table
    column: str  # glob on the column name
    action: str  # "exclude" or a key of MASKS


def _parse(spec: str, *, key: str, masking: bool) -> _Rule:
    pattern, method = spec, "hash"
    if masking and "=" in spec:
        pattern, _, method = spec.rpartition("=")
        if method not in MASKS:
            raise ConfigError(key, f"{spec!r}: the mask must be one of {', '.join(MASKS)}")
    table, _, column = pattern.rpartition(".")
    if table.count(".") < 1 or not column or table.startswith(".") or table.endswith("."):
        raise ConfigError(key, f"{spec!r} is not DB.TABLE.COLUMN (globs allowed, e.g. shop.*.email)")
    return _Rule(table, column, method if masking else _DROP)


class TableColumnRules:
    """The rules matching one table: rewrites the lines of its rows events (binhub's format), or
    the row images and key of each change (:meth:`image`, :meth:`key`: the other formats)."""

    def __init__(self, rules: Sequence[_Rule]) -> None:
        self._rules = rules
        self._actions: dict[str, str | None] = {}

    def action(self, column: str) -> str | None:
        """What becomes of the column: "exclude", a key of MASKS, or None (it stays as it is)."""
        try:
            return self._actions[column]
        except KeyError:
            matching = [r.action for r in self._rules if fnmatch.fnmatchcase(column, r.column)]
            action = _DROP if _DROP in matching else (matching[0] if matching else None)
            self._actions[column] = action
            return action

    def image(self, row: dict[str, Any] | None) -> dict[str, Any] | None:
        """A row image (or key) with the rules applied."""
        if row is None:
            return None
        out: dict[str, Any] = {}
        for name, value in row.items():
            action = self.action(name)
            if action is None:
                out[name] = value
            elif action != _DROP:
                out[name] = value if value is None else MASKS[action](value)
        return out

    def key(self, names: tuple[str, ...] | None) -> tuple[str, ...] | None:
        """The primary key's columns less the excluded ones."""
        if not names:
            return names
        return tuple(n for n in names if self.action(n) != _DROP)

    def apply(self, chunk: bytes) -> bytes:
        """The lines of one rows event with the rules applied."""
        out = []
        for line in chunk.splitlines():
            change = orjson.loads(line)
            change["before"] = self.image(change["before"])
            change["after"] = self.image(change["after"])
            change["pk"] = self.image(change["pk"])
            out.append(orjson.dumps(change))
        out.append(b"")
        return b"\n".join(out)


class ColumnRules:
    """Every exclusion and mask of a stream; :meth:`apply` to each rows event's lines."""

    def __init__(self, exclude: Sequence[str] = (), mask: Sequence[str] = ()) -> None:
        self._rules = [_parse(s, key="--exclude-column", masking=False) for s in exclude] + \
            [_parse(s, key="--mask-column", masking=True) for s in mask]
        self._by_head: dict[bytes, TableColumnRules | None] = {}

    def __bool__(self) -> bool:
        return bool(self._rules)

    def for_table(self, db: str, table: str) -> TableColumnRules | None:
        name = f"{db}.{table}"
        matching = [r for r in self._rules if fnmatch.fnmatchcase(name, r.table)]
        return TableColumnRules(matching) if matching else None

    def apply(self, chunk: bytes) -> bytes:
        """One rows event's lines (a DDL line passes as it is)."""
        end = chunk.find(_PK_MARK, 0, 4096)  # names are short: the head is in the first bytes
        if end < 0:
            return chunk
        head = chunk[:end]
        try:
            rules = self._by_head[head]
        except KeyError:
            first = orjson.loads(head + b"}")
            rules = None if first["op"] == "ddl" else self.for_table(first["db"], first["table"] or "")
            self._by_head[head] = rules
        return chunk if rules is None else rules.apply(chunk)

    def apply_message(self, message: Message) -> Message:
        """A binhub-format message with the rules applied; a keyed one gets its lines' masked pks as keys."""
        if message.ddl or message.value is None:
            return message
        value = self.apply(message.value)
        if value is message.value:
            return message
        if message.keys is not None:  # several lines, each with its key
            return replace(message, value=value, keys=[orjson.dumps(orjson.loads(line)["pk"])
                                                       for line in value.splitlines()])
        key = message.key if message.key is None else orjson.dumps(orjson.loads(value)["pk"])
        return replace(message, value=value, key=key)
