"""Binlog event checksums: CRC32 (zlib's polynomial, not CRC32C) over the event without its last 4 bytes.

The Format_description event is special: its ``LOG_EVENT_BINLOG_IN_USE_F`` flag is set while the
server writes the file and cleared when the file is closed, without rewriting the CRC. Both MySQL
(``Log_event::event_checksum_test``) and MariaDB therefore compute and verify the FDE's CRC with that
bit masked, and so do we: flipping the flag never changes the CRC.
"""

from __future__ import annotations

import re
import struct
import zlib

from binhub.binlog.constants import (
    CHECKSUM_SIZE,
    CHECKSUM_VERSION_PRODUCT,
    FDE_FLAGS_OFFSET,
    FDE_SERVER_VERSION_LEN,
    HEADER_SIZE,
    TYPE_CODE_OFFSET,
    ChecksumAlg,
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


# Whether an FDE ends with the checksum algorithm: here, not with the decoded events, so the relay
# (which decodes no event) learns a file's checksum size without importing the event classes.
_VERSION_RE = re.compile(r"(\d+)\.(\d+)\.(\d+)")


def version_tuple(version: str) -> tuple[int, int, int]:
    """(major, minor, patch) of a server version string such as ``10.5.15-MariaDB-log``."""
    m = _VERSION_RE.match(version)
    return (int(m[1]), int(m[2]), int(m[3])) if m else (0, 0, 0)


def writes_checksum_alg(version: str) -> bool:
    """Whether a server of this version ends its FDE with a checksum-algorithm byte: MySQL from
    5.6.1, MariaDB from 5.3 (older FDEs end with the post-header lengths)."""
    if "MariaDB" in version:
        return version_tuple(version)[:2] >= (5, 3)
    return version_tuple(version) >= CHECKSUM_VERSION_PRODUCT


def fde_checksum_size(fde: bytes | bytearray | memoryview) -> int:
    """4 if the events after this raw FDE carry a CRC32 (algorithm byte 1), else 0. Cheap: no decode."""
    version = bytes(fde[HEADER_SIZE + 2:HEADER_SIZE + 2 + FDE_SERVER_VERSION_LEN]).split(b"\0", 1)[0]
    if not writes_checksum_alg(version.decode("ascii", "replace")):
        return 0
    return CHECKSUM_SIZE if fde[len(fde) - CHECKSUM_SIZE - 1] == ChecksumAlg.CRC32 else 0
