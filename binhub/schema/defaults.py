"""A column's default, spelled the way MariaDB prints it (``SHOW CREATE TABLE``, and
``information_schema.COLUMNS.COLUMN_DEFAULT`` since 10.2.7).

The schema history keeps one spelling whatever the DDL wrote, so a default seeded from
information_schema and one followed through DDL compare equal, and formats render it without
re-reading SQL:

- ``None``: the column has no default (a NOT NULL column without ``DEFAULT``);
- ``NULL``: the default is NULL (written, or implied for a nullable column);
- a literal in the column's own form: ``'x''y'`` (strings, dates and times quoted, padded as
  stored: ``'2020-01-02 03:04:05.10'`` in a DATETIME(2)), ``7``, ``1.50`` in a DECIMAL(5,2),
  ``-5`` for ``-0.5e1`` in a DOUBLE, ``b'101'`` in a BIT;
- ``current_timestamp()`` / ``current_timestamp(3)`` (also for ``NOW()``, ``LOCALTIME``, ...);
- any other expression, parenthesised: ``(1 + 2)``. The server prints expressions from its own
  parse tree; binhub rebuilds them from the tokens, which matches for simple expressions only.

A literal is normalised as the server stores it (it converts the value into the column when the
DDL runs); a value binhub cannot normalise (an out-of-range date, say) is kept as written.
"""

from __future__ import annotations

import decimal
import re
from collections.abc import Sequence

from binhub.schema.sqltext import DdlSyntaxError, Token, tokenize

__all__ = ["column_default", "default_from_information_schema", "implicit_default", "literal_value"]

_NOW = frozenset({"CURRENT_TIMESTAMP", "NOW", "LOCALTIME", "LOCALTIMESTAMP"})
_INTS = frozenset({"tinyint", "smallint", "mediumint", "int", "bigint", "year"})
_DATETIME = re.compile(r"(\d{1,4})-(\d{1,2})-(\d{1,2})(?:[ T](\d{1,2}):(\d{1,2}):(\d{1,2})(?:\.(\d{1,6}))?)?$")
_TIME = re.compile(r"(-?)(\d{1,3}):(\d{1,2}):(\d{1,2})(?:\.(\d{1,6}))?$")


def implicit_default(nullable: bool) -> str | None:
    """The default of a column whose definition says none: NULL if it may be NULL, else none."""
    return "NULL" if nullable else None


def column_default(tokens: Sequence[Token], sql_type: str) -> str:
    """The default ``DEFAULT <tokens>`` gives a column of ``sql_type`` (canonical, see the module)."""
    if not tokens:
        raise DdlSyntaxError("DEFAULT without a value")
    first = tokens[0]
    if len(tokens) == 1 and first.is_("NULL"):
        return "NULL"
    if first.is_(*_NOW) and _now_call(tokens):
        digits = [t.text for t in tokens if t.kind == "number"]
        return f"current_timestamp({digits[0] if digits else ''})"
    value = _literal(tokens)
    if value is None:
        return _expression(tokens)
    return literal_value(value, sql_type)


def _now_call(tokens: Sequence[Token]) -> bool:
    """``NOW``, ``NOW()``, ``CURRENT_TIMESTAMP(3)``: the function alone."""
    rest = [t.text for t in tokens[1:]]
    return rest in ([], ["(", ")"]) or (len(rest) == 3 and rest[0] == "(" and rest[2] == ")"
                                        and tokens[2].kind == "number")


def _literal(tokens: Sequence[Token]) -> str | int | bytes | None:
    """The literal value the tokens spell (None: an expression). Strings may carry an introducer
    (``_utf8mb4'x'``, ``N'x'``) and be split into adjacent parts (``'a' 'b'``)."""
    toks = list(tokens)
    if toks and toks[0].kind == "word" and toks[0].text.startswith("_") and len(toks) > 1:
        toks = toks[1:]  # a charset introducer
    if toks and all(t.kind == "string" for t in toks):
        return "".join(t.text for t in toks)
    if len(toks) == 1 and toks[0].is_("TRUE", "FALSE"):
        return "1" if toks[0].is_("TRUE") else "0"
    sign = ""
    if len(toks) == 2 and toks[0].text in ("-", "+"):
        sign = "-" if toks[0].text == "-" else ""
        toks = toks[1:]
    if len(toks) != 1:
        return None
    t = toks[0]
    if t.kind == "number":
        return sign + t.text
    if t.kind == "bits" and not sign:
        return int(t.text or "0", 2)
    if t.kind == "hex" and not sign:
        return bytes.fromhex(t.text if len(t.text) % 2 == 0 else "0" + t.text)
    return None


def literal_value(value: str | int | bytes, sql_type: str) -> str:
    """A literal default as the server prints it once stored in a column of ``sql_type``. ``value``:
    the literal's text (a number's digits, a string's characters), an int (``b'…'``) or bytes (``x'…'``)."""
    base, _, rest = sql_type.partition("(")
    base = base.split(" ")[0]
    params = [int(p) for p in re.findall(r"\d+", rest.partition(")")[0])] if rest else []
    try:
        if base == "bit":
            number = value if isinstance(value, int) else int.from_bytes(value, "big") if isinstance(
                value, bytes) else _as_int(value)
            return f"b'{number:b}'"
        if isinstance(value, bytes | int):
            number = value if isinstance(value, int) else int.from_bytes(value, "big")
            if base in _INTS or base in ("decimal", "float", "double"):
                value = str(number)
            else:
                text = value.decode("utf-8") if isinstance(value, bytes) else str(number)
                return _quoted(text)
        if base == "year":
            year = _as_int(value)
            if 0 < year < 100:  # two digits name a year of 1970-2069
                year += 2000 if year < 70 else 1900
            return str(year)
        if base in _INTS:
            return str(_as_int(value))
        if base == "decimal":
            scale = params[1] if len(params) > 1 else 0
            quantum = decimal.Decimal(1).scaleb(-scale)
            return str(decimal.Decimal(value.strip()).quantize(quantum, rounding=decimal.ROUND_HALF_UP))
        if base in ("float", "double"):
            number_f = float(value)
            return str(int(number_f)) if number_f.is_integer() and abs(number_f) < 1e15 else repr(number_f)
        if base in ("date", "datetime", "timestamp"):
            return _quoted(_temporal(value, base, params[0] if params else 0))
        if base == "time":
            return _quoted(_time(value, params[0] if params else 0))
    except (ValueError, ArithmeticError, UnicodeDecodeError):
        pass  # the server would have refused or clipped it: keep it as written
    return _quoted(value if isinstance(value, str) else str(value))


def _as_int(text: str) -> int:
    return int(decimal.Decimal(text.strip()).to_integral_value(rounding=decimal.ROUND_HALF_UP))


def _temporal(text: str, base: str, fsp: int) -> str:
    m = _DATETIME.match(text.strip())
    if m is None:
        raise ValueError(text)
    y, mo, d, h, mi, s, frac = m.groups()
    day = f"{int(y):04d}-{int(mo):02d}-{int(d):02d}"
    if base == "date":
        return day
    clock = f"{int(h or 0):02d}:{int(mi or 0):02d}:{int(s or 0):02d}"
    return f"{day} {clock}" + ("." + (frac or "").ljust(6, "0")[:fsp] if fsp else "")


def _time(text: str, fsp: int) -> str:
    m = _TIME.match(text.strip())
    if m is None:
        raise ValueError(text)
    sign, h, mi, s, frac = m.groups()
    return f"{sign}{int(h):02d}:{int(mi):02d}:{int(s):02d}" + ("." + (frac or "").ljust(6, "0")[:fsp] if fsp else "")


def _quoted(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


def _expression(tokens: Sequence[Token]) -> str:
    """An expression default, rebuilt from its tokens as the server prints it: without the
    parentheses ``DEFAULT (…)`` needs, function names lower case, arguments without spaces, an
    operator expression in parentheses with spaces (``concat('a','b')``, ``(1 + 2)``)."""
    toks = list(tokens)
    if toks[0].text == "(" and toks[0].kind == "punct" and _closing(toks, 0) == len(toks) - 1:
        toks = toks[1:-1]
    out, depth, operator = "", 0, False
    for k, t in enumerate(toks):
        call = t.kind == "word" and k + 1 < len(toks) and toks[k + 1].text == "(" and toks[k + 1].kind == "punct"
        if t.kind == "string":
            text = _quoted(t.text)
        elif t.kind == "ident":
            text = f"`{t.text}`"
        elif t.kind == "hex":
            text = f"0x{t.text}"
        elif t.kind == "bits":
            text = f"b'{t.text}'"
        else:
            text = t.text.lower() if call else t.text
        is_operator = t.kind == "word" and not call and not t.text[:1].isalnum() and t.text[:1] != "_"
        prev = toks[k - 1] if k else None
        if is_operator and (prev is None or prev.text in ("(", ",") or _is_operator(prev)):
            is_operator = False  # a sign: -3
        if t.kind == "punct" and t.text in ("(", ")"):
            depth += 1 if t.text == "(" else -1
        operator = operator or (is_operator and depth == 0)
        out += f" {text} " if is_operator else text
    return f"({out})" if operator else out


def _is_operator(t: Token) -> bool:
    return t.kind == "word" and not t.text[:1].isalnum() and t.text[:1] != "_"


def _closing(tokens: Sequence[Token], start: int) -> int:
    """The index of the parenthesis closing the one at ``start``."""
    depth = 0
    for k in range(start, len(tokens)):
        if tokens[k].kind == "punct" and tokens[k].text in ("(", ")"):
            depth += 1 if tokens[k].text == "(" else -1
            if depth == 0:
                return k
    return -1


def default_from_information_schema(value: str | None, extra: str, nullable: bool, sql_type: str,
                                    quoted: bool) -> str | None:
    """The default ``information_schema.COLUMNS`` gives (COLUMN_DEFAULT, EXTRA), in the history's
    spelling. ``quoted``: the server quotes literals there (MariaDB 10.2.7+, where NULL is the text
    ``NULL`` and a missing default SQL NULL); otherwise (MySQL, older MariaDB) literals are bare,
    SQL NULL means NULL for a nullable column, and EXTRA says DEFAULT_GENERATED for expressions."""
    if quoted:
        return value
    if value is None:
        return implicit_default(nullable)
    if "DEFAULT_GENERATED" in extra.upper():
        tokens = tokenize(value)
        if tokens and tokens[0].is_(*_NOW) and _now_call(tokens):
            return column_default(tokens, sql_type)
        return value if value.startswith("(") else f"({value})"
    if value.startswith("b'") and sql_type.startswith("bit"):
        return value
    return literal_value(value, sql_type)
