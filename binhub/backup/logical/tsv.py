"""The rows of a chunk file (format 2): the lines ``LOAD DATA`` reads with its default field and line
terminators and escape, made straight from the row packets of a plain ``SELECT``.

A line is one row: its fields separated by a tab, ended by a newline; SQL NULL is ``\\N``; in a
value, backslash, tab, newline and NUL are written ``\\\\``, ``\\t``, ``\\n``, ``\\0`` (so a raw
newline only ever ends a row, and a chunk splits into parts at any newline). The values are the
bytes the server sent under ``character_set_results = binary``: no conversion on the way out, and
``CHARACTER SET binary`` on the way in (none there either).

:func:`rows_to_tsv` and :func:`row_to_tsv` are the compiled loops of ``binhub/_speedups/_tsv.c``
when built; the pure twins below do the same (``BINHUB_NO_SPEEDUPS=1`` forces them).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from types import ModuleType

from binhub.errors import UpstreamError

# rows_to_tsv's status: what stopped the loop.
NEED_MORE, END, FULL, LARGE, ERROR = range(5)
MAX_PAYLOAD = 0xFFFFFF  # a packet this long goes on in the next one

Extras = tuple[bytes | None, ...] | None


def escape(value: bytes) -> bytes:
    """``value`` as a field of a line (see the module docstring)."""
    return value.replace(b"\\", b"\\\\").replace(b"\t", b"\\t").replace(b"\n", b"\\n").replace(b"\0", b"\\0")


def _fields(payload: bytes | memoryview, count: int) -> list[bytes | None]:
    """The ``count`` length-encoded fields of a text-protocol row payload."""
    view = memoryview(payload)
    out: list[bytes | None] = []
    off = 0
    for number in range(1, count + 1):
        if off >= len(view):
            raise ValueError(f"a row packet of {len(view)} bytes ends inside its field {number}")
        first = view[off]
        off += 1
        if first == 0xFB:
            out.append(None)
            continue
        if first < 0xFB:
            length = first
        else:
            width = {0xFC: 2, 0xFD: 3, 0xFE: 8}.get(first)
            if width is None or off + width > len(view):
                raise ValueError(f"a row packet of {len(view)} bytes ends inside its field {number}")
            length = int.from_bytes(view[off:off + width], "little")
            off += width
        if length > len(view) - off:
            raise ValueError(f"a row packet of {len(view)} bytes ends inside its field {number}")
        out.append(bytes(view[off:off + length]))
        off += length
    if off != len(view):
        raise ValueError(f"a row packet of {len(view)} bytes has more than {count} fields")
    return out


def _check(columns: int, fields: int) -> None:
    if columns < 1 or fields < columns:
        raise ValueError("need 1 <= columns <= fields")


def row_to_tsv_pure(payload: bytes | memoryview, columns: int, fields: int, out: bytearray) -> Extras:
    _check(columns, fields)
    values = _fields(payload, fields)
    out += b"\t".join(b"\\N" if v is None else escape(v) for v in values[:columns]) + b"\n"
    return tuple(values[columns:]) if fields > columns else None


def rows_to_tsv_pure(buf: bytes | bytearray | memoryview, pos: int, columns: int, fields: int,
                     max_rows: int, out: bytearray) -> tuple[int, int, int, Extras]:
    _check(columns, fields)
    if not 0 <= pos <= len(buf):
        raise ValueError("pos is outside buf")
    view = memoryview(buf)
    lines = bytearray()  # appended to out only if every row converts
    rows = 0
    last: Extras = None
    status = FULL
    while rows < max_rows:
        if len(view) - pos < 4:
            status = NEED_MORE
            break
        length = int.from_bytes(view[pos:pos + 3], "little")
        if length == MAX_PAYLOAD:
            status = LARGE
            break
        if len(view) - pos - 4 < length:
            status = NEED_MORE
            break
        payload = view[pos + 4:pos + 4 + length]
        if length and payload[0] == 0xFE and length < 9:
            pos += 4 + length
            status = END
            break
        if length and payload[0] == 0xFF:
            status = ERROR
            break
        last = row_to_tsv_pure(payload, columns, fields, lines)
        rows += 1
        pos += 4 + length
    out += lines
    return pos, rows, status, last


rows_to_tsv: Callable[[bytes | bytearray | memoryview, int, int, int, int, bytearray], tuple[int, int, int, Extras]]
row_to_tsv: Callable[[bytes | memoryview, int, int, bytearray], Extras]
_tsv_c: ModuleType | None = None
if os.environ.get("BINHUB_NO_SPEEDUPS", "") in ("", "0"):
    try:
        from binhub._speedups import _tsv as _tsv_c
    except ImportError:  # not built (no compiler at install time): the pure functions above do the same
        _tsv_c = None
if _tsv_c is not None:
    rows_to_tsv, row_to_tsv = _tsv_c.rows_to_tsv, _tsv_c.row_to_tsv
else:
    rows_to_tsv, row_to_tsv = rows_to_tsv_pure, row_to_tsv_pure


class ResultLines:
    """The rows of one result set as lines, converted as the packets arrive.

    ``read`` returns the next bytes from the connection (the packets after the column definitions
    and their EOF), never b'' (a lost connection raises). ``columns`` of each row's ``fields`` make
    the line; :attr:`last` holds the other fields of the last row taken.
    """

    def __init__(self, read: Callable[[], bytes], columns: int, fields: int) -> None:
        self._read = read
        self._columns = columns
        self._fields = fields
        self._buf = bytearray()
        self._pos = 0
        self.done = False
        self.last: Extras = None

    def take(self, max_rows: int, out: bytearray) -> int:
        """The lines of up to ``max_rows`` rows appended to ``out``; how many (none only once :attr:`done`)."""
        while not self.done:
            self._pos, rows, status, last = rows_to_tsv(self._buf, self._pos, self._columns, self._fields, max_rows,
                                                        out)
            if status == END:
                self.done = True
            elif status == NEED_MORE:
                self._more()
            elif rows:  # the rows before a long packet or an error first
                pass
            elif status == LARGE:
                last = row_to_tsv(self._large(), self._columns, self._fields, out)
                rows = 1
            elif status == ERROR:
                raise self._error()
            if rows:
                self.last = last
                return rows
        return 0

    def _more(self) -> None:
        del self._buf[:self._pos]
        self._pos = 0
        self._buf += self._read()

    def _packet(self) -> bytes:
        """The next packet's payload (taken out of the buffer)."""
        while len(self._buf) - self._pos < 4:
            self._more()
        length = int.from_bytes(self._buf[self._pos:self._pos + 3], "little")
        while len(self._buf) - self._pos < 4 + length:
            self._more()
        payload = bytes(self._buf[self._pos + 4:self._pos + 4 + length])
        self._pos += 4 + length
        return payload

    def _large(self) -> bytes:
        """A row of 16 MiB or more: its payload goes on in packets until one shorter than the maximum."""
        parts = [self._packet()]
        while len(parts[-1]) == MAX_PAYLOAD:
            parts.append(self._packet())
        return b"".join(parts)

    def _error(self) -> UpstreamError:
        payload = self._packet()
        code = int.from_bytes(payload[1:3], "little")
        state, message = ("HY000", payload[3:]) if payload[3:4] != b"#" else (payload[4:9].decode(), payload[9:])
        self.done = True
        return UpstreamError(code, state, message.decode(errors="replace"))


def split_parts(data: bytes, part_bytes: int) -> list[memoryview]:
    """``data`` (whole lines) cut after the first newline at or past every ``part_bytes``: the same
    parts every time, so a resumed restore counts them as the one cut short did."""
    view = memoryview(data)
    parts = []
    start = 0
    while start < len(data):
        cut = data.find(b"\n", min(start + part_bytes, len(data)) - 1)
        end = len(data) if cut < 0 else cut + 1
        parts.append(view[start:end])
        start = end
    return parts

