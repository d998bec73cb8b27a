"""How each column comes out of the server as an exact SQL literal.

The server formats every value itself, and by default the whole row too (``CONCAT('(', v1, ',',
v2, ..., ')')``, each piece as binary so no collations mix): Python receives one column per row and
writes it as it is, so the dump runs at the server's speed, not the interpreter's (PyMySQL spends
~2 µs on every column it parses). Every expression yields the literal ``NULL`` for a NULL, so a
missing value (Python ``None``) can only mean the server could not build the literal: it was longer
than ``max_allowed_packet`` (warning 1301). A whole row that long is read again column by column
(:class:`RowTooLong`); a single value that long stops the backup with what to raise.

Exactness, type by type (restored into a session with ``time_zone='+00:00'`` and
``sql_mode='NO_AUTO_VALUE_ON_ZERO'``, as the dump reads them):

- integers, DECIMAL: their digits; FLOAT through ``CAST(AS DOUBLE)`` and DOUBLE as the server
  prints it (the shortest text that parses back to the same binary value);
- BIT, ENUM, SET, YEAR: as numbers (``col+0``): the bits, the index or the bit mask, so an
  invalid ENUM value ('' , index 0) and YEAR 0000 come back as they were;
- temporal types: quoted, with the column's fractional digits; TIMESTAMP in UTC; zero dates as they are;
- utf8mb3/utf8mb4 text: ``QUOTE()``d, with raw newlines escaped so one row is one line of the file;
- text in any other character set: its bytes in hex with the charset's introducer (``_latin1
  X'..'``), so nothing is converted on the way (a byte sequence the charset does not define
  survives too);
- binary strings, BLOBs and spatial values: their bytes in hex (``X'..'``; spatial columns hold
  the server's internal SRID + WKB, which a spatial column accepts back as it is);
- anything else (JSON, INET4/INET6/UUID, ...): ``QUOTE()``d text.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from binhub.backup.logical.manifest import ColumnRecord
from binhub.errors import BackupError

INTEGERS = frozenset({"tinyint", "smallint", "mediumint", "int", "integer", "bigint", "decimal", "numeric", "double"})
AS_NUMBER = frozenset({"bit", "enum", "set", "year"})
TEMPORAL = frozenset({"date", "time", "datetime", "timestamp"})
BINARY = frozenset({"binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob", "geometry", "point",
                    "linestring", "polygon", "multipoint", "multilinestring", "multipolygon", "geometrycollection",
                    "geomcollection", "vector"})
UNICODE = frozenset({"utf8mb4", "utf8mb3", "utf8", "ascii"})


def quote_name(*names: str) -> str:
    """```db`.`t```: identifiers quoted the way SHOW CREATE quotes them."""
    return ".".join("`" + name.replace("`", "``") + "`" for name in names)


def quote_text(text: str) -> str:
    """A string literal of ``text`` (names and values binhub puts into SQL itself)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


def in_list(values: Iterable[str]) -> str:
    """``('a','b')``: an ``IN`` list of string literals (``(NULL)``, which matches nothing, when empty)."""
    return "(" + ",".join([quote_text(v) for v in values] or ["NULL"]) + ")"


def literal_expression(column: ColumnRecord) -> str:
    """The SQL expression that reads ``column`` as the literal that writes it back exactly."""
    c = quote_name(column.name)
    kind = column.data_type.lower()
    if kind in INTEGERS:
        return f"IFNULL({c},'NULL')"
    if kind == "float":
        return f"IFNULL(CAST({c} AS DOUBLE),'NULL')"
    if kind in AS_NUMBER:
        return f"IFNULL({c}+0,'NULL')"
    if kind in TEMPORAL:
        return f"QUOTE({c})"
    if kind in BINARY or (column.charset is not None and column.charset.lower() == "binary"):
        return f"IF({c} IS NULL,'NULL',CONCAT('X''',HEX({c}),''''))"
    if column.charset is not None and column.charset.lower() not in UNICODE:
        introducer = "_" + column.charset.lower()
        return f"IF({c} IS NULL,'NULL',CONCAT('{introducer} X''',HEX({c}),''''))"
    return rf"REPLACE(QUOTE({c}),'\n','\\n')"


class RowTooLong(Exception):
    """A row's literal is longer than the server's max_allowed_packet: read it column by column."""


@dataclass(frozen=True, slots=True)
class RowReader:
    """The SELECT list that reads a table's rows as ``(...)`` literals, and how to take one from a result row.

    ``whole_row``: the server builds the row literal (one column), else Python joins the columns.
    The key's literals (for keyset pages) are at ``key_positions`` of the result row.
    """

    table: str
    columns: tuple[str, ...]
    select: str
    whole_row: bool
    key_positions: tuple[int, ...]
    row: str = ""  # whole_row: the expression of the row's literal alone

    @classmethod
    def for_table(cls, table: str, columns: list[ColumnRecord], key: list[str], *, whole_row: bool) -> RowReader:
        loaded = [c for c in columns if not c.generated]
        expressions = [literal_expression(c) for c in loaded]
        names = tuple(c.name for c in loaded)
        if not whole_row:
            positions = tuple(names.index(k) for k in key) if set(key) <= set(names) else ()
            return cls(table, names, ",".join(expressions), False, positions)
        row = "CONCAT('('," + ",',',".join(f"CAST({e} AS BINARY)" for e in expressions) + ",')')"
        keys = [expressions[names.index(k)] for k in key] if set(key) <= set(names) else []
        return cls(table, names, ",".join([row, *keys]), True, tuple(range(1, len(keys) + 1)), row)

    def literal(self, row: tuple[bytes | None, ...]) -> bytes:
        if self.whole_row:
            value = row[0]
            if value is None:
                raise RowTooLong(self.table)
            return value
        try:
            return b"(" + b",".join(row) + b")"  # type: ignore[arg-type]
        except TypeError:
            column = next(self.columns[i] for i, v in enumerate(row) if v is None)
            raise BackupError(f"{self.table}: a value of column {column} is too long for the server to send as "
                              "a literal (longer than max_allowed_packet)",
                              hint="raise max_allowed_packet on the source (and on the server you restore to)") \
                from None

    def key(self, row: tuple[bytes | None, ...]) -> list[bytes]:
        return [row[i] or b"NULL" for i in self.key_positions]


def insert_head(table: str, columns: list[ColumnRecord]) -> bytes:
    """``INSERT INTO `t` (`a`,`b`) VALUES``: unqualified, so the file loads into whatever database is USEd."""
    names = ",".join(quote_name(c.name) for c in columns if not c.generated)
    return f"INSERT INTO {quote_name(table)} ({names}) VALUES\n".encode()
