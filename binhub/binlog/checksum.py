"""Binlog event checksums: CRC32 (zlib's polynomial, not CRC32C) over the event without its last 4 bytes.

The Format_description event is special: its ``LOG_EVENT_BINLOG_IN_USE_F`` flag is set while the
server writes the file and cleared when the file is closed, without rewriting the CRC. Both MySQL
(``Log_event::event_checksum_test``) and MariaDB therefore compute and verify the FDE's CRC with that
bit masked, and so do we: flipping the flag never changes the CRC.
"""

from __future__ import annotations

import struct
import zlib

from binhub.binlog.constants import (
    CHECKSUM_SIZE,
    FDE_FLAGS_OFFSET,
    HEADER_SIZE,
    TYPE_CODE_OFFSET,
    EventFlag,
    EventType,
)
from binhub.errors import ChecksumMismatch, InvalidEvent

_CRC = struct.Struct("<I")
_FDE = EventType.FORMAT_DESCRIPTION


def event_crc(event_without_crc: bytes | bytearray | memoryview) -> int:
    """CRC32 of an event body without its checksum; an FDE is hashed with BINLOG_IN_USE cleared."""
    data = event_without_crc
    if len(data) > FDE_FLAGS_OFFSET and data[TYPE_CODE_OFFSET] == _FDE and data[FDE_FLAGS_OFFSET] & EventFlag.BINLOG_IN_USE:
        # Hash the three pieces instead of copying the whole event.
        crc = zlib.crc32(data[:FDE_FLAGS_OFFSET])
        crc = zlib.crc32(bytes((data[FDE_FLAGS_OFFSET] & ~EventFlag.BINLOG_IN_USE & 0xFF,)), crc)
        return zlib.crc32(data[FDE_FLAGS_OFFSET + 1:], crc)
    return zlib.crc32(data)


def verify_checksum(event: bytes | bytearray | memoryview, *, file: str | None = None,
                    offset: int | None = None) -> None:
    """Check the trailing CRC32 of a complete event; raise ChecksumMismatch naming where and what."""
    if len(event) < HEADER_SIZE + CHECKSUM_SIZE:
        raise InvalidEvent(f"event of {len(event)} bytes is too short to carry a checksum",
                           file=file, offset=offset)
    view = memoryview(event)
    expected = _CRC.unpack_from(view, len(view) - CHECKSUM_SIZE)[0]
    actual = event_crc(view[:len(view) - CHECKSUM_SIZE])
    if expected != actual:
        type_code = view[TYPE_CODE_OFFSET]
        raise ChecksumMismatch(
            f"CRC32 mismatch in event type {type_code} of {len(view)} bytes: stored 0x{expected:08x}, "
            f"computed 0x{actual:08x}",
            file=file, offset=offset,
            hint="the file is corrupt or was modified; restore it from upstream or a backup")


def with_crc(event_without_crc: bytes | bytearray | memoryview) -> bytes:
    """Append the CRC32 of the given event bytes."""
    return bytes(event_without_crc) + _CRC.pack(event_crc(event_without_crc))


def recompute_crc(event: bytes | bytearray | memoryview) -> bytes:
    """Replace the trailing 4 CRC bytes of a complete event with the correct value."""
    return with_crc(memoryview(event)[:len(event) - CHECKSUM_SIZE])


def set_in_use_flag(fde: bytes | bytearray | memoryview, in_use: bool) -> bytes:
    """Set or clear BINLOG_IN_USE in an FDE. The CRC stays valid because it is computed with the bit masked."""
    if len(fde) < HEADER_SIZE or fde[TYPE_CODE_OFFSET] != _FDE:
        raise InvalidEvent("set_in_use_flag expects a FORMAT_DESCRIPTION event")
    out = bytearray(fde)
    if in_use:
        out[FDE_FLAGS_OFFSET] |= EventFlag.BINLOG_IN_USE
    else:
        out[FDE_FLAGS_OFFSET] &= ~EventFlag.BINLOG_IN_USE & 0xFF
    return bytes(out)
