"""Packet framing: a 3-byte little-endian payload length, a 1-byte sequence id, then the payload.

A payload of 0xFFFFFF bytes or more is split into 0xFFFFFF-byte packets; the last one is shorter,
which means an *empty* trailing packet when the payload length is a multiple of 0xFFFFFF.

:class:`PacketReader` is on the relay's hot path (every binlog event passes through it), so it
avoids per-byte loops and copies: a packet that arrives whole inside one ``feed()`` chunk is
returned as a ``memoryview`` slice of that chunk (zero copy); only a packet split across chunks is
gathered in a ``bytearray`` and copied out once.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

from binhub.errors import MalformedPacket
from binhub.wire.constants import MAX_PACKET_PAYLOAD

Payload = bytes | memoryview

_HEADER = struct.Struct("<I")  # 3-byte length + 1-byte seq read in one call
_unpack_header = _HEADER.unpack_from

#: Default bound on one reassembled payload: MySQL's max ``max_allowed_packet`` (1 GiB).
DEFAULT_MAX_PAYLOAD = 1 << 30


def frame(payload: bytes | bytearray | memoryview, seq: int) -> tuple[list[Payload] | bytes, int]:
    """Frame ``payload`` starting at sequence id ``seq``; returns (wire bytes, next seq).

    Small payloads (the common case) come back as one ``bytes``; payloads of 0xFFFFFF bytes or more
    as a list of headers and zero-copy slices of ``payload`` to write with ``writelines`` (so a
    40 MiB event is not copied again; ``payload`` must not change until they are written).
    """
    n = len(payload)
    if n < MAX_PACKET_PAYLOAD:
        return _HEADER.pack(n | (seq << 24)) + bytes(payload), (seq + 1) & 0xFF
    view = memoryview(payload)
    out: list[Payload] = []
    pos = 0
    while True:
        chunk = min(n - pos, MAX_PACKET_PAYLOAD)
        out.append(_HEADER.pack(chunk | (seq << 24)))
        out.append(view[pos:pos + chunk])
        seq = (seq + 1) & 0xFF
        pos += chunk
        if chunk < MAX_PACKET_PAYLOAD:
            return out, seq


def frame_many(payloads: Iterable[bytes | bytearray | memoryview], seq: int) -> tuple[list[Payload], int]:
    """Frame consecutive ``payloads`` from sequence id ``seq``: (parts to ``writelines``, next seq)."""
    parts: list[Payload] = []
    for payload in payloads:
        data, seq = frame(payload, seq)
        if isinstance(data, list):
            parts.extend(data)
        else:
            parts.append(data)
    return parts, seq


class PacketReader:
    """Turn a byte stream into complete payloads; validates sequence ids and a size bound.

    ``seq`` is the sequence id the next packet must carry. The MySQL protocol uses one counter for
    both directions of an exchange, so the adapter sets ``seq`` after framing what it sends (and to
    0 before each new command).
    """

    __slots__ = ("seq", "max_payload", "_partial", "_large", "check_seq")

    def __init__(self, *, max_payload: int = DEFAULT_MAX_PAYLOAD, check_seq: bool = True) -> None:
        self.seq = 0
        self.max_payload = max_payload
        self.check_seq = check_seq
        # Bytes of one packet that is not complete yet (header included).
        self._partial = bytearray()
        # Fragments of a payload >= 0xFFFFFF still waiting for its last (short) packet.
        self._large: bytearray | None = None

    @property
    def buffered(self) -> int:
        """Bytes held for incomplete packets (for backpressure decisions)."""
        return len(self._partial) + (len(self._large) if self._large is not None else 0)

    def reset(self, seq: int = 0) -> None:
        self.seq = seq

    def take_partial(self, limit: int) -> bytearray:
        """Hand back (and forget) the start of a packet cut off by the end of what was fed, if it is an
        ordinary one: not part of a payload of 16 MiB or more, its payload below ``limit``."""
        partial = self._partial
        if not partial or self._large is not None:
            return bytearray()
        if len(partial) >= 4 and _unpack_header(partial, 0)[0] & MAX_PACKET_PAYLOAD >= limit:
            return bytearray()
        self._partial = bytearray()
        return partial

    def feed(self, data: bytes | bytearray | memoryview) -> list[Payload]:
        """Consume ``data``; return every payload completed by it, in order."""
        out: list[Payload] = []
        if isinstance(data, bytearray):
            # Views into a mutable buffer the caller may reuse would be unsafe: take a private copy.
            data = bytes(data)
        view = data if isinstance(data, memoryview) else memoryview(data)
        pos = 0
        end = len(view)
        partial = self._partial
        if partial:
            # Complete the packet that straddled the previous chunk boundary first.
            if len(partial) < 4:
                take = min(4 - len(partial), end)
                partial += view[:take]
                pos = take
                if len(partial) < 4:
                    return out
            need = 4 + (_unpack_header(partial, 0)[0] & MAX_PACKET_PAYLOAD) - len(partial)
            take = min(need, end - pos)
            partial += view[pos:pos + take]
            pos += take
            if take < need:
                self._check_size()
                return out
            header = _unpack_header(partial, 0)[0]
            # Hand the gathered buffer itself over as the payload: no second copy of a large event.
            del partial[:4]
            self._partial = bytearray()
            self._deliver(header & MAX_PACKET_PAYLOAD, header >> 24, memoryview(partial), out)
            partial = self._partial
        seq = self.seq
        large = self._large
        max_payload = self.max_payload
        check_seq = self.check_seq
        while end - pos >= 4:
            header = _unpack_header(view, pos)[0]
            length = header & MAX_PACKET_PAYLOAD
            stop = pos + 4 + length
            if stop > end:
                break
            pkt_seq = header >> 24
            if check_seq and pkt_seq != seq:
                raise MalformedPacket(f"packets out of order: expected sequence id {seq}, got {pkt_seq}")
            seq = (pkt_seq + 1) & 0xFF
            if length > max_payload:
                raise MalformedPacket(f"packet of {length} bytes exceeds the limit of {max_payload} bytes")
            if large is None and length < MAX_PACKET_PAYLOAD:
                out.append(view[pos + 4:stop])  # the hot path: zero-copy slice
            else:
                self.seq = seq
                self._large = large
                self._deliver_fragment(length, view[pos + 4:stop], out)
                large = self._large
            pos = stop
        self.seq = seq
        self._large = large
        if pos < end:
            partial += view[pos:]
            if len(partial) >= 4:
                self._check_size()
        return out

    def _check_size(self) -> None:
        # Called while a packet is still incomplete, so a hostile length is refused before we buffer it all.
        header_len = _unpack_header(self._partial, 0)[0] & MAX_PACKET_PAYLOAD
        total = header_len + (len(self._large) if self._large is not None else 0)
        if total > self.max_payload:
            raise MalformedPacket(f"payload of at least {total} bytes exceeds the limit of {self.max_payload} bytes")

    def _deliver(self, length: int, pkt_seq: int, payload: memoryview, out: list[Payload]) -> None:
        """Deliver one packet that was reassembled from ``_partial``."""
        if self.check_seq and pkt_seq != self.seq:
            raise MalformedPacket(f"packets out of order: expected sequence id {self.seq}, got {pkt_seq}")
        self.seq = (pkt_seq + 1) & 0xFF
        if length > self.max_payload:
            raise MalformedPacket(f"packet of {length} bytes exceeds the limit of {self.max_payload} bytes")
        if self._large is None and length < MAX_PACKET_PAYLOAD:
            out.append(payload)
        else:
            self._deliver_fragment(length, payload, out)

    def _deliver_fragment(self, length: int, fragment: Payload, out: list[Payload]) -> None:
        if self._large is None:
            self._large = bytearray(fragment)
        else:
            self._large += fragment
        if len(self._large) > self.max_payload:
            raise MalformedPacket(f"payload of at least {len(self._large)} bytes exceeds the limit of "
                                  f"{self.max_payload} bytes")
        if length < MAX_PACKET_PAYLOAD:
            # The bytearray is handed over, not copied: the reader starts a fresh one next time.
            out.append(memoryview(self._large))
            self._large = None
