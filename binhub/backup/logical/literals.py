"""How each column is read from the server and loaded back exactly.

The rows are read by a plain ``SELECT`` (the server's cheapest path: no expression per value but
where one is needed) under ``character_set_results = binary`` and ``time_zone = '+00:00'``, and
loaded by ``LOAD DATA ... CHARACTER SET binary`` under the same time zone and ``sql_mode =
'NO_AUTO_VALUE_ON_ZERO'``. What passes through as the server sends it, type by type:

- integers, DECIMAL, DOUBLE: their digits (DOUBLE printed as the shortest text that parses back
  to the same binary value); FLOAT through ``CAST(AS DOUBLE)``: its own text is rounded to 6 digits;
- ENUM and SET: as numbers (``col+0``), loaded through a variable as an integer: the index or the
  bit mask, so an invalid ENUM value ('', index 0) comes back as it was;
- BIT, BINARY/BLOB, spatial values (the server's internal SRID + WKB, which a spatial column takes
  back as it is) and text in any character set: their bytes, unconverted both ways;
- temporal types and YEAR: their text with the column's fractional digits; TIMESTAMP in UTC; zero
  dates as they are;
- anything else (JSON, INET4/INET6/UUID, ...): the text the server prints and parses back.

The literals of :func:`literal_expression` are for the key of a keyset page (``WHERE key > ...``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from binhub.backup.logical.manifest import ColumnRecord

# The literal of a key value (keyset pages):
INTEGERS = frozenset({"tinyint", "smallint", "mediumint", "int", "integer", "bigint", "decimal", "numeric", "double"})
KEY_AS_NUMBER = frozenset({"bit", "enum", "set", "year"})
TEMPORAL = frozenset({"date", "time", "datetime", "timestamp"})
BINARY = frozenset({"binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob", "geometry", "point",
                    "linestring", "polygon", "multipoint", "multilinestring", "multipolygon", "geometrycollection",
                    "geomcollection", "vector"})
UNICODE = frozenset({"utf8mb4", "utf8mb3", "utf8", "ascii"})
AS_NUMBER = frozenset({"enum", "set"})  # read and loaded as numbers


@dataclass(frozen=True, slots=True)
class Layout:
    """A table's loaded columns (generated ones are computed by the server, never loaded): what
    reads them and what loads them back."""

    columns: tuple[ColumnRecord, ...]

    @classmethod
    def of(cls, columns: Iterable[ColumnRecord]) -> Layout:
        return cls(tuple(c for c in columns if not c.generated))

    def select(self) -> str:
        """The SELECT list, in the columns' order."""
        return ",".join(_read_expression(c) for c in self.columns)

    def load_data(self, table: str) -> bytes:
        """``LOAD DATA LOCAL INFILE`` of a chunk's lines into ``table`` (qualified, quoted)."""
        targets = []
        sets = []
        for number, column in enumerate(self.columns):
            name = quote_name(column.name)
            if column.data_type.lower() in AS_NUMBER:
                targets.append(f"@v{number}")
                sets.append(f"{name} = CAST(@v{number} AS UNSIGNED)")
            else:
                targets.append(name)
        return (f"LOAD DATA LOCAL INFILE 'chunk' INTO TABLE {table} CHARACTER SET binary "
                r"FIELDS TERMINATED BY '\t' ESCAPED BY '\\' LINES TERMINATED BY '\n' "
                f"({','.join(targets)})" + (f" SET {','.join(sets)}" if sets else "")).encode()


def _read_expression(column: ColumnRecord) -> str:
    name = quote_name(column.name)
    kind = column.data_type.lower()
    if kind == "float":
        return f"CAST({name} AS DOUBLE)"
    if kind in AS_NUMBER:
        return f"{name}+0"
    return name


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
    if kind in KEY_AS_NUMBER:
        return f"IFNULL({c}+0,'NULL')"
    if kind in TEMPORAL:
        return f"QUOTE({c})"
    if kind in BINARY or (column.charset is not None and column.charset.lower() == "binary"):
        return f"IF({c} IS NULL,'NULL',CONCAT('X''',HEX({c}),''''))"
    if column.charset is not None and column.charset.lower() not in UNICODE:
        introducer = "_" + column.charset.lower()
        return f"IF({c} IS NULL,'NULL',CONCAT('{introducer} X''',HEX({c}),''''))"
    return rf"REPLACE(QUOTE({c}),'\n','\\n')"


