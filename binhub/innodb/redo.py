"""The InnoDB redo log of MariaDB 10.8+ (MDEV-14425): one file, ``ib_logfile0``.

Layout (``log0log.h``, ``log_t::header_write``, ``log_t::write_checkpoint``; all integers big-endian,
all checksums CRC-32C)::

    0      format (0x50687973 "Phys"; bit 31 set when the log is encrypted)
    8      first_lsn: the LSN that sits at START_OFFSET
    16     creator, NUL-terminated ("MariaDB 10.11.19", "Backup 10.11.19")
    508    CRC-32C of bytes 0..507
    4096   checkpoint block 1: checkpoint_lsn (8), end_lsn (8), zeros, CRC-32C of bytes 0..59 at 60
    8192   checkpoint block 2, same layout; recovery takes the valid one with the larger checkpoint_lsn
    12288  START_OFFSET: the ring of mini-transactions, capacity = file_size - 12288

A mini-transaction (``recv_sys_t::parse``) is a run of records, each starting with a byte whose low
nibble is its length (0: a variable-length integer follows with length - 15), then an end byte that
holds the *sequence bit* of its LSN (it flips on every lap of the ring, so log left from the previous
lap reads as the end), then (encrypted logs only) an 8-byte nonce, then the CRC-32C of the records.
A backup copy is not circular: mariadb-backup writes every end byte as 1 and the records from the
checkpoint LSN on at START_OFFSET, so ``first_lsn`` = the checkpoint LSN.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from types import ModuleType

from binhub.errors import InnodbFormatError
from binhub.innodb.page import crc32c

_redo_c: ModuleType | None = None
if os.environ.get("BINHUB_NO_SPEEDUPS", "") in ("", "0"):
    try:
        from binhub._speedups import _redo as _redo_c
    except ImportError:  # not built (no compiler at install time): scan_mtrs does the same in Python
        _redo_c = None

START_OFFSET = 12288
CHECKPOINT_1 = 4096
CHECKPOINT_2 = 8192
CHECKPOINT_BLOCK_SIZE = 64
HEADER_BLOCK_SIZE = 512
HEADER_CRC_OFFSET = 508
CREATOR_OFFSET = 16
CREATOR_END = 48
FORMAT_10_8 = 0x50687973
FORMAT_ENCRYPTED = 0x80000000
FORMAT_10_5 = 0x50485953  # "PHYS": 10.5 .. 10.7, a different record framing
MTR_SIZE_MAX = 1 << 20  # recv_sys_t::MTR_SIZE_MAX
FILE_CHECKPOINT = 0xF0
SIZE_OF_FILE_CHECKPOINT = 16

_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")

Buffer = bytes | bytearray | memoryview


@dataclass(frozen=True, slots=True)
class LogHeader:
    """The first block of ``ib_logfile0``."""

    first_lsn: int
    creator: str
    encrypted: bool = False

    @classmethod
    def parse(cls, block: Buffer) -> LogHeader:
        if len(block) < HEADER_BLOCK_SIZE:
            raise InnodbFormatError(f"ib_logfile0 is too short for its header ({len(block)} bytes)")
        fmt = _U32.unpack_from(block, 0)[0]
        if fmt in (FORMAT_10_5, FORMAT_10_5 | FORMAT_ENCRYPTED):
            raise InnodbFormatError("ib_logfile0 is in the redo format of MariaDB 10.5-10.7; binhub reads 10.8 and later")
        if fmt & ~FORMAT_ENCRYPTED != FORMAT_10_8:
            raise InnodbFormatError(f"ib_logfile0 has an unknown format word 0x{fmt:08x} (not a MariaDB 10.8+ redo log)")
        stored = _U32.unpack_from(block, HEADER_CRC_OFFSET)[0]
        computed = crc32c(block[:HEADER_CRC_OFFSET])
        if stored != computed:
            raise InnodbFormatError(f"ib_logfile0 header checksum 0x{stored:08x} != computed 0x{computed:08x}")
        creator = bytes(block[CREATOR_OFFSET:CREATOR_END]).split(b"\0", 1)[0].decode("ascii", "replace")
        return cls(_U64.unpack_from(block, 8)[0], creator, bool(fmt & FORMAT_ENCRYPTED))

    def encode(self) -> bytes:
        """The 512-byte header block (unencrypted logs only: an encrypted one needs its key info)."""
        if self.encrypted:
            raise InnodbFormatError("writing an encrypted redo log header is not supported")
        block = bytearray(HEADER_BLOCK_SIZE)
        _U32.pack_into(block, 0, FORMAT_10_8)
        _U64.pack_into(block, 8, self.first_lsn)
        creator = self.creator.encode("ascii")[:CREATOR_END - CREATOR_OFFSET - 1]
        block[CREATOR_OFFSET:CREATOR_OFFSET + len(creator)] = creator
        _U32.pack_into(block, HEADER_CRC_OFFSET, crc32c(block[:HEADER_CRC_OFFSET]))
        return bytes(block)


@dataclass(frozen=True, slots=True, order=True)
class Checkpoint:
    """A checkpoint block: recovery starts at ``lsn`` and finds its FILE_CHECKPOINT record at ``end_lsn``."""

    lsn: int
    end_lsn: int

    @classmethod
    def parse(cls, block: Buffer) -> Checkpoint | None:
        """The checkpoint in a 64-byte block, or None when the block is empty or its CRC is wrong."""
        if len(block) < CHECKPOINT_BLOCK_SIZE:
            return None
        if _U32.unpack_from(block, 60)[0] != crc32c(block[:60]):
            return None
        lsn, end_lsn = struct.unpack_from(">QQ", block, 0)
        if lsn == 0 or end_lsn < lsn:
            return None
        return cls(lsn, end_lsn)

    def encode(self) -> bytes:
        block = bytearray(CHECKPOINT_BLOCK_SIZE)
        struct.pack_into(">QQ", block, 0, self.lsn, self.end_lsn)
        _U32.pack_into(block, 60, crc32c(block[:60]))
        return bytes(block)


def newest_checkpoint(header_area: Buffer) -> Checkpoint:
    """The valid checkpoint with the larger LSN in the first 12 KiB of ``ib_logfile0`` (``recv_find_max_checkpoint``)."""
    if len(header_area) < START_OFFSET:
        raise InnodbFormatError(f"ib_logfile0 is too short for its checkpoint blocks ({len(header_area)} bytes)")
    found = [cp for at in (CHECKPOINT_1, CHECKPOINT_2)
             if (cp := Checkpoint.parse(header_area[at:at + CHECKPOINT_BLOCK_SIZE])) is not None]
    if not found:
        raise InnodbFormatError("ib_logfile0 has no valid checkpoint block (both CRCs wrong or empty)")
    return max(found)


@dataclass(frozen=True, slots=True)
class RedoRing:
    """Where an LSN lives in a server's circular ``ib_logfile0`` of ``file_size`` bytes."""

    file_size: int
    first_lsn: int

    def __post_init__(self) -> None:
        if self.file_size <= START_OFFSET:
            raise InnodbFormatError(f"ib_logfile0 of {self.file_size} bytes has no room for log records")

    @property
    def capacity(self) -> int:
        return self.file_size - START_OFFSET

    def offset(self, lsn: int) -> int:
        """``log_t::calc_lsn_offset``."""
        if lsn < self.first_lsn:
            raise InnodbFormatError(f"LSN {lsn} is before the log's first LSN {self.first_lsn}")
        return START_OFFSET + (lsn - self.first_lsn) % self.capacity

    def lap(self, lsn: int) -> int:
        """How many times the ring had filled when ``lsn`` was written."""
        return (lsn - self.first_lsn) // self.capacity

    def sequence_bit(self, lsn: int) -> int:
        """``log_t::get_sequence_bit``: 1 on the first lap, 0 on the second, and so on."""
        return 0 if ((lsn - self.first_lsn) // self.capacity) & 1 else 1

    def spans(self, lsn: int, length: int) -> list[tuple[int, int]]:
        """The (file offset, length) pieces holding ``length`` bytes of log from ``lsn`` (two when it wraps)."""
        if length > self.capacity:
            raise InnodbFormatError(f"{length} bytes of log do not fit a ring of {self.capacity}")
        out: list[tuple[int, int]] = []
        at = self.offset(lsn)
        while length:
            piece = min(length, self.file_size - at)
            out.append((at, piece))
            length -= piece
            at = START_OFFSET
        return out


# --- records and mini-transactions ---------------------------------------------------------------------

def varint_length(first: int) -> int:
    """``mlog_decode_varint_length``: one byte per leading 1 bit, plus one."""
    length = 1
    while first & 0x80:
        length += 1
        first = (first << 1) & 0xFF
    return length


_MIN_2BYTE = 0x80
_MIN_3BYTE = _MIN_2BYTE + (1 << 14)
_MIN_4BYTE = _MIN_3BYTE + (1 << 21)
_MIN_5BYTE = _MIN_4BYTE + (1 << 28)


def decode_varint(buf: Buffer, pos: int) -> int | None:
    """``mlog_decode_varint``: the integer at ``buf[pos]``, or None when the encoding is invalid."""
    first = buf[pos]
    if first < _MIN_2BYTE:
        return first
    if first < 0xC0:
        return _MIN_2BYTE + ((first & 0x3F) << 8 | buf[pos + 1])
    if first < 0xE0:
        return _MIN_3BYTE + ((first & 0x1F) << 16 | buf[pos + 1] << 8 | buf[pos + 2])
    if first < 0xF0:
        return _MIN_4BYTE + ((first & 0x0F) << 24 | buf[pos + 1] << 16 | buf[pos + 2] << 8 | buf[pos + 3])
    if first == 0xF0:
        value = int.from_bytes(bytes(buf[pos + 1:pos + 5]), "big")
        if value <= 0xFFFFFFFF - _MIN_5BYTE:
            return _MIN_5BYTE + value
    return None


def encode_varint(value: int) -> bytes:
    """``mlog_encode_varint`` (the inverse of :func:`decode_varint`)."""
    if value < _MIN_2BYTE:
        return bytes((value,))
    if value < _MIN_3BYTE:
        v = value - _MIN_2BYTE
        return bytes((0x80 | v >> 8, v & 0xFF))
    if value < _MIN_4BYTE:
        v = value - _MIN_3BYTE
        return bytes((0xC0 | v >> 16, v >> 8 & 0xFF, v & 0xFF))
    if value < _MIN_5BYTE:
        v = value - _MIN_4BYTE
        return bytes((0xE0 | v >> 24, v >> 16 & 0xFF, v >> 8 & 0xFF, v & 0xFF))
    return b"\xf0" + (value - _MIN_5BYTE).to_bytes(4, "big")


class ScanStop(StrEnum):
    """Why a scan of mini-transactions stopped."""

    END_OF_LOG = "end of log"  # an end marker or a stale sequence bit where an mtr should start
    INCOMPLETE = "incomplete"  # the buffer ends inside a mini-transaction: read more and rescan
    BAD_CHECKSUM = "bad checksum"  # a complete-looking mtr whose CRC-32C is wrong
    MALFORMED = "malformed"  # an impossible record length


@dataclass(frozen=True, slots=True)
class MtrScan:
    """The complete, valid mini-transactions found at the front of a buffer.

    ``ends[i]`` is the buffer offset just past mtr ``i``; ``sequence_positions[i]`` is its end byte.
    ``length`` (= ``ends[-1]``, or 0) is how many bytes of the buffer are whole mtrs.
    """

    ends: list[int]
    sequence_positions: list[int]
    stop: ScanStop

    @property
    def length(self) -> int:
        return self.ends[-1] if self.ends else 0


def _mtr_end(buf: Buffer, pos: int, lsn: int, sequence_bit: Callable[[int], int],
             encrypted: bool) -> tuple[int, int] | ScanStop:
    """Parse the mtr at ``buf[pos]`` (LSN ``lsn``): (end offset, end byte offset) or why not."""
    size = len(buf)
    if pos >= size:
        return ScanStop.INCOMPLETE
    if buf[pos] <= 1:
        return ScanStop.END_OF_LOG  # the server never writes an empty mini-transaction
    at = pos
    total = 0
    while True:
        if at >= size:
            return ScanStop.INCOMPLETE
        if total >= MTR_SIZE_MAX:
            return ScanStop.MALFORMED
        first = buf[at]
        if first <= 1:
            break
        rlen = first & 0xF
        at += 1
        if not rlen:
            if at >= size or at + varint_length(buf[at]) >= size:
                return ScanStop.INCOMPLETE
            extra = decode_varint(buf, at)
            if extra is None or extra >= MTR_SIZE_MAX:
                return ScanStop.MALFORMED
            rlen = extra + 15
        at += rlen
        total += rlen
    if buf[at] != sequence_bit(lsn + (at - pos)):
        return ScanStop.END_OF_LOG
    nonce = 8 if encrypted else 0
    end = at + 1 + nonce + 4
    if end > size:
        return ScanStop.INCOMPLETE
    crc = crc32c(buf[pos:at])
    if nonce:
        crc = crc32c(buf[at + 1:at + 1 + nonce], crc)
    if crc != _U32.unpack_from(buf, at + 1 + nonce)[0]:
        return ScanStop.BAD_CHECKSUM
    return end, at


def scan_mtrs(buf: Buffer, lsn: int, sequence_bit: Callable[[int], int], *, encrypted: bool = False,
              limit: int | None = None) -> MtrScan:
    """Walk the mini-transactions at the front of ``buf``, whose first byte has LSN ``lsn``.

    Stops at the first one that is incomplete, stale (previous lap's sequence bit), or fails its
    checksum, or once ``limit`` bytes are covered. Like recovery, it never skips over a bad mtr.
    """
    ends: list[int] = []
    seqs: list[int] = []
    pos = 0
    while limit is None or pos < limit:
        found = _mtr_end(buf, pos, lsn + pos, sequence_bit, encrypted)
        if isinstance(found, ScanStop):
            return MtrScan(ends, seqs, found)
        pos, seq = found
        ends.append(pos)
        seqs.append(seq)
    return MtrScan(ends, seqs, ScanStop.END_OF_LOG)


_STOPS = (ScanStop.END_OF_LOG, ScanStop.INCOMPLETE, ScanStop.BAD_CHECKSUM, ScanStop.MALFORMED)  # the C codes


def scan_ring(buf: Buffer, lsn: int, ring: RedoRing | None, *, encrypted: bool = False) -> MtrScan:
    """:func:`scan_mtrs` over log read from ``ring`` (None: a backup's log, which never wraps), in C
    when the extension is built (the same checks, ~100 times faster: a busy server writes millions
    of mini-transactions a minute)."""
    if _redo_c is not None:
        first_lsn, capacity = (ring.first_lsn, ring.capacity) if ring is not None else (0, 0)
        ends, seqs, stop = _redo_c.scan_mtrs(buf, lsn, first_lsn, capacity, 8 if encrypted else 0, -1)
        return MtrScan(ends, seqs, _STOPS[stop])
    return scan_mtrs(buf, lsn, ring.sequence_bit if ring is not None else _never_wraps, encrypted=encrypted)


def _never_wraps(lsn: int) -> int:
    return 1


def file_checkpoint_mtr(lsn: int, sequence_bit: int = 1) -> bytes:
    """The FILE_CHECKPOINT mini-transaction naming checkpoint ``lsn`` (16 bytes, as ``log_t::write_checkpoint``)."""
    body = bytes((FILE_CHECKPOINT | 10, 0, 0)) + _U64.pack(lsn)
    return body + bytes((sequence_bit,)) + _U32.pack(crc32c(body))


def backup_log_header(first_lsn: int, checkpoint: Checkpoint, creator: str) -> bytes:
    """The first START_OFFSET bytes of a backup's ``ib_logfile0`` (``log_hdr_init()`` in mariadb-backup).

    The log records that follow, from ``first_lsn`` (= ``checkpoint.lsn``), go at START_OFFSET.
    """
    area = bytearray(START_OFFSET)
    area[:HEADER_BLOCK_SIZE] = LogHeader(first_lsn, creator).encode()
    area[CHECKPOINT_1:CHECKPOINT_1 + CHECKPOINT_BLOCK_SIZE] = checkpoint.encode()
    return bytes(area)
