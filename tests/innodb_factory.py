"""Redo log pieces built from MariaDB's definitions (mtr0log.h, log0recv.cc), for the codec and copier tests."""

from __future__ import annotations

import struct

from binhub.innodb import crc32c
from binhub.innodb.redo import encode_varint


def mtr(records: list[bytes], sequence_bit: int = 1) -> bytes:
    """A mini-transaction: the records, the end byte (sequence bit), the CRC-32C of the records."""
    body = b"".join(records)
    return body + bytes((sequence_bit,)) + struct.pack(">I", crc32c(body))


def write_record(space: int, page: int, payload: bytes) -> bytes:
    """A WRITE record (type 0x30) at offset 0 of page (space, page)."""
    rest = encode_varint(space) + encode_varint(page) + encode_varint(0) + payload
    if len(rest) < 16:
        return bytes((0x30 | len(rest),)) + rest
    # A longer record: length nibble 0, then a varint; rlen = addlen + 15 counts the varint bytes too.
    for lenlen in range(1, 6):
        extra = encode_varint(len(rest) + lenlen - 15)
        if len(extra) == lenlen:
            return bytes((0x30,)) + extra + rest
    raise AssertionError("record too long")
