"""The relay's per-event loops in plain Python: the reference that ``_relay.c`` compiles.

Both implementations take the same arguments and give the same results; the unit tests run
over both (``binhub._speedups.IMPLEMENTATIONS``), so they cannot drift apart.
"""

from __future__ import annotations

import operator
import struct
from collections.abc import Callable

MAX_PACKET_PAYLOAD = 0xFFFFFF
OK_HEADER = 0x00
SEMISYNC_MAGIC = 0xEF
SEMISYNC_NEED_ACK = 0x01
# zlib.crc32 over data followed by its own little-endian CRC32 always gives this value.
CRC32_RESIDUE = 0x2144DF1C
_ARTIFICIAL_TABLE = bytes(1 if f & 0x20 else 0 for f in range(256))
_TYPE_BYTE = operator.itemgetter(4)
_FLAGS_BYTE = operator.itemgetter(17)
_unpack_header = struct.Struct("<I").unpack_from  # 3-byte length + 1-byte sequence id in one call

Event = memoryview | bytes


def frame_dump(view: memoryview, pos: int, seq: int, check_seq: bool, limit: int, semisync: bool,
               events: list[Event]) -> tuple[int, int, bool]:
    """Append every complete ordinary dump packet from ``pos`` on to ``events``, stripped.

    Stops at the first packet it cannot take (partial, a payload of ``limit`` bytes or more, not
    an OK packet, empty, or a wrong sequence id when ``check_seq``) and returns where that packet
    starts, the next sequence id, and whether a semi-sync header asked for an ack.
    """
    append = events.append
    unpack = _unpack_header
    ack = False
    end = len(view)
    while end - pos >= 4:
        header = unpack(view, pos)[0]
        length = header & MAX_PACKET_PAYLOAD
        stop = pos + 4 + length
        if stop > end:
            break
        if not length or length >= limit or view[pos + 4] != OK_HEADER or (check_seq and header >> 24 != seq):
            break
        seq = (seq + 1) & 0xFF
        if semisync and length > 2 and view[pos + 5] == SEMISYNC_MAGIC:
            if view[pos + 6] & SEMISYNC_NEED_ACK:
                ack = True
            append(view[pos + 7:stop])
        else:
            append(view[pos + 5:stop])
        pos = stop
    return pos, seq, ack


def scan_batch(batch: list[Event], slow_table: bytes,
               crc32: Callable[[Event], int] | None) -> tuple[bytes, bytes, bool]:
    """Each event's type byte; 1 where ``slow_table`` marks its type or it is artificial; CRCs all good.

    ``crc32`` None means the events carry no checksum (``crc_ok`` is then False). The CRCs of
    the whole batch are checked in one pass: an event followed by its own CRC32 always hashes
    to the same residue.
    """
    count = len(batch)
    types = bytes(map(_TYPE_BYTE, batch))
    slow = types.translate(slow_table)
    artificial = bytes(map(_FLAGS_BYTE, batch)).translate(_ARTIFICIAL_TABLE)
    # OR of the two byte strings as two big integers: C-speed, no per-event Python.
    marks = (int.from_bytes(slow, "little") | int.from_bytes(artificial, "little")).to_bytes(count, "little")
    crc_ok = crc32 is not None and list(map(crc32, batch)).count(CRC32_RESIDUE) == count
    return types, marks, crc_ok
