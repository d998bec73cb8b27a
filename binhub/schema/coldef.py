"""One column definition (``name type attributes...``) read from its tokens, type spelled canonically.

Both DDL parsers hand each column definition's tokens to :func:`parse_column_def`: sqlglot's AST
says where a column definition is, but its type mapping is lossy for what decoding needs (it
reads ``INT8`` as TINYINT, ``REAL`` as FLOAT, ``LONG`` as BIGINT, drops ``NATIONAL`` and rejects the
spatial subtypes), so the type and attributes are read here, the way the server reads them.

``sql_type`` is lowercase and canonical: aliases resolved (``integer`` → ``int``, ``bool`` →
``tinyint(1)``, ``numeric`` → ``decimal``, ``long varchar`` → ``mediumtext``), implied parameters
written out (``decimal`` → ``decimal(10,0)``, ``char`` → ``char(1)``), integer display widths dropped
(but for TINYINT(1) and ZEROFILL), ENUM/SET labels quoted as SHOW CREATE TABLE quotes them. TEXT(n)/BLOB(n) are
resolved once the charset is known (:meth:`ColumnSpec.resolved_type`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from binhub.binlog.charsets import max_bytes_per_char, normalize_charset, normalize_collation
from binhub.schema.sqltext import DdlSyntaxError, Token, TokenCursor, split_top_level

__all__ = ["ColumnPosition", "ColumnSpec", "DdlSyntaxError", "default_value", "parse_column_def", "split_top_level"]


@dataclass(frozen=True, slots=True)
class ColumnPosition:
    """``FIRST`` (after=None, first=True) or ``AFTER col``."""

    first: bool = False
    after: str | None = None


@dataclass(frozen=True, slots=True)
class ColumnSpec:
    """A column as written in the DDL, before the table's defaults fill in charset and collation."""

    name: str
    sql_type: str  # canonical, see the module docstring
    base: str  # the type name alone: int, varchar, text, enum, ...
    length: int | None = None  # TEXT(n)/BLOB(n) before resolution
    unsigned: bool = False
    charset: str | None = None  # as written (or implied: NATIONAL, JSON on MariaDB)
    collation: str | None = None
    binary_collation: bool = False  # CHAR(n) BINARY: the charset's _bin collation
    nullable: bool = True
    primary_key: bool = False
    generated: bool = False
    auto_increment: bool = False
    invisible: bool = False
    enum_values: tuple[str, ...] | None = None
    set_values: tuple[str, ...] | None = None
    position: ColumnPosition | None = None
    default: tuple[Token, ...] | None = None  # what DEFAULT says (:func:`binhub.schema.defaults.column_default`)
    comment: str | None = None

    @property
    def is_text(self) -> bool:
        """A character column (takes a charset)."""
        return self.base in TEXT_TYPES

    @property
    def is_binary_string(self) -> bool:
        return self.base in BINARY_TYPES

    def resolved_type(self, charset: str | None) -> str:
        """``sql_type`` with TEXT(n)/BLOB(n) turned into the smallest TEXT/BLOB type that holds n
        characters in ``charset`` (what the server stores)."""
        if self.length is None or self.base not in ("text", "blob"):
            return self.sql_type
        per_char = 1 if self.base == "blob" else (max_bytes_per_char(charset or "") or 4)
        return sized_lob(self.base, self.length * per_char)


def sized_lob(kind: str, max_bytes: int) -> str:
    """The smallest TEXT (``kind="text"``) or BLOB type holding ``max_bytes``."""
    for size_prefix, limit in (("tiny", 255), ("", 65535), ("medium", 16777215)):
        if max_bytes <= limit:
            return size_prefix + kind
    return "long" + kind


TEXT_TYPES = frozenset({"char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum", "set"})
BINARY_TYPES = frozenset({"binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob"})
INTEGER_TYPES = frozenset({"tinyint", "smallint", "mediumint", "int", "bigint"})
_TEMPORAL_FSP = frozenset({"time", "datetime", "timestamp"})
_SPATIAL = frozenset({"geometry", "point", "linestring", "polygon", "multipoint", "multilinestring",
                      "multipolygon", "geometrycollection", "geomcollection"})
_PLAIN = frozenset({"date", "json", "tinytext", "text", "mediumtext", "longtext", "tinyblob", "blob", "mediumblob",
                    "longblob", "inet4", "inet6", "uuid", "year"}) | _SPATIAL

# Single-word aliases -> canonical base (the server's own spelling).
_ALIASES = {
    "integer": "int", "int4": "int", "int1": "tinyint", "int2": "smallint", "int3": "mediumint",
    "middleint": "mediumint", "int8": "bigint", "dec": "decimal", "numeric": "decimal", "fixed": "decimal",
    "real": "double", "float4": "float", "float8": "double", "character": "char", "long": "mediumtext",
    "geomcollection": "geometrycollection", "nchar": "char", "nvarchar": "varchar",
}
_NATIONAL = frozenset({"nchar", "nvarchar"})

# Attributes that end the type and carry nothing the history needs; they are skipped with their
# argument (one token, or a parenthesised group).
_SKIP_WITH_ARG = frozenset({"COLUMN_FORMAT", "STORAGE", "SRID", "ENGINE_ATTRIBUTE",
                            "SECONDARY_ENGINE_ATTRIBUTE", "COMPRESSED"})


def _skip_value(c: TokenCursor) -> None:
    """Skip one attribute argument: an optional '=', then a group or one token (with a following
    ``.name`` or ``(args)`` for function calls)."""
    c.accept("=")
    if c.at("("):
        c.group()
        return
    c.take()
    while c.accept("."):
        c.take()
    if c.at("("):
        c.group()


def default_value(c: TokenCursor) -> tuple[Token, ...]:
    """The tokens of a DEFAULT value: a literal (signed number; string with an introducer, or in
    adjacent parts), a function call (``NOW()``), or a parenthesised expression."""
    start = c.i
    t = c.take()
    if t.text in ("-", "+") and t.kind == "word":
        c.take()
    elif t.kind == "word" and t.text.startswith("_") and (n := c.peek()) is not None and n.kind == "string":
        t = c.take()
    elif t.kind == "punct" and t.text == "(":
        c.i -= 1
        c.group()
    elif t.is_name and c.at("("):
        c.group()
    while t.kind == "string" and (n := c.peek()) is not None and n.kind == "string":
        c.take()
    return tuple(c.toks[start:c.i])


def _name(t: Token) -> str:
    if not t.is_name:
        raise DdlSyntaxError(f"expected a column name, found {t.text!r}")
    return t.text


def parse_column_def(tokens: Sequence[Token], flavour: str = "mariadb") -> ColumnSpec:
    """``name type [attributes] [FIRST | AFTER col]`` from its tokens."""
    c = TokenCursor(tokens)
    name = _name(c.take())
    while c.at("."):  # a qualified column name (db.t.c): the last part names the column
        c.take()
        name = _name(c.take())
    spec = _parse_type(c, name, flavour)
    return _parse_attributes(c, spec)


def _parse_type(c: TokenCursor, name: str, flavour: str) -> ColumnSpec:
    t = c.take()
    if not t.is_name:
        raise DdlSyntaxError(f"column {name}: expected a type, found {t.text!r}")
    word = t.text.lower()
    charset: str | None = None
    national = word in _NATIONAL
    if word == "national":
        national = True
        word = c.take().text.lower()
    if word in ("char", "character") and c.accept("VARYING"):
        word = "varchar"
    elif word == "long":
        if c.accept("VARCHAR"):
            word = "mediumtext"
        elif c.accept("VARBINARY"):
            word = "mediumblob"
    elif word == "double":
        c.accept("PRECISION")
    elif word in ("nchar",) and c.accept("VARCHAR", "VARYING"):
        word = "varchar"
    base = _ALIASES.get(word, word)
    if national:
        charset = "utf8mb3"
    params: list[Token] = c.group() if c.at("(") else []
    unsigned = zerofill = False
    while c.at("UNSIGNED", "SIGNED", "ZEROFILL"):
        w = c.take().upper
        unsigned = unsigned or w in ("UNSIGNED", "ZEROFILL")
        zerofill = zerofill or w == "ZEROFILL"
    enum_values = set_values = None
    length: int | None = None
    nullable = True
    if base in ("bool", "boolean"):
        sql_type, base = "tinyint(1)", "tinyint"
    elif base == "serial":
        sql_type, base, unsigned, nullable = "bigint unsigned", "bigint", True, False
    elif base in ("enum", "set"):
        labels = tuple(p.text for p in params if p.kind == "string")
        sql_type = base + "(" + ",".join("'" + v.replace("'", "''") + "'" for v in labels) + ")"
        if base == "enum":
            enum_values = labels
        else:
            set_values = labels
    else:
        nums = [p.text for p in params if p.kind == "number"]
        sql_type, base, length = _canonical(base, nums)
    if base == "json" and flavour == "mariadb":
        # MariaDB's JSON is an alias: LONGTEXT in utf8mb4 with a binary collation (and a CHECK).
        sql_type, base, charset = "longtext", "longtext", "utf8mb4"
    if unsigned and base not in ("tinyint", "smallint", "mediumint", "int", "bigint", "decimal", "float", "double"):
        raise DdlSyntaxError(f"column {name}: UNSIGNED on {base}")
    if base in INTEGER_TYPES and not zerofill and sql_type != "tinyint(1)":
        # Display widths mean nothing to the stored value (MySQL 8.0.19 dropped them; MariaDB
        # prints its defaults, int(11)): kept only where they carry meaning, TINYINT(1) (read as a
        # boolean by many consumers) and ZEROFILL.
        sql_type = base
    if unsigned:
        sql_type += " unsigned"
    if zerofill:
        sql_type += " zerofill"
    collation = "utf8mb4_bin" if base == "longtext" and word == "json" else None
    return ColumnSpec(name, sql_type, base, length=length, unsigned=unsigned, charset=charset,
                      collation=collation, nullable=nullable, enum_values=enum_values, set_values=set_values)


def _canonical(base: str, nums: list[str]) -> tuple[str, str, int | None]:
    """(sql_type, base, TEXT/BLOB length) for a non-ENUM/SET type with numeric parameters."""
    if base in INTEGER_TYPES or base == "bit" and nums:
        return (f"{base}({nums[0]})" if nums else base), base, None
    if base == "bit":
        return "bit(1)", base, None
    if base == "decimal":
        m = nums[0] if nums else "10"
        d = nums[1] if len(nums) > 1 else "0"
        return f"decimal({m},{d})", base, None
    if base == "float" and len(nums) == 1:
        # FLOAT(p): a precision in bits picks FLOAT (p <= 24) or DOUBLE.
        return ("float" if int(nums[0]) <= 24 else "double"), ("float" if int(nums[0]) <= 24 else "double"), None
    if base in ("float", "double"):
        return (f"{base}({nums[0]},{nums[1]})" if len(nums) == 2 else base), base, None
    if base in ("char", "binary"):
        return f"{base}({nums[0] if nums else 1})", base, None
    if base in ("varchar", "varbinary", "vector"):
        if not nums:
            raise DdlSyntaxError(f"{base.upper()} needs a length")
        return f"{base}({nums[0]})", base, None
    if base in _TEMPORAL_FSP:
        fsp = int(nums[0]) if nums else 0
        return (f"{base}({fsp})" if fsp else base), base, None
    if base in ("text", "blob") and nums:
        return base, base, int(nums[0])
    if base in _PLAIN:
        return base, base, None
    raise DdlSyntaxError(f"unknown column type {base.upper()}")


def _parse_attributes(c: TokenCursor, spec: ColumnSpec) -> ColumnSpec:
    charset, collation = spec.charset, spec.collation
    nullable, pk, generated, invisible, binary = spec.nullable, False, False, False, False
    auto_increment = False
    position: ColumnPosition | None = None
    default: tuple[Token, ...] | None = None
    comment: str | None = None
    while c.peek() is not None:
        if c.accept("NOT"):
            if not c.accept("NULL"):
                raise DdlSyntaxError(f"column {spec.name}: NOT must be followed by NULL here")
            nullable = False
        elif c.accept("NULL"):
            nullable = True
        elif c.at("CHARACTER", "CHAR") and (n := c.peek(1)) is not None and n.is_("SET"):
            c.i += 2
            charset = _value(c)
        elif c.accept("CHARSET"):
            charset = _value(c)
        elif c.accept("COLLATE"):
            collation = _value(c)
        elif c.accept("BINARY"):
            binary = True
        elif c.accept("ASCII"):
            charset = "latin1"
        elif c.accept("UNICODE"):
            charset = "ucs2"
        elif c.accept("BYTE"):
            charset = "binary"
        elif c.accept("PRIMARY"):
            c.accept("KEY")
            pk, nullable = True, False
        elif c.accept("KEY"):
            pk, nullable = True, False  # a bare KEY in a column definition means PRIMARY KEY
        elif c.accept("UNIQUE"):
            c.accept("KEY")
        elif c.accept("DEFAULT"):
            default = default_value(c)
        elif c.accept("COMMENT"):
            c.accept("=")
            comment = c.take().text or None  # COMMENT '' is no comment, as information_schema has it
        elif c.accept("ON"):
            c.accept("UPDATE")
            _skip_value(c)
        elif c.accept("GENERATED"):
            c.accept("ALWAYS")
        elif c.at("AS") and (n := c.peek(1)) is not None and n.is_("("):
            c.i += 1
            c.group()
            generated = True
        elif c.accept("AUTO_INCREMENT"):
            auto_increment = True
        elif c.accept("VIRTUAL", "STORED", "PERSISTENT", "VISIBLE", "SERIAL"):
            if c.toks[c.i - 1].is_("SERIAL"):
                c.accept("DEFAULT")
                c.accept("VALUE")
        elif c.accept("INVISIBLE"):
            invisible = True
        elif c.accept("CHECK"):
            c.group()
        elif c.accept("CONSTRAINT"):
            if not c.at("CHECK"):
                c.take()
        elif c.accept("REFERENCES"):
            _skip_references(c)
        elif c.at(*_SKIP_WITH_ARG):
            c.take()
            if c.peek() is not None and not c.at("NULL", "NOT"):
                _skip_value(c)
        elif c.accept("FIRST"):
            position = ColumnPosition(first=True)
        elif c.accept("AFTER"):
            position = ColumnPosition(after=_name(c.take()))
        elif c.accept("WITH", "WITHOUT"):
            c.accept("SYSTEM")
            c.accept("VERSIONING")
        else:
            t = c.take()
            raise DdlSyntaxError(f"column {spec.name}: unexpected {t.text!r} in its definition")
    return replace(spec, charset=normalize_charset(charset) if charset else None,
                    collation=normalize_collation(collation) if collation else None, binary_collation=binary,
                    nullable=nullable, primary_key=pk, generated=generated, auto_increment=auto_increment,
                   invisible=invisible, position=position, default=default, comment=comment)


def _value(c: TokenCursor) -> str:
    c.accept("=")
    t = c.take()
    if t.kind not in ("word", "ident", "string"):
        raise DdlSyntaxError(f"expected a charset or collation name, found {t.text!r}")
    return t.text


def _skip_references(c: TokenCursor) -> None:
    c.take()
    while c.at("."):
        c.take()
        c.take()
    if c.at("("):
        c.group()
    while c.at("MATCH", "ON"):
        if c.accept("MATCH"):
            c.take()
            continue
        c.take()
        c.take()  # DELETE | UPDATE
        if c.accept("SET") or c.accept("NO"):
            c.take()
        else:
            c.take()
