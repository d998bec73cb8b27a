"""``--format binhub``: binhub JSON lines (:mod:`binhub.binlog.json_form`), on the C fast path.

Rows events become lines straight from the row images (:class:`~binhub.binlog.row_json.RowJsonDecoder`).
A rows event's lines go out as one message; for a keyed sink with each line's key (its ``"pk"``
text, which the C encoder hands back as it writes it) in ``Message.keys``. With ``records`` (a
:class:`~binhub.sinks.ChangeSink`: the MySQL sink) a rows event's changes go out as
:class:`~binhub.binlog.changes.RowChange` records instead, from the row decoder, never as JSON.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from binhub.binlog.changes import RowChangeDecoder
from binhub.binlog.events import FormatDescriptionEvent
from binhub.binlog.json_form import format_commit_time
from binhub.binlog.row_json import RowJsonDecoder
from binhub.sinks import Message
from binhub.stream.formats.base import DdlChange, OutputFormat, Walker

__all__ = ["BinhubFormat"]


class _BinhubWalker:
    def __init__(self, file: str, keyed: bool, **kwargs: Any) -> None:
        self._keys: list[bytes] | None = [] if keyed else None
        self._lines = RowJsonDecoder(file, keys=self._keys, **kwargs)

    @property
    def gtid(self) -> str | None:
        return self._lines.gtid

    def feed(self, data: bytes, offset: int, fde: FormatDescriptionEvent | None) -> list[Message]:
        out: list[Message] = []
        keys = self._keys
        for chunk in self._lines.feed(data, offset, fde):
            table_map = self._lines.table_map
            assert table_map is not None  # a rows event's lines: its table's
            db, table = table_map.db, table_map.table
            if keys is None:
                out.append(Message(db, table, None, chunk))
                continue
            lines = chunk.count(b"\n")
            if lines != len(keys):  # the encoders guarantee it; a mismatch would mis-key rows
                raise AssertionError(f"{lines} lines but {len(keys)} keys for {db}.{table}")
            out.append(Message(db, table, None, chunk, keys=keys.copy()))
            keys.clear()
        return out


class _RecordWalker:
    """A rows event's changes as one message of records (``Message.rows``)."""

    def __init__(self, file: str, **kwargs: Any) -> None:
        self._decoder = RowChangeDecoder(file, **kwargs)

    @property
    def gtid(self) -> str | None:
        return self._decoder.gtid

    def feed(self, data: bytes, offset: int, fde: FormatDescriptionEvent | None) -> list[Message]:
        rows = list(self._decoder.feed(data, offset, fde))
        return [Message(rows[0].db, rows[0].table, None, None, rows=rows)] if rows else []


class BinhubFormat(OutputFormat):
    name = "binhub"

    def __init__(self, *, stream_name: str, keyed: bool, transaction_metadata: bool = False,
                 records: bool = False) -> None:
        super().__init__(stream_name=stream_name, keyed=keyed, transaction_metadata=transaction_metadata)
        self.records = records  # row changes as RowChange records (DDL stays a JSON line)

    def walker(self, file: str, *, schemas: Callable[[str, str], Any],
               include: Callable[[str, str], bool]) -> Walker:
        if self.records:
            return _RecordWalker(file, schemas=schemas, include=include)
        return _BinhubWalker(file, self.keyed, schemas=schemas, include=include)

    def ddl(self, change: DdlChange) -> Message:
        line = orjson.dumps({"op": "ddl", "db": change.db, "table": change.table, "pk": None, "before": None,
                             "after": None, "gtid": change.gtid, "file": change.file, "pos": change.pos,
                             "ts": format_commit_time(change.timestamp * 1_000_000), "sql": change.sql,
                             "session": change.session})
        return Message(change.db, change.table or "", None, line + b"\n", ddl=True)

    def transaction_end(self) -> list[Message]:
        return []  # nothing held, and no TransactionContext to renew: this format does not observe
