"""The events a primary makes up while it dumps: none of them is file content.

* the artificial ROTATE that names the file (dump start and every file switch): timestamp 0,
  ``log_pos`` 0, ``LOG_EVENT_ARTIFICIAL_F``, the server's own server_id (``fake_rotate_event`` in
  MariaDB's ``sql/sql_repl.cc``; MySQL's ``Binlog_sender::fake_rotate_event`` is the same);
* the file's FORMAT_DESCRIPTION as the primary sends it (:func:`dump_fde`);
* MariaDB's artificial GTID_LIST, sent once a GTID replica's start position is reached;
* heartbeats: v1 (type 27, the file name as body, position in ``log_pos``) and MySQL's v2 (type
  41, both in a TLV body, which also carries positions past 4 GiB).

Each builder appends a CRC32 only when asked: the caller decides from the negotiated checksum
(the first ROTATE) or from the FDE of the file being sent (everything after it), as the servers do.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable

from binhub.binlog.checksum import fde_checksum_size, recompute_crc
from binhub.binlog.constants import (
    CHECKSUM_SIZE,
    FDE_FLAGS_OFFSET,
    HEADER_SIZE,
    LOG_POS_OFFSET,
    EventFlag,
    EventType,
)
from binhub.binlog.gtid import MariadbGtid
from binhub.binlog.header import HEADER_STRUCT

# FDE body: binlog_version u16, server_version char[50], created u32 (Format_description_event).
FDE_CREATED_OFFSET = HEADER_SIZE + 2 + 50
# The FDE's checksum algorithm byte sits just before its CRC (servers since 5.6.1 / MariaDB 5.3).
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_GTID_ENTRY = struct.Struct("<IIQ")
_ARTIFICIAL = int(EventFlag.ARTIFICIAL)
_IN_USE = int(EventFlag.BINLOG_IN_USE)

# Heartbeat_event_v2 field ids (MySQL ``Heartbeat_event_v2``): 0 ends the list.
HB_V2_END = 0
HB_V2_LOG_FILENAME = 1
HB_V2_LOG_POSITION = 2


def _event(type_code: int, server_id: int, body: bytes, *, log_pos: int, flags: int, crc: bool,
           timestamp: int = 0) -> bytes:
    size = HEADER_SIZE + len(body) + (CHECKSUM_SIZE if crc else 0)
    data = HEADER_STRUCT.pack(timestamp, type_code, server_id, size, log_pos, flags) + body
    if crc:
        data += _U32.pack(zlib.crc32(data))
    return data


def fake_rotate(file: str, position: int, server_id: int, *, crc: bool) -> bytes:
    """The artificial ROTATE that tells the replica which file (and position) comes next."""
    return _event(EventType.ROTATE, server_id, _U64.pack(position) + file.encode(),
                  log_pos=0, flags=_ARTIFICIAL, crc=crc)


def dump_fde(fde: bytes | memoryview, *, zero_log_pos: bool, zero_created: bool, crc: bool) -> bytes:
    """A file's FDE as a primary sends it.

    The in-use flag is always cleared (a replica must not think the primary crashed). ``log_pos``
    is zeroed when a file/position dump starts past the file's start, so the replica does not move
    its read position to the FDE's end; ``created`` is zeroed then and in GTID mode before the
    start position is reached, because a non-zero ``created`` makes the replica drop its temporary
    tables (it means "the primary restarted"). The CRC is recomputed over the result.
    """
    out = bytearray(fde)
    out[FDE_FLAGS_OFFSET] &= ~_IN_USE & 0xFF
    if zero_log_pos:
        out[LOG_POS_OFFSET:LOG_POS_OFFSET + 4] = b"\0\0\0\0"
    if zero_created:
        out[FDE_CREATED_OFFSET:FDE_CREATED_OFFSET + 4] = b"\0\0\0\0"
    return recompute_crc(out) if crc else bytes(out)


def fde_checksum(fde: bytes | memoryview) -> bool:
    """True if the events of the file this FDE starts carry a CRC32 (its algorithm byte is 1)."""
    return fde_checksum_size(fde) > 0


def gtid_list(gtids: Iterable[MariadbGtid], server_id: int, *, log_pos: int, crc: bool, flags: int = 0) -> bytes:
    """MariaDB's artificial GTID_LIST (``fake_gtid_list_event``): count u32 (+ flags in the top 4 bits),
    then (domain u32, server u32, seq u64) per entry; ``log_pos`` is where the replica stands."""
    items = list(gtids)
    body = _U32.pack(len(items) | (flags << 28)) + b"".join(
        _GTID_ENTRY.pack(g.domain_id, g.server_id, g.seq_no) for g in items)
    return _event(EventType.MARIA_GTID_LIST, server_id, body, log_pos=log_pos, flags=_ARTIFICIAL, crc=crc)


def heartbeat_v1(file: str, position: int, server_id: int, *, crc: bool) -> bytes:
    """HEARTBEAT (27): the file name is the body, the position ``log_pos`` (0 past 4 GiB, as MariaDB)."""
    log_pos = position if position <= 0xFFFFFFFF else 0
    return _event(EventType.HEARTBEAT, server_id, file.encode(), log_pos=log_pos, flags=0, crc=crc)


def _lenenc(n: int) -> bytes:
    if n < 251:
        return bytes((n,))
    if n < 1 << 16:
        return b"\xfc" + n.to_bytes(2, "little")
    if n < 1 << 24:
        return b"\xfd" + n.to_bytes(3, "little")
    return b"\xfe" + n.to_bytes(8, "little")


def heartbeat_v2(file: str, position: int, server_id: int, *, crc: bool) -> bytes:
    """HEARTBEAT_V2 (41), what MySQL 8.0.26+ replicas ask for with dump flag bit 1: TLV fields."""
    name = file.encode()
    pos = _lenenc(position)
    body = (_lenenc(HB_V2_LOG_FILENAME) + _lenenc(len(name)) + name
            + _lenenc(HB_V2_LOG_POSITION) + _lenenc(len(pos)) + pos + _lenenc(HB_V2_END))
    log_pos = position if position <= 0xFFFFFFFF else 0
    return _event(EventType.HEARTBEAT_V2, server_id, body, log_pos=log_pos, flags=0, crc=crc)


__all__ = ["FDE_CREATED_OFFSET", "dump_fde", "fake_rotate", "fde_checksum", "gtid_list", "heartbeat_v1",
           "heartbeat_v2"]
