"""InnoDB page checksums, with vectors built from the server's definitions (fil0fil.h, buf0buf.cc).

Real files of a running server are checked in tests/integration/test_innodb_files.py.
"""

from __future__ import annotations

import random
import struct

import google_crc32c
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from binhub.errors import InnodbFormatError
from binhub.innodb import PageHeader, TablespaceFlags, crc32c, first_corrupt_page, page_corruption
from binhub.innodb.page import (
    BUF_NO_CHECKSUM_MAGIC,
    ChecksumAlgorithm,
    first_corrupt_page_pure,
    innodb_new_checksum,
    innodb_old_checksum,
    legacy_crc32_checksum,
    page_zip_checksum,
)

FULL_CRC32_16K = TablespaceFlags.decode(0x15)  # marker | page_ssize 5, as ibdata1 of a 10.11 server
LEGACY_16K = TablespaceFlags.decode(0x21)  # ROW_FORMAT=DYNAMIC (post-antelope + atomic blobs)


def _random_page(size: int = 16384, *, lsn: int = 0x1122334455667788, seed: int = 1) -> bytearray:
    page = bytearray(random.Random(seed).randbytes(size))
    struct.pack_into(">IIIIQH", page, 0, 0, 7, 6, 8, lsn, 17855)
    return page


def full_crc32_page(size: int = 16384, **kw: int) -> bytearray:
    page = _random_page(size, **kw)
    page[size - 8:size - 4] = page[20:24]
    struct.pack_into(">I", page, size - 4, crc32c(page[:size - 4]))
    return page


def legacy_crc32_page(size: int = 16384) -> bytearray:
    page = _random_page(size)
    page[size - 4:] = page[20:24]
    crc = legacy_crc32_checksum(page)
    struct.pack_into(">I", page, 0, crc)
    struct.pack_into(">I", page, size - 8, crc)
    return page


def test_crc32c_is_castagnoli() -> None:
    assert crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value (RFC 3720)
    assert crc32c(b"6789", crc32c(b"12345")) == 0xE3069283


def test_flags_decode_both_layouts() -> None:
    assert (FULL_CRC32_16K.full_crc32, FULL_CRC32_16K.page_size, FULL_CRC32_16K.zip_size) == (True, 16384, 0)
    assert TablespaceFlags.decode(0x13).page_size == 4096
    assert (LEGACY_16K.full_crc32, LEGACY_16K.page_size) == (False, 16384)
    compressed = TablespaceFlags.decode(0x29)  # zip_ssize 4 = 8 KiB, ROW_FORMAT=COMPRESSED KEY_BLOCK_SIZE=8
    assert (compressed.zip_size, compressed.physical_size) == (8192, 8192)
    assert TablespaceFlags.decode(0x10 | 0x15 | (1 << 5)).page_compressed
    with pytest.raises(InnodbFormatError, match="impossible page size"):
        TablespaceFlags.decode(0x10 | 0x1)


def test_header_fields() -> None:
    header = PageHeader.parse(full_crc32_page())
    assert (header.page_no, header.prev, header.next, header.lsn, header.page_type) == (7, 6, 8, 0x1122334455667788, 17855)


def test_full_crc32_valid_zero_and_corrupt() -> None:
    page = full_crc32_page()
    assert page_corruption(page, FULL_CRC32_16K) is None
    assert page_corruption(bytes(16384), FULL_CRC32_16K) is None
    flipped = bytearray(page)
    flipped[5000] ^= 0x40
    assert "full_crc32 checksum" in (page_corruption(flipped, FULL_CRC32_16K) or "")


def test_full_crc32_torn_page_is_caught_even_with_a_good_crc() -> None:
    page = full_crc32_page()
    page[16384 - 8:16384 - 4] = b"\0\0\0\1"  # the trailer LSN of an older write
    struct.pack_into(">I", page, 16384 - 4, crc32c(page[:16384 - 4]))
    assert "torn page" in (page_corruption(page, FULL_CRC32_16K) or "")
    struct.pack_into(">I", page, 0, 5)  # encrypted (key_version != 0): the LSN check does not apply
    struct.pack_into(">I", page, 16384 - 4, crc32c(page[:16384 - 4]))
    assert page_corruption(page, FULL_CRC32_16K) is None


def test_full_crc32_page_compressed_covers_only_the_stored_bytes() -> None:
    page = bytearray(16384)
    page[:4096] = _random_page(4096)
    struct.pack_into(">H", page, 24, (1 << 15) | (4096 >> 8))
    struct.pack_into(">I", page, 4096 - 4, crc32c(page[:4096 - 4]))
    page[5000] = 0x99  # beyond the stored size: not covered by the checksum
    assert page_corruption(page, FULL_CRC32_16K) is None
    page[100] ^= 1
    assert page_corruption(page, FULL_CRC32_16K) is not None


def test_legacy_crc32_innodb_and_none() -> None:
    page = legacy_crc32_page()
    assert page_corruption(page, LEGACY_16K) is None
    page[3000] ^= 1
    assert "legacy checksums" in (page_corruption(page, LEGACY_16K) or "")

    fold = _random_page()
    fold[16384 - 4:] = fold[20:24]
    struct.pack_into(">I", fold, 0, innodb_new_checksum(fold))
    struct.pack_into(">I", fold, 16384 - 8, innodb_old_checksum(fold))
    assert page_corruption(fold, LEGACY_16K) is None

    none = _random_page()
    none[16384 - 4:] = none[20:24]
    struct.pack_into(">I", none, 0, BUF_NO_CHECKSUM_MAGIC)
    struct.pack_into(">I", none, 16384 - 8, BUF_NO_CHECKSUM_MAGIC)
    assert page_corruption(none, LEGACY_16K) is None

    torn = legacy_crc32_page()
    torn[16384 - 1] ^= 1
    assert "torn page" in (page_corruption(torn, LEGACY_16K) or "")


def test_innodb_fold_matches_ut_fold_binary() -> None:
    # ut_fold_ulint_pair on 64-bit ulint, folded byte by byte, worked by hand for b"\x01":
    # ((((0 ^ 1 ^ 1653893711) << 8) + 0) ^ 1463735687) + 1, truncated to 32 bits
    page = bytearray(16384)
    page[4] = 1
    expected_new = (((((0 ^ 1 ^ 1653893711) << 8) + 0) ^ 1463735687) + 1)
    fold = expected_new
    for _ in range(21):  # the 21 zero bytes after it up to FIL_PAGE_FILE_FLUSH_LSN
        fold = (((((fold ^ 0 ^ 1653893711) << 8) + fold) ^ 1463735687) + 0) & (2**64 - 1)
    body = 0
    for _ in range(16384 - 38 - 8):
        body = (((((body ^ 0 ^ 1653893711) << 8) + body) ^ 1463735687) + 0) & (2**64 - 1)
    assert innodb_new_checksum(page) == (fold + body) & 0xFFFFFFFF


def test_compressed_page_checksum() -> None:
    flags = TablespaceFlags.decode(0x29)
    page = _random_page(8192)
    struct.pack_into(">I", page, 0, page_zip_checksum(page))
    assert page_corruption(page, flags) is None
    page[40] ^= 1
    assert "compressed-page checksum" in (page_corruption(page, flags) or "")


def test_wrong_page_length_is_an_error() -> None:
    with pytest.raises(InnodbFormatError, match="expected 16384"):
        page_corruption(bytes(4096), FULL_CRC32_16K)


# --- a whole buffer at once: the C check (binhub/_speedups/_pages.c) against its pure twin ----------------

COMPRESSED_8K = TablespaceFlags.decode(0x29)


def _fold_page() -> bytearray:
    page = _random_page(seed=3)
    page[16384 - 4:] = page[20:24]
    struct.pack_into(">I", page, 0, innodb_new_checksum(page))
    struct.pack_into(">I", page, 16384 - 8, innodb_old_checksum(page))
    return page


def _zip_page() -> bytearray:
    page = _random_page(8192, seed=4)
    struct.pack_into(">I", page, 0, page_zip_checksum(page))
    return page


def _page_compressed(stored: int) -> bytearray:
    page = bytearray(16384)
    page[:stored] = _random_page(stored, seed=5)
    struct.pack_into(">H", page, 24, (1 << 15) | (stored >> 8))
    struct.pack_into(">I", page, stored - 4, crc32c(page[:stored - 4]))
    return page


def _encrypted_torn() -> bytearray:  # a good CRC and mismatched LSNs, but key_version != 0: valid
    page = full_crc32_page(seed=6)
    page[16384 - 8:16384 - 4] = b"\0\0\0\1"
    struct.pack_into(">I", page, 0, 5)
    struct.pack_into(">I", page, 16384 - 4, crc32c(page[:16384 - 4]))
    return page


# Valid pages of each kind (the corruptions below are applied to them), per set of flags.
KINDS = {
    "full_crc32": (FULL_CRC32_16K, [full_crc32_page(seed=s) for s in (1, 2)] + [bytearray(16384), _encrypted_torn(),
                                                                             _page_compressed(4096)]),
    "legacy": (LEGACY_16K, [legacy_crc32_page(), _fold_page(), bytearray(16384)]),
    "compressed": (COMPRESSED_8K, [_zip_page(), bytearray(8192)]),
}

def _c_first_bad(buf: bytes, flags: TablespaceFlags) -> int | None:
    pages = pytest.importorskip("binhub._speedups._pages", reason="the C extension is not built")
    bad = pages.first_corrupt_page(buf, flags.physical_size, ChecksumAlgorithm.of(flags))
    return None if bad < 0 else int(bad)


@settings(max_examples=300, deadline=None)
@given(kind=st.sampled_from(sorted(KINDS)), picks=st.lists(st.integers(0, 10), min_size=1, max_size=6),
       target=st.integers(0, 5), at=st.integers(0, 16383), bits=st.integers(1, 255),
       field=st.sampled_from(["byte", "type", "trailer", "lsn", "magic"]))
def test_c_check_agrees_with_the_pure_one(kind: str, picks: list[int], target: int, at: int, bits: int,
                                          field: str) -> None:
    flags, valid = KINDS[kind]
    size = flags.physical_size
    pages = [bytearray(valid[i % len(valid)]) for i in picks]
    page = pages[target % len(pages)]
    if field == "byte":
        page[at % size] ^= bits
    elif field == "type":  # a page-compressed marker with any stored size, 0 included
        struct.pack_into(">H", page, 24, 0x8000 | (at % 256))
    elif field == "trailer":
        page[size - 1 - at % 8] ^= bits
    elif field == "lsn":
        page[16 + at % 8] ^= bits
    else:
        struct.pack_into(">I", page, 0, BUF_NO_CHECKSUM_MAGIC)
        struct.pack_into(">I", page, size - 8, BUF_NO_CHECKSUM_MAGIC if bits % 2 else 0)
    buf = b"".join(pages)
    expected = first_corrupt_page_pure(buf, flags)
    assert _c_first_bad(buf, flags) == expected
    assert first_corrupt_page(buf, flags) == expected


def test_every_valid_kind_passes_and_a_flip_is_found_in_both() -> None:
    for flags, valid in KINDS.values():
        buf = bytearray(b"".join(valid))
        assert first_corrupt_page_pure(buf, flags) is None
        assert _c_first_bad(bytes(buf), flags) is None
        last = len(valid) - 1 if any(valid[-1]) else 0
        buf[last * flags.physical_size + 100] ^= 1
        assert first_corrupt_page_pure(buf, flags) == last
        assert _c_first_bad(bytes(buf), flags) == last


def test_a_compressed_size_too_small_for_a_header_is_corrupt_not_a_crash() -> None:
    page = bytearray(16384)
    struct.pack_into(">H", page, 24, 0x8000)  # stored size 0
    assert "cannot hold" in (page_corruption(page, FULL_CRC32_16K) or "")
    assert _c_first_bad(bytes(page), FULL_CRC32_16K) == 0


def test_a_buffer_of_part_pages_is_refused() -> None:
    with pytest.raises(InnodbFormatError, match="whole number"):
        first_corrupt_page(bytes(16384 + 5), FULL_CRC32_16K)


@given(data=st.binary(max_size=70000), crc=st.integers(0, 2**32 - 1))
def test_c_crc32c_is_google_crc32c(data: bytes, crc: int) -> None:
    pages = pytest.importorskip("binhub._speedups._pages", reason="the C extension is not built")
    assert pages.crc32c(data, crc) == google_crc32c.extend(crc, data)
    assert pages.crc32c(memoryview(data)[1:]) == google_crc32c.value(data[1:])
