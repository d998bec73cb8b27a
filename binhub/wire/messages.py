"""Generic response packets: OK, ERR, EOF and text result sets, in both directions.

Parsers take a payload (``bytes`` or ``memoryview``) and the negotiated capabilities; builders
return payloads (unframed) so the caller decides sequence ids. Result sets are built and parsed in
the text protocol (``COM_QUERY``), with or without ``CLIENT_DEPRECATE_EOF``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from binhub.errors import MalformedPacket, UnexpectedPacket
from binhub.wire.codec import Buffer, Reader, lenenc_bytes, lenenc_int, u16, u32
from binhub.wire.constants import (
    MAX_PACKET_PAYLOAD,
    Capability,
    Charset,
    ColumnType,
    ServerStatus,
)

OK_HEADER = 0x00
EOF_HEADER = 0xFE
ERR_HEADER = 0xFF
LOCAL_INFILE_HEADER = 0xFB

#: Capabilities assumed when a caller does not say: what every server since 4.1 speaks.
DEFAULT_CAPS = Capability.PROTOCOL_41 | Capability.TRANSACTIONS | Capability.SECURE_CONNECTION


def is_eof(payload: Buffer, capabilities: int = 0) -> bool:
    """True if ``payload`` is an EOF packet (or the OK-with-0xFE that replaces it under DEPRECATE_EOF).

    A text row may also start with 0xFE (a length-encoded string of 2^24 bytes or more), but such
    a row is at least 0xFFFFFF bytes long, which is how the protocol tells them apart.
    """
    if not payload or payload[0] != EOF_HEADER:
        return False
    if capabilities & Capability.DEPRECATE_EOF:
        return len(payload) < MAX_PACKET_PAYLOAD
    return len(payload) < 9


def is_err(payload: Buffer) -> bool:
    return bool(payload) and payload[0] == ERR_HEADER


def is_ok(payload: Buffer) -> bool:
    return bool(payload) and payload[0] == OK_HEADER and len(payload) >= 7


@dataclass(frozen=True)
class OkPacket:
    affected_rows: int = 0
    last_insert_id: int = 0
    status: ServerStatus = ServerStatus.AUTOCOMMIT
    warnings: int = 0
    info: str = ""
    session_state: bytes = b""

    @classmethod
    def parse(cls, payload: Buffer, capabilities: int = DEFAULT_CAPS) -> OkPacket:
        r = Reader(payload)
        header = r.u8()
        if header not in (OK_HEADER, EOF_HEADER):
            raise UnexpectedPacket(f"expected an OK packet, got header 0x{header:02x}")
        affected = r.lenenc_int()
        insert_id = r.lenenc_int()
        status = warnings = 0
        if capabilities & Capability.PROTOCOL_41:
            status = r.u16()
            warnings = r.u16()
        elif capabilities & Capability.TRANSACTIONS:
            status = r.u16()
        info = b""
        state = b""
        if capabilities & Capability.SESSION_TRACK:
            if not r.at_end():
                info = r.lenenc_bytes()
            if status & ServerStatus.SESSION_STATE_CHANGED and not r.at_end():
                state = r.lenenc_bytes()
        else:
            info = r.rest()
        return cls(affected, insert_id, ServerStatus(status), warnings,
                   info.decode("utf-8", "replace"), state)

    def build(self, capabilities: int = DEFAULT_CAPS, *, header: int = OK_HEADER) -> bytes:
        """Encode; ``header=0xFE`` gives the OK that ends a result set under DEPRECATE_EOF."""
        parts = [bytes((header,)), lenenc_int(self.affected_rows), lenenc_int(self.last_insert_id)]
        if capabilities & Capability.PROTOCOL_41:
            parts += [u16(int(self.status)), u16(self.warnings)]
        elif capabilities & Capability.TRANSACTIONS:
            parts.append(u16(int(self.status)))
        info = self.info.encode()
        if capabilities & Capability.SESSION_TRACK:
            if info or self.status & ServerStatus.SESSION_STATE_CHANGED:
                parts.append(lenenc_bytes(info))
            if self.status & ServerStatus.SESSION_STATE_CHANGED:
                parts.append(lenenc_bytes(self.session_state))
        else:
            parts.append(info)
        return b"".join(parts)


@dataclass(frozen=True)
class ErrPacket:
    code: int
    sqlstate: str
    message: str

    @classmethod
    def parse(cls, payload: Buffer) -> ErrPacket:
        r = Reader(payload)
        header = r.u8()
        if header != ERR_HEADER:
            raise UnexpectedPacket(f"expected an ERR packet, got header 0x{header:02x}")
        code = r.u16()
        # Before capabilities are agreed (e.g. "Too many connections" in place of the handshake) a
        # server omits the '#' + SQLSTATE marker, so its presence is tested instead of assumed.
        sqlstate = "HY000"
        if r.remaining >= 6 and r.peek_u8() == ord("#"):
            r.skip(1)
            sqlstate = r.fixed(5).decode("ascii", "replace")
        return cls(code, sqlstate, r.rest().decode("utf-8", "replace"))

    def build(self, capabilities: int = DEFAULT_CAPS) -> bytes:
        head = bytes((ERR_HEADER,)) + u16(self.code)
        if capabilities & Capability.PROTOCOL_41:
            state = self.sqlstate.encode("ascii")
            if len(state) != 5:
                raise ValueError(f"SQLSTATE must be 5 characters, got {self.sqlstate!r}")
            head += b"#" + state
        return head + self.message.encode()


@dataclass(frozen=True)
class EofPacket:
    warnings: int = 0
    status: ServerStatus = ServerStatus.AUTOCOMMIT

    @classmethod
    def parse(cls, payload: Buffer, capabilities: int = DEFAULT_CAPS) -> EofPacket:
        r = Reader(payload)
        header = r.u8()
        if header != EOF_HEADER:
            raise UnexpectedPacket(f"expected an EOF packet, got header 0x{header:02x}")
        if capabilities & Capability.PROTOCOL_41 and r.remaining >= 4:
            warnings = r.u16()
            return cls(warnings, ServerStatus(r.u16()))
        return cls()

    def build(self, capabilities: int = DEFAULT_CAPS) -> bytes:
        if capabilities & Capability.PROTOCOL_41:
            return bytes((EOF_HEADER,)) + u16(self.warnings) + u16(int(self.status))
        return bytes((EOF_HEADER,))


@dataclass(frozen=True)
class ColumnDefinition:
    """``ColumnDefinition41``; binhub only needs the name, but keeps the rest for tools that look."""

    name: str
    type: ColumnType = ColumnType.VAR_STRING
    charset: int = Charset.UTF8MB4_GENERAL_CI
    length: int = 1024
    flags: int = 0
    decimals: int = 0x1F  # "not a fixed-point column", what servers send for strings
    schema: str = ""
    table: str = ""
    org_table: str = ""
    org_name: str = ""
    catalog: str = "def"

    @classmethod
    def parse(cls, payload: Buffer) -> ColumnDefinition:
        r = Reader(payload)
        catalog = r.lenenc_bytes().decode()
        schema = r.lenenc_bytes().decode()
        table = r.lenenc_bytes().decode()
        org_table = r.lenenc_bytes().decode()
        name = r.lenenc_bytes().decode()
        org_name = r.lenenc_bytes().decode()
        fixed_len = r.lenenc_int()
        if fixed_len < 10:
            raise MalformedPacket(f"column definition fixed-length part is {fixed_len} bytes, need 10+")
        charset = r.u16()
        length = r.u32()
        type_code = r.u8()
        flags = r.u16()
        decimals = r.u8()
        try:
            col_type = ColumnType(type_code)
        except ValueError as exc:
            raise MalformedPacket(f"unknown column type 0x{type_code:02x} for column {name!r}") from exc
        return cls(name, col_type, charset, length, flags, decimals, schema, table, org_table,
                   org_name, catalog)

    def build(self) -> bytes:
        return b"".join((
            lenenc_bytes(self.catalog.encode()), lenenc_bytes(self.schema.encode()),
            lenenc_bytes(self.table.encode()), lenenc_bytes(self.org_table.encode()),
            lenenc_bytes(self.name.encode()), lenenc_bytes((self.org_name or self.name).encode()),
            b"\x0c", u16(int(self.charset)), u32(self.length), bytes((int(self.type),)),
            u16(self.flags), bytes((self.decimals,)), b"\x00\x00",
        ))


Row = tuple[str | None, ...]


@dataclass(frozen=True)
class ResultSet:
    """A text result set: column names and rows of strings (``None`` for SQL NULL)."""

    columns: list[str]
    rows: list[Row] = field(default_factory=list)
    definitions: list[ColumnDefinition] = field(default_factory=list, compare=False, repr=False)
    status: ServerStatus = field(default=ServerStatus.AUTOCOMMIT, compare=False)

    def column(self, name: str) -> list[str | None]:
        """All values of the column called ``name`` (case-insensitive, as MySQL compares names)."""
        lowered = [c.lower() for c in self.columns]
        idx = lowered.index(name.lower())
        return [row[idx] for row in self.rows]


def parse_text_row(payload: Buffer, n_columns: int) -> Row:
    r = Reader(payload)
    values: list[str | None] = []
    for _ in range(n_columns):
        raw = r.lenenc_bytes_or_null()
        # Values are text in the connection charset (utf8mb4); binary columns that are not valid
        # UTF-8 keep their bytes via surrogateescape rather than failing the whole result.
        values.append(None if raw is None else raw.decode("utf-8", "surrogateescape"))
    if not r.at_end():
        raise MalformedPacket(f"text row has {r.remaining} bytes after its {n_columns} columns")
    return tuple(values)


def build_text_row(values: Iterable[str | bytes | int | None]) -> bytes:
    parts: list[bytes] = []
    for v in values:
        if v is None:
            parts.append(b"\xfb")
        elif isinstance(v, bytes):
            parts.append(lenenc_bytes(v))
        else:
            parts.append(lenenc_bytes(str(v).encode("utf-8", "surrogateescape")))
    return b"".join(parts)


class ResultSetParser:
    """Sans-I/O reader of one COM_QUERY response: feed payloads until :meth:`feed` returns True.

    The response is an OK (no result set), an ERR (raised by the caller via :attr:`error`) or
    column count → column definitions → [EOF] → rows → EOF/OK.
    """

    def __init__(self, capabilities: int) -> None:
        self.capabilities = capabilities
        self.ok: OkPacket | None = None
        self.error: ErrPacket | None = None
        self._n_columns = -1
        self._defs: list[ColumnDefinition] = []
        self._rows: list[Row] = []
        self._in_rows = False
        self._status = ServerStatus.AUTOCOMMIT

    def feed(self, payload: Buffer) -> bool:
        """Consume one payload; True when the response is complete."""
        if not payload:
            raise MalformedPacket("empty packet in a query response")
        deprecate_eof = bool(self.capabilities & Capability.DEPRECATE_EOF)
        if self._n_columns < 0:
            first = payload[0]
            if first == ERR_HEADER:
                self.error = ErrPacket.parse(payload)
                return True
            if first == OK_HEADER:
                self.ok = OkPacket.parse(payload, self.capabilities)
                return True
            if first == LOCAL_INFILE_HEADER:
                raise UnexpectedPacket("server asked for LOAD DATA LOCAL INFILE, which binhub never sends")
            self._n_columns = Reader(payload).lenenc_int()
            return False
        if len(self._defs) < self._n_columns:
            self._defs.append(ColumnDefinition.parse(payload))
            if len(self._defs) == self._n_columns and deprecate_eof:
                self._in_rows = True
            return False
        if not self._in_rows:
            if not is_eof(payload, 0):
                raise UnexpectedPacket("expected EOF after column definitions")
            self._in_rows = True
            return False
        if payload[0] == ERR_HEADER:
            self.error = ErrPacket.parse(payload)
            return True
        if is_eof(payload, self.capabilities):
            if deprecate_eof:
                self._status = OkPacket.parse(payload, self.capabilities).status
            else:
                self._status = EofPacket.parse(payload, self.capabilities).status
            return True
        self._rows.append(parse_text_row(payload, self._n_columns))
        return False

    @property
    def result(self) -> ResultSet:
        if self._n_columns < 0:
            return ResultSet([], [], [], self.ok.status if self.ok else ServerStatus.AUTOCOMMIT)
        return ResultSet([d.name for d in self._defs], self._rows, self._defs, self._status)


def parse_result_set(payloads: Sequence[Buffer], capabilities: int = DEFAULT_CAPS) -> ResultSet:
    """Parse a complete response; raises :class:`MalformedPacket` if it ends early."""
    parser = ResultSetParser(capabilities)
    for i, payload in enumerate(payloads):
        if parser.feed(payload):
            if i != len(payloads) - 1:
                raise MalformedPacket(f"{len(payloads) - i - 1} packets after the end of the result set")
            if parser.error is not None:
                e = parser.error
                raise UnexpectedPacket(f"query response is an error {e.code}: {e.message}")
            return parser.result
    raise MalformedPacket("result set ends before its terminating EOF/OK packet")


def build_text_result_set(
    columns: Sequence[str | ColumnDefinition],
    rows: Iterable[Sequence[str | bytes | int | None]],
    capabilities: int = DEFAULT_CAPS,
    *,
    status: ServerStatus = ServerStatus.AUTOCOMMIT,
) -> list[bytes]:
    """Build a text result set (server side) as a list of payloads to frame with consecutive seqs."""
    defs = [c if isinstance(c, ColumnDefinition) else ColumnDefinition(c) for c in columns]
    out = [lenenc_int(len(defs))]
    out += [d.build() for d in defs]
    deprecate_eof = bool(capabilities & Capability.DEPRECATE_EOF)
    if not deprecate_eof:
        out.append(EofPacket(0, status).build(capabilities))
    for row in rows:
        if len(row) != len(defs):
            raise ValueError(f"row has {len(row)} values for {len(defs)} columns")
        out.append(build_text_row(row))
    if deprecate_eof:
        out.append(OkPacket(status=status).build(capabilities, header=EOF_HEADER))
    else:
        out.append(EofPacket(0, status).build(capabilities))
    return out
