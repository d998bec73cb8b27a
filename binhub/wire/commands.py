"""Client commands (first byte = :class:`Command`) and the semi-sync framing, in both directions.

The replica-side commands are what binhub sends upstream; binhub's own server parses the same
dataclasses, so every message has ``build() -> bytes`` and ``parse(payload)``.
"""

from __future__ import annotations

from dataclasses import dataclass

from binhub.errors import MalformedPacket, UnexpectedPacket
from binhub.wire.codec import Buffer, Reader, u8_len_bytes, u16, u32, u64
from binhub.wire.constants import SEMISYNC_MAGIC, SEMISYNC_NEED_ACK, BinlogDumpFlag, Command


def command_of(payload: Buffer) -> Command:
    """The command byte of a client packet (raises MalformedPacket on an empty or unknown one)."""
    if not payload:
        raise MalformedPacket("empty command packet")
    try:
        return Command(payload[0])
    except ValueError as exc:
        raise MalformedPacket(f"unknown command 0x{payload[0]:02x}") from exc


#: FN_REFLEN: a binlog file name the servers accept is shorter than this.
MAX_BINLOG_NAME = 512


def _c_string(raw: bytes) -> str:
    """A file name as the servers read it from a dump request: a C string, ending at the first NUL.

    Clients pad the name with NULs to mean "none" (PyPI mysql-replication sends ``"\\0\\0\\0\\0"``
    in COM_BINLOG_DUMP and a 3-byte ``"\\0\\0\\0"`` in COM_BINLOG_DUMP_GTID): mariadbd's
    ``strlen(packet + 10)`` and mysqld's ``mem_strdup`` both see an empty name, so the first file.
    """
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


def _expect(r: Reader, command: Command) -> None:
    got = r.u8()
    if got != command:
        raise UnexpectedPacket(f"expected {command.name} (0x{int(command):02x}), got 0x{got:02x}")


@dataclass(frozen=True)
class ComQuery:
    sql: str

    def build(self) -> bytes:
        return bytes((Command.QUERY,)) + self.sql.encode()

    @classmethod
    def parse(cls, payload: Buffer) -> ComQuery:
        r = Reader(payload)
        _expect(r, Command.QUERY)
        return cls(r.rest().decode("utf-8", "replace"))


@dataclass(frozen=True)
class ComInitDb:
    database: str

    def build(self) -> bytes:
        return bytes((Command.INIT_DB,)) + self.database.encode()

    @classmethod
    def parse(cls, payload: Buffer) -> ComInitDb:
        r = Reader(payload)
        _expect(r, Command.INIT_DB)
        return cls(r.rest().decode("utf-8", "replace"))


@dataclass(frozen=True)
class ComPing:
    def build(self) -> bytes:
        return bytes((Command.PING,))

    @classmethod
    def parse(cls, payload: Buffer) -> ComPing:
        _expect(Reader(payload), Command.PING)
        return cls()


@dataclass(frozen=True)
class ComQuit:
    def build(self) -> bytes:
        return bytes((Command.QUIT,))

    @classmethod
    def parse(cls, payload: Buffer) -> ComQuit:
        _expect(Reader(payload), Command.QUIT)
        return cls()


@dataclass(frozen=True)
class ComRegisterSlave:
    """COM_REGISTER_SLAVE: a replica announces itself (``SHOW SLAVE HOSTS`` shows these fields)."""

    server_id: int
    host: str = ""
    user: str = ""
    password: str = ""
    port: int = 0
    rank: int = 0
    master_id: int = 0

    def build(self) -> bytes:
        return b"".join((
            bytes((Command.REGISTER_SLAVE,)), u32(self.server_id),
            u8_len_bytes(self.host.encode(), "report_host"), u8_len_bytes(self.user.encode(), "report_user"),
            u8_len_bytes(self.password.encode(), "report_password"),
            u16(self.port), u32(self.rank), u32(self.master_id),
        ))

    @classmethod
    def parse(cls, payload: Buffer) -> ComRegisterSlave:
        r = Reader(payload)
        _expect(r, Command.REGISTER_SLAVE)
        server_id = r.u32()
        host = r.u8_len_bytes().decode("utf-8", "replace")
        user = r.u8_len_bytes().decode("utf-8", "replace")
        password = r.u8_len_bytes().decode("utf-8", "replace")
        port = r.u16()
        # rank and master_id are unused by every server; old clients omit them.
        rank = r.u32() if r.remaining >= 4 else 0
        master_id = r.u32() if r.remaining >= 4 else 0
        return cls(server_id, host, user, password, port, rank, master_id)


@dataclass(frozen=True)
class ComBinlogDump:
    """COM_BINLOG_DUMP: stream from (file, position); an empty name means the first file / MariaDB GTID mode.

    The name is the rest of the packet read as a C string (see :func:`_c_string`).
    """

    position: int
    server_id: int
    filename: str = ""
    flags: BinlogDumpFlag = BinlogDumpFlag(0)

    def build(self) -> bytes:
        if not 0 <= self.position <= 0xFFFFFFFF:
            raise ValueError(f"COM_BINLOG_DUMP position {self.position} does not fit in 32 bits")
        return b"".join((bytes((Command.BINLOG_DUMP,)), u32(self.position), u16(int(self.flags)),
                         u32(self.server_id), self.filename.encode()))

    @classmethod
    def parse(cls, payload: Buffer) -> ComBinlogDump:
        r = Reader(payload)
        _expect(r, Command.BINLOG_DUMP)
        position = r.u32()
        flags = r.u16()
        server_id = r.u32()
        return cls(position, server_id, _c_string(r.rest()), BinlogDumpFlag(flags))


@dataclass(frozen=True)
class ComBinlogDumpGtid:
    """COM_BINLOG_DUMP_GTID (MySQL): stream everything not in ``gtid_data`` (an encoded GTID set).

    With a file name, from that file and position (``mysqlbinlog --exclude-gtids`` does this), still
    skipping the set; without one, from the first file the set does not cover. As mysqld reads it:
    the name is a C string, at most 512 bytes, and the GTID data size is read whenever it is there.
    """

    server_id: int
    gtid_data: bytes = b""
    filename: str = ""
    position: int = 4
    flags: BinlogDumpFlag = BinlogDumpFlag.THROUGH_GTID

    def build(self) -> bytes:
        name = self.filename.encode()
        flags = int(self.flags)
        parts = [bytes((Command.BINLOG_DUMP_GTID,)), u16(flags), u32(self.server_id), u32(len(name)), name,
                 u64(self.position)]
        if flags & BinlogDumpFlag.THROUGH_GTID:
            parts += [u32(len(self.gtid_data)), self.gtid_data]
        elif self.gtid_data:
            raise ValueError("gtid_data given without the THROUGH_GTID flag")
        return b"".join(parts)

    @classmethod
    def parse(cls, payload: Buffer) -> ComBinlogDumpGtid:
        r = Reader(payload)
        _expect(r, Command.BINLOG_DUMP_GTID)
        flags = r.u16()
        server_id = r.u32()
        name_size = r.u32()
        if name_size >= MAX_BINLOG_NAME + 1:
            raise MalformedPacket(f"COM_BINLOG_DUMP_GTID names a file of {name_size} bytes")
        name = _c_string(r.fixed(name_size))
        position = r.u64()
        data = b""
        if flags & BinlogDumpFlag.THROUGH_GTID or r.remaining:
            data = r.fixed(r.u32())
        return cls(server_id, data, name, position, BinlogDumpFlag(flags))


# --- semi-sync ---------------------------------------------------------------------------------

def add_semisync_header(event_payload: bytes, need_ack: bool) -> bytes:
    """Server side: the 2 bytes semi-sync puts in front of an event (after the 0x00 OK byte)."""
    return bytes((SEMISYNC_MAGIC, SEMISYNC_NEED_ACK if need_ack else 0)) + event_payload


def strip_semisync_header(data: Buffer) -> tuple[bool, Buffer]:
    """Replica side: (needs ack, event) from a semi-sync framed event (the 0x00 byte already removed)."""
    if len(data) < 2 or data[0] != SEMISYNC_MAGIC:
        raise MalformedPacket("semi-sync event without the 0xEF magic byte")
    return bool(data[1] & SEMISYNC_NEED_ACK), data[2:]


@dataclass(frozen=True)
class SemisyncAck:
    """The replica's acknowledgement: 0xEF, binlog position u64, file name (rest of packet)."""

    filename: str
    position: int

    def build(self) -> bytes:
        return bytes((SEMISYNC_MAGIC,)) + u64(self.position) + self.filename.encode()

    @classmethod
    def parse(cls, payload: Buffer) -> SemisyncAck:
        r = Reader(payload)
        if r.u8() != SEMISYNC_MAGIC:
            raise UnexpectedPacket("semi-sync ack without the 0xEF magic byte")
        position = r.u64()
        return cls(r.rest().decode("utf-8", "replace"), position)
