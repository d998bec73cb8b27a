"""Synthetic binlog files for serve tests: real layouts, consistent ``log_pos`` values and CRC32s.

``BinlogFileBuilder`` writes one file the way a server does: magic, FDE (in-use flag clear),
then PREVIOUS_GTIDS (MySQL) or GTID_LIST + BINLOG_CHECKPOINT (MariaDB), transactions, and a
closing ROTATE. Every event's ``log_pos`` is its end offset and every CRC is computed, so
``binhub binlog verify``, ``binhub binlog import`` and real clients accept the files.
"""

from __future__ import annotations

import struct
import uuid as uuid_mod
import zlib
from pathlib import Path

from binhub.binlog.buffer import pack_varlen, pack_varlen_signed
from binhub.binlog.constants import BINLOG_MAGIC, HEADER_SIZE, EventType
from binhub.binlog.gtid import MariadbGtid, MysqlGtidSet
from binhub.binlog.header import HEADER_STRUCT

MYSQL_VERSION = "8.0.36"
MARIADB_VERSION = "10.11.6-MariaDB-log"
TS = 1_700_000_000


def _post_header_lens(flavour: str) -> bytes:
    lens = bytearray(41 if flavour == "mysql" else 171)
    known = {EventType.START_V3: 56, EventType.QUERY: 13, EventType.ROTATE: 8, EventType.INTVAR: 0,
             EventType.FORMAT_DESCRIPTION: 84 if flavour == "mysql" else 246 - 19 - 50 - 6,
             EventType.TABLE_MAP: 8, EventType.WRITE_ROWS_V1: 8, EventType.UPDATE_ROWS_V1: 8,
             EventType.DELETE_ROWS_V1: 8, EventType.WRITE_ROWS_V2: 10, EventType.UPDATE_ROWS_V2: 10,
             EventType.DELETE_ROWS_V2: 10, EventType.GTID: 42, EventType.ANONYMOUS_GTID: 42,
             EventType.PREVIOUS_GTIDS: 0, EventType.MARIA_ANNOTATE_ROWS: 0, EventType.MARIA_BINLOG_CHECKPOINT: 4,
             EventType.MARIA_GTID: 19, EventType.MARIA_GTID_LIST: 4}
    for code, n in known.items():
        if code <= len(lens):
            lens[code - 1] = n & 0xFF
    return bytes(lens)


class BinlogFileBuilder:
    """Build one binlog file in memory; ``save(dir)`` writes it."""

    def __init__(self, name: str, flavour: str = "mariadb", *, server_id: int = 1, crc: bool = True,
                 created: int = TS) -> None:
        self.name = name
        self.flavour = flavour
        self.server_id = server_id
        self.crc = crc
        self.buf = bytearray(BINLOG_MAGIC)
        version = (MYSQL_VERSION if flavour == "mysql" else MARIADB_VERSION).encode().ljust(50, b"\0")
        body = struct.pack("<H", 4) + version + struct.pack("<IB", created, HEADER_SIZE) + _post_header_lens(flavour)
        body += bytes((1 if crc else 0,))
        self.add(EventType.FORMAT_DESCRIPTION, body, crc=True)

    @property
    def position(self) -> int:
        return len(self.buf)

    def add(self, type_code: int, body: bytes, *, server_id: int | None = None, ts: int = TS, flags: int = 0,
            crc: bool | None = None) -> int:
        """Append one event; returns its offset."""
        with_crc = self.crc if crc is None else crc
        offset = len(self.buf)
        size = HEADER_SIZE + len(body) + (4 if with_crc else 0)
        data = HEADER_STRUCT.pack(ts, type_code, self.server_id if server_id is None else server_id, size,
                                  offset + size, flags) + body
        if with_crc:
            data += struct.pack("<I", zlib.crc32(data))
        self.buf += data
        return offset

    # -- file head ---------------------------------------------------------------------------
    def previous_gtids(self, gtids: MysqlGtidSet) -> int:
        return self.add(EventType.PREVIOUS_GTIDS, gtids.encode())

    def gtid_list(self, gtids: list[MariadbGtid]) -> int:
        body = struct.pack("<I", len(gtids)) + b"".join(struct.pack("<IIQ", g.domain_id, g.server_id, g.seq_no)
                                                       for g in gtids)
        return self.add(EventType.MARIA_GTID_LIST, body)

    def checkpoint(self, file: str) -> int:
        return self.add(EventType.MARIA_BINLOG_CHECKPOINT, struct.pack("<I", len(file)) + file.encode())

    # -- transactions ------------------------------------------------------------------------
    def query(self, sql: str, schema: str = "db", *, server_id: int | None = None) -> int:
        status = b""
        body = struct.pack("<IIBHH", 1, 0, len(schema), 0, len(status)) + status + schema.encode() + b"\0" + sql.encode()
        return self.add(EventType.QUERY, body, server_id=server_id)

    def xid(self, n: int, *, server_id: int | None = None) -> int:
        return self.add(EventType.XID, struct.pack("<Q", n), server_id=server_id)

    def annotate(self, sql: str) -> int:
        return self.add(EventType.MARIA_ANNOTATE_ROWS, sql.encode())

    def mysql_gtid(self, uuid: uuid_mod.UUID, gno: int, tag: str = "") -> int:
        if tag:
            # Gtid_event's tagged serialization (GTID_TAGGED, MySQL 8.3+): a message header
            # (id, total size, last non-ignorable field), then ``field_id value`` pairs, all varlen.
            fields = (pack_varlen(0) + pack_varlen(0) + pack_varlen(1) + b"".join(pack_varlen(b) for b in uuid.bytes)
                      + pack_varlen(2) + pack_varlen_signed(gno) + pack_varlen(3) + pack_varlen(len(tag))
                      + tag.encode())
            size = len(fields) + 3
            while len(pack_varlen(0) + pack_varlen(size) + pack_varlen(3)) + len(fields) != size:
                size = len(pack_varlen(0) + pack_varlen(size) + pack_varlen(3)) + len(fields)
            return self.add(EventType.GTID_TAGGED, pack_varlen(0) + pack_varlen(size) + pack_varlen(3) + fields)
        body = b"\x01" + uuid.bytes + struct.pack("<Q", gno) + b"\x02" + struct.pack("<QQ", gno - 1, gno)
        return self.add(EventType.GTID, body)

    def maria_gtid(self, domain: int, seq: int, *, server_id: int | None = None, standalone: bool = False) -> int:
        flags2 = 1 if standalone else 0
        return self.add(EventType.MARIA_GTID, struct.pack("<QIB", seq, domain, flags2) + b"\0" * 6,
                        server_id=server_id)

    def mysql_txn(self, uuid: uuid_mod.UUID, gno: int, n: int = 1, *, tag: str = "", pad: int = 0) -> int:
        start = self.mysql_gtid(uuid, gno, tag)
        self.query("BEGIN")
        for i in range(n):
            self.query(f"INSERT INTO t VALUES ({gno}, {i}, '{'x' * pad}')")
        self.xid(gno)
        return start

    def maria_txn(self, domain: int, seq: int, n: int = 1, *, server_id: int | None = None, pad: int = 0,
                  annotate: bool = False) -> int:
        start = self.maria_gtid(domain, seq, server_id=server_id)
        for i in range(n):
            if annotate:
                self.annotate(f"INSERT INTO t VALUES ({seq}, {i})")
            self.query(f"INSERT INTO t VALUES ({seq}, {i}, '{'x' * pad}')", server_id=server_id)
        self.xid(seq, server_id=server_id)
        return start

    def rotate(self, next_name: str) -> int:
        return self.add(EventType.ROTATE, struct.pack("<Q", 4) + next_name.encode())

    def save(self, directory: Path) -> Path:
        path = directory / self.name
        path.write_bytes(bytes(self.buf))
        return path


__all__ = ["BinlogFileBuilder", "MARIADB_VERSION", "MYSQL_VERSION"]
