"""The MariaDB 10.8+ redo log codec, with logs built from the source definitions (log0log.cc, mtr0log.h,
log0recv.cc). A real server's ib_logfile0 is read in tests/integration/test_innodb_files.py."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from binhub.errors import InnodbFormatError
from binhub.innodb import Checkpoint, LogHeader, RedoRing, ScanStop, crc32c, newest_checkpoint, scan_mtrs
from binhub.innodb.redo import (
    CHECKPOINT_1,
    CHECKPOINT_2,
    START_OFFSET,
    backup_log_header,
    decode_varint,
    encode_varint,
    file_checkpoint_mtr,
)
from tests.innodb_factory import mtr, write_record


def test_header_roundtrip_and_checksum() -> None:
    block = LogHeader(12288, "MariaDB 10.11.19").encode()
    assert block[:4] == b"Phys"
    assert LogHeader.parse(block) == LogHeader(12288, "MariaDB 10.11.19")
    damaged = bytearray(block)
    damaged[20] ^= 1
    with pytest.raises(InnodbFormatError, match="header checksum"):
        LogHeader.parse(damaged)


def test_header_rejects_old_and_unknown_formats() -> None:
    old = bytearray(512)
    old[:4] = b"PHYS"
    with pytest.raises(InnodbFormatError, match="10.5-10.7"):
        LogHeader.parse(old)
    with pytest.raises(InnodbFormatError, match="unknown format"):
        LogHeader.parse(bytes(512))


def test_newest_checkpoint_takes_the_larger_valid_block() -> None:
    area = bytearray(START_OFFSET)
    area[CHECKPOINT_1:CHECKPOINT_1 + 64] = Checkpoint(5000, 5100).encode()
    area[CHECKPOINT_2:CHECKPOINT_2 + 64] = Checkpoint(9000, 9016).encode()
    assert newest_checkpoint(area) == Checkpoint(9000, 9016)
    area[CHECKPOINT_2 + 3] ^= 1  # the newer block was torn mid-write: fall back to the older one
    assert newest_checkpoint(area) == Checkpoint(5000, 5100)
    area[CHECKPOINT_1 + 3] ^= 1
    with pytest.raises(InnodbFormatError, match="no valid checkpoint"):
        newest_checkpoint(area)


def test_ring_offsets_sequence_bits_and_wrap() -> None:
    ring = RedoRing(START_OFFSET + 1000, 12288)
    assert ring.capacity == 1000
    assert ring.offset(12288) == START_OFFSET
    assert ring.offset(12288 + 1000) == START_OFFSET  # one lap later, same place
    assert (ring.sequence_bit(12288), ring.sequence_bit(12288 + 999), ring.sequence_bit(12288 + 1000)) == (1, 1, 0)
    assert ring.sequence_bit(12288 + 2000) == 1
    assert ring.spans(12288 + 900, 300) == [(START_OFFSET + 900, 100), (START_OFFSET, 200)]
    with pytest.raises(InnodbFormatError):
        ring.spans(12288, 1001)


@given(st.integers(min_value=0, max_value=0xFFFFFFFF))
def test_varint_roundtrip(value: int) -> None:
    encoded = encode_varint(value)
    assert decode_varint(encoded, 0) == value


def test_varint_boundaries_from_mtr0log() -> None:
    assert encode_varint(0x7F) == b"\x7f"
    assert encode_varint(0x80) == b"\x80\x00"
    assert encode_varint(0x4080) == b"\xc0\x00\x00"
    assert encode_varint(0x204080) == b"\xe0\x00\x00\x00"
    assert encode_varint(0x10204080) == b"\xf0\x00\x00\x00\x00"
    assert decode_varint(b"\xf8\0\0\0\0", 0) is None


def test_scan_finds_mtr_boundaries_and_stops_at_the_end_marker() -> None:
    first = mtr([write_record(5, 3, b"abc"), bytes((0xB0 | 2, 0, 0))])  # a WRITE, then a FILE_MODIFY-typed record (framing only)
    second = mtr([write_record(5, 4, b"x" * 40)])  # a long record: varint length
    third = file_checkpoint_mtr(4242)
    log = first + second + third + b"\0" * 10
    scan = scan_mtrs(log, 10000, lambda lsn: 1)
    assert scan.ends == [len(first), len(first) + len(second), len(first) + len(second) + 16]
    assert scan.stop is ScanStop.END_OF_LOG
    assert scan.sequence_positions[0] == len(first) - 5


def test_scan_stops_at_a_stale_sequence_bit_and_a_bad_crc() -> None:
    good = mtr([write_record(1, 1, b"ok")])
    stale = mtr([write_record(1, 2, b"old lap")], sequence_bit=0)
    scan = scan_mtrs(good + stale, 0, lambda lsn: 1)
    assert (len(scan.ends), scan.stop) == (1, ScanStop.END_OF_LOG)
    bad = bytearray(mtr([write_record(1, 2, b"bit rot")]))
    bad[3] ^= 0x01
    scan = scan_mtrs(good + bytes(bad), 0, lambda lsn: 1)
    assert (scan.length, scan.stop) == (len(good), ScanStop.BAD_CHECKSUM)


def test_scan_reports_an_incomplete_tail() -> None:
    whole = mtr([write_record(1, 1, b"y" * 30)])
    for cut in range(1, len(whole)):
        scan = scan_mtrs(whole[:cut], 0, lambda lsn: 1)
        assert (scan.length, scan.stop) == (0, ScanStop.INCOMPLETE), cut


def test_sequence_bit_is_checked_at_the_end_byte_lsn() -> None:
    # The lap boundary falls inside the second mtr: its end byte must carry the next lap's bit (0).
    ring = RedoRing(START_OFFSET + 64, 1000)
    first = mtr([write_record(1, 1, b"a" * 20)])
    second = mtr([write_record(1, 1, b"b" * 30)], sequence_bit=0)
    assert len(first) < 64 < len(first) + len(second)
    scan = scan_mtrs(first + second, 1000, ring.sequence_bit)
    assert scan.ends == [len(first), len(first) + len(second)]


def test_backup_header_matches_mariadb_backup_layout() -> None:
    area = backup_log_header(44894, Checkpoint(44894, 46654), "Backup 10.11.19")
    assert len(area) == START_OFFSET
    header = LogHeader.parse(area[:512])
    assert (header.first_lsn, header.creator) == (44894, "Backup 10.11.19")
    assert newest_checkpoint(area) == Checkpoint(44894, 46654)
    assert area[CHECKPOINT_2:CHECKPOINT_2 + 64] == bytes(64)


# --- the C scanner (binhub._speedups._redo) against its pure twin -----------------------------------------

def _c_scan(buf: bytes, lsn: int, ring: RedoRing | None, encrypted: bool = False) -> tuple[list[int], list[int], str]:
    redo_c = pytest.importorskip("binhub._speedups._redo", reason="the C extension is not built")
    first, capacity = (ring.first_lsn, ring.capacity) if ring is not None else (0, 0)
    ends, seqs, stop = redo_c.scan_mtrs(buf, lsn, first, capacity, 8 if encrypted else 0, -1)
    return ends, seqs, ["end of log", "incomplete", "bad checksum", "malformed"][stop]


def _pure_scan(buf: bytes, lsn: int, ring: RedoRing | None, encrypted: bool = False) -> tuple[list[int], list[int], str]:
    scan = scan_mtrs(buf, lsn, ring.sequence_bit if ring is not None else (lambda lsn: 1), encrypted=encrypted)
    return scan.ends, scan.sequence_positions, str(scan.stop)


def _encrypted_mtr(records: list[bytes], nonce: bytes) -> bytes:
    body = b"".join(records)
    return body + b"\x01" + nonce + struct.pack(">I", crc32c(nonce, crc32c(body)))


@given(payloads=st.lists(st.binary(min_size=0, max_size=300), min_size=1, max_size=8),
       cut=st.integers(min_value=0, max_value=4000), flip=st.integers(min_value=-1, max_value=4000),
       lsn=st.integers(min_value=1000, max_value=1100))
def test_c_scanner_agrees_with_the_pure_one(payloads: list[bytes], cut: int, flip: int, lsn: int) -> None:
    ring = RedoRing(START_OFFSET + 700, 1000)
    data = bytearray()
    for i, payload in enumerate(payloads):
        body_len = len(mtr([write_record(1, i, payload)])) - 5
        data += mtr([write_record(1, i, payload)], ring.sequence_bit(lsn + len(data) + body_len))
    data += b"\0" * 3
    if 0 <= flip < len(data):
        data[flip] ^= 0x10
    buf = bytes(data[:max(1, len(data) - cut % (len(data) + 1))])
    assert _c_scan(buf, lsn, ring) == _pure_scan(buf, lsn, ring)
    assert _c_scan(buf, lsn, None) == _pure_scan(buf, lsn, None)


def test_c_scanner_checks_encrypted_mtrs_and_the_examples_above() -> None:
    nonce = bytes(range(8))
    log = _encrypted_mtr([write_record(1, 1, b"secret")], nonce) * 3 + b"\0"
    assert _c_scan(log, 0, None, encrypted=True) == _pure_scan(log, 0, None, encrypted=True)
    assert len(_c_scan(log, 0, None, encrypted=True)[0]) == 3
    first = mtr([write_record(5, 3, b"abc"), bytes((0xB0 | 2, 0, 0))])
    second = mtr([write_record(5, 4, b"x" * 40)])
    buf = first + second + file_checkpoint_mtr(4242) + b"\0" * 10
    assert _c_scan(buf, 10000, None) == _pure_scan(buf, 10000, None)
    assert _c_scan(buf, 10000, None)[0] == [len(first), len(first) + len(second), len(first) + len(second) + 16]
    long_record = mtr([write_record(5, 4, b"L" * 70000)])  # a 3-byte varint length
    assert _c_scan(long_record, 0, None) == _pure_scan(long_record, 0, None) == ([len(long_record)], [len(long_record) - 5], "incomplete")
