"""The relay's per-event loops in plain Python: the reference that ``_relay.c`` compiles.

Both implementations take the same arguments and give the same results; the unit tests run
over both (``binhub._speedups.IMPLEMENTATIONS``), so they cannot drift apart.
"""

from __future__ import annotations

import operator
import struct
import zlib

MAX_PACKET_PAYLOAD = 0xFFFFFF
OK_HEADER = 0x00
EVENT_HEADER_SIZE = 19
SEMISYNC_MAGIC = 0xEF
SEMISYNC_NEED_ACK = 0x01
# zlib.crc32 over data followed by its own little-endian CRC32 always gives this value.
CRC32_RESIDUE = 0x2144DF1C
_ARTIFICIAL_TABLE = bytes(1 if f & 0x20 else 0 for f in range(256))
_TYPE_BYTE = operator.itemgetter(4)
_FLAGS_BYTE = operator.itemgetter(17)
_unpack_header = struct.Struct("<I").unpack_from  # 3-byte length + 1-byte sequence id in one call

Event = memoryview | bytes
crc32 = zlib.crc32
CRC32_METHOD = "zlib"


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


def frame_events(data: bytes | memoryview, seq: int, drop_type: int) -> tuple[bytes, int, int, int, int]:
    """Frame the complete events at the start of ``data`` (a span of a binlog file) as dump packets.

    Each event is one payload, ``0x00 event``, sent as packets ``len(3) seq(1) bytes`` with sequence
    ids counting from ``seq``; a payload of 0xFFFFFF bytes or more is split as the protocol wants
    (ending with a shorter, possibly empty, packet). Events of type ``drop_type`` are left out
    (-1: none). Stops before an event cut off by the end of ``data``. Returns ``(wire bytes,
    packets, events, bytes consumed, event bytes framed)``; a declared event size below the
    header size raises ValueError naming its offset.
    """
    view = memoryview(data)
    end = len(view)
    unpack = _unpack_header
    pieces: list[bytes | memoryview] = []
    append = pieces.append
    pos = packets = events = nbytes = 0
    while end - pos >= EVENT_HEADER_SIZE:
        size = unpack(view, pos + 9)[0]
        if size < EVENT_HEADER_SIZE:
            raise ValueError(f"corrupt event header at offset {pos} (declared size {size})")
        stop = pos + size
        if stop > end:
            break
        if view[pos + 4] != drop_type:
            events += 1
            nbytes += size
            if size + 1 < MAX_PACKET_PAYLOAD:
                append((size + 1 | (seq << 24)).to_bytes(4, "little") + b"\x00")
                append(view[pos:stop])
                seq = (seq + 1) & 0xFF
                packets += 1
            else:
                payload = b"\x00" + view[pos:stop]
                at = 0
                while True:
                    chunk = min(len(payload) - at, MAX_PACKET_PAYLOAD)
                    append((chunk | (seq << 24)).to_bytes(4, "little"))
                    append(payload[at:at + chunk])
                    seq = (seq + 1) & 0xFF
                    packets += 1
                    at += chunk
                    if chunk < MAX_PACKET_PAYLOAD:
                        break
        pos = stop
    return b"".join(pieces), packets, events, pos, nbytes


def scan_batch(batch: list[Event], slow_table: bytes, check_crc: bool) -> tuple[bytes, bytes, bool]:
    """Each event's type byte; 1 where ``slow_table`` marks its type or it is artificial; CRCs all good.

    ``check_crc`` False means the events carry no checksum (``crc_ok`` is then False). The CRCs of
    the whole batch are checked in one pass: an event followed by its own CRC32 always hashes
    to the same residue.
    """
    count = len(batch)
    types = bytes(map(_TYPE_BYTE, batch))
    slow = types.translate(slow_table)
    artificial = bytes(map(_FLAGS_BYTE, batch)).translate(_ARTIFICIAL_TABLE)
    # OR of the two byte strings as two big integers: C-speed, no per-event Python.
    marks = (int.from_bytes(slow, "little") | int.from_bytes(artificial, "little")).to_bytes(count, "little")
    crc_ok = check_crc and list(map(crc32, batch)).count(CRC32_RESIDUE) == count
    return types, marks, crc_ok
