"""InnoDB data pages: the FIL header and trailer, tablespace flags, and page checksum validation.

Layouts follow MariaDB 10.11's ``fil0fil.h`` / ``fsp0types.h`` and the validation follows
``buf_page_is_corrupted()`` in ``buf0buf.cc``. All integers on a page are big-endian.

Two checksum families exist and the tablespace flags on page 0 say which one a file uses:

* **full_crc32** (flag marker bit 4; the default since 10.5): CRC-32C of ``page[0:size-4]`` stored
  in the last 4 bytes, and the low 32 bits of ``FIL_PAGE_LSN`` repeated just before it (the
  torn-page check). ``size`` is smaller for a page-compressed page (encoded in ``FIL_PAGE_TYPE``).
* **legacy** (files from before 10.5 or made with another ``innodb_checksum_algorithm``): a checksum
  in the header (offset 0) and one in the trailer (``size-8``), each of which may be written by the
  ``crc32``, ``innodb`` (fold) or ``none`` (0xDEADBEEF) algorithm; ROW_FORMAT=COMPRESSED pages carry
  one ``page_zip`` checksum at offset 0 instead.
"""

from __future__ import annotations

import functools
import os
import struct
from dataclasses import dataclass
from enum import Enum
from types import ModuleType

import google_crc32c

from binhub.errors import InnodbFormatError

_pages_c: ModuleType | None = None
if os.environ.get("BINHUB_NO_SPEEDUPS", "") in ("", "0"):
    try:
        from binhub._speedups import _pages as _pages_c
    except ImportError:  # not built (no compiler at install time): the pure functions below do the same
        _pages_c = None

# --- FIL header / trailer offsets (fil0fil.h) ----------------------------------------------------------
FIL_PAGE_SPACE_OR_CHKSUM = 0  # legacy checksum; key_version in full_crc32
FIL_PAGE_OFFSET = 4  # page number
FIL_PAGE_PREV = 8
FIL_PAGE_NEXT = 12
FIL_PAGE_LSN = 16
FIL_PAGE_TYPE = 24
FIL_PAGE_FILE_FLUSH_LSN = 26
FIL_PAGE_SPACE_ID = 34
FIL_PAGE_DATA = 38
FIL_PAGE_END_LSN_OLD_CHKSUM = 8  # from the end: legacy checksum (4) + low 32 bits of the LSN (4)
FIL_PAGE_FCRC32_END_LSN = 8  # from the end, full_crc32: low 32 bits of the LSN
FIL_PAGE_FCRC32_CHECKSUM = 4  # from the end, full_crc32: CRC-32C of everything before it

# The tablespace header (FSP) starts at FIL_PAGE_DATA on page 0; its flags word is 16 bytes in.
FSP_HEADER_OFFSET = FIL_PAGE_DATA
FSP_SPACE_ID = 0
FSP_SIZE = 8
FSP_SPACE_FLAGS = 16

BUF_NO_CHECKSUM_MAGIC = 0xDEADBEEF
UNIV_PAGE_SIZE_DEFAULT = 16384
UNIV_PAGE_SIZE_MIN = 4096
UNIV_PAGE_SIZE_MAX = 65536
# In full_crc32, bit 15 of FIL_PAGE_TYPE marks a page-compressed page; the other bits hold its
# stored size in 256-byte units (buf_page_full_crc32_size()).
FIL_PAGE_COMPRESS_FCRC32_MARKER = 15

_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_U16 = struct.Struct(">H")


class PageType(int, Enum):
    """The page types a backup names in messages (``FIL_PAGE_TYPE``); others print as numbers."""

    ALLOCATED = 0
    UNDO_LOG = 2
    INODE = 3
    IBUF_FREE_LIST = 4
    IBUF_BITMAP = 5
    SYS = 6
    TRX_SYS = 7
    FSP_HDR = 8
    XDES = 9
    BLOB = 10
    ZBLOB = 11
    ZBLOB2 = 12
    PAGE_COMPRESSED = 34354
    PAGE_COMPRESSED_ENCRYPTED = 37401
    RTREE = 17854
    INDEX = 17855


@dataclass(frozen=True, slots=True)
class PageHeader:
    """The 38-byte FIL header every page starts with."""

    checksum_or_key_version: int
    page_no: int
    prev: int
    next: int
    lsn: int
    page_type: int
    flush_lsn_or_key_version: int
    space_id: int

    @classmethod
    def parse(cls, page: bytes | bytearray | memoryview) -> PageHeader:
        if len(page) < FIL_PAGE_DATA:
            raise InnodbFormatError(f"a page needs at least {FIL_PAGE_DATA} bytes for its header, got {len(page)}")
        chk, page_no, prev, nxt, lsn, ptype, flush, space = struct.unpack_from(">IIIIQHQI", page, 0)
        return cls(chk, page_no, prev, nxt, lsn, ptype, flush, space)


@dataclass(frozen=True, slots=True)
class TablespaceFlags:
    """``FSP_SPACE_FLAGS`` decoded: which checksum, the logical page size, and the physical (zip) size.

    Two layouts (fsp0types.h): full_crc32 (marker bit 4; page_ssize in bits 0..3, compression
    algorithm in bits 5..7) and the older one (zip_ssize in bits 1..4, page_ssize in bits 6..9,
    page_compression in bit 16), where page_ssize 0 means 16 KiB.
    """

    raw: int
    full_crc32: bool
    page_size: int  # logical page size
    zip_size: int  # ROW_FORMAT=COMPRESSED physical page size; 0 when not compressed
    page_compressed: bool

    @property
    def physical_size(self) -> int:
        """How many bytes one page takes in the file."""
        return self.zip_size or self.page_size

    @classmethod
    def decode(cls, flags: int) -> TablespaceFlags:
        if flags & 0x10:  # FSP_FLAGS_FCRC32_MASK_MARKER
            ssize = flags & 0xF
            if not 3 <= ssize <= 7:
                raise InnodbFormatError(f"full_crc32 tablespace flags 0x{flags:x} give an impossible page size")
            return cls(flags, True, 512 << ssize, 0, bool((flags >> 5) & 0x7))
        zip_ssize = (flags >> 1) & 0xF
        ssize = (flags >> 6) & 0xF
        page_size = UNIV_PAGE_SIZE_DEFAULT if ssize == 0 else 512 << ssize
        if not UNIV_PAGE_SIZE_MIN <= page_size <= UNIV_PAGE_SIZE_MAX or zip_ssize > 5:
            raise InnodbFormatError(f"tablespace flags 0x{flags:x} give an impossible page size")
        zip_size = 512 << zip_ssize if zip_ssize else 0
        return cls(flags, False, page_size, zip_size, bool((flags >> 16) & 1))

    @classmethod
    def from_page0(cls, page0: bytes | bytearray | memoryview) -> TablespaceFlags:
        """Read the flags from the first page of a tablespace file."""
        if len(page0) < FSP_HEADER_OFFSET + FSP_SPACE_FLAGS + 4:
            raise InnodbFormatError("the file is too short to hold a tablespace header")
        return cls.decode(_U32.unpack_from(page0, FSP_HEADER_OFFSET + FSP_SPACE_FLAGS)[0])


def space_id_of_page0(page0: bytes | bytearray | memoryview) -> int:
    return int(_U32.unpack_from(page0, FSP_HEADER_OFFSET + FSP_SPACE_ID)[0])


def crc32c(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """CRC-32C (Castagnoli), the checksum of full_crc32 pages and of the 10.8+ redo log."""
    if _pages_c is not None:  # any buffer, no copy, and without the GIL for large ones
        return int(_pages_c.crc32c(data, crc))
    # google_crc32c takes bytes only; copying a 16 KiB page costs far less than the call around it.
    if not isinstance(data, bytes):
        data = bytes(data)
    return int(google_crc32c.extend(crc, data))


# --- the legacy algorithms ------------------------------------------------------------------------------

_MASK64 = (1 << 64) - 1
_UT_HASH_RANDOM_MASK = 1463735687
_UT_HASH_RANDOM_MASK2 = 1653893711


def _fold_binary(data: bytes | bytearray | memoryview) -> int:
    """``ut_fold_binary()``: InnoDB's original page hash, on 64-bit ``ulint`` as the server computes it."""
    fold = 0
    for byte in bytes(data):
        fold = ((((fold ^ byte ^ _UT_HASH_RANDOM_MASK2) << 8) + fold) ^ _UT_HASH_RANDOM_MASK) + byte
        fold &= _MASK64
    return fold


def legacy_crc32_checksum(page: bytes | bytearray | memoryview) -> int:
    """``buf_calc_page_crc32()``: CRC-32C of the header after the checksum and of the body before the trailer."""
    size = len(page)
    return crc32c(page[FIL_PAGE_OFFSET:FIL_PAGE_FILE_FLUSH_LSN]) ^ crc32c(page[FIL_PAGE_DATA:size - FIL_PAGE_END_LSN_OLD_CHKSUM])


def innodb_new_checksum(page: bytes | bytearray | memoryview) -> int:
    """``buf_calc_page_new_checksum()``: the ``innodb`` algorithm's header checksum."""
    size = len(page)
    return (_fold_binary(page[FIL_PAGE_OFFSET:FIL_PAGE_FILE_FLUSH_LSN])
            + _fold_binary(page[FIL_PAGE_DATA:size - FIL_PAGE_END_LSN_OLD_CHKSUM])) & 0xFFFFFFFF


def innodb_old_checksum(page: bytes | bytearray | memoryview) -> int:
    """``buf_calc_page_old_checksum()``: the ``innodb`` algorithm's trailer checksum."""
    return _fold_binary(page[:FIL_PAGE_FILE_FLUSH_LSN]) & 0xFFFFFFFF


def page_zip_checksum(page: bytes | bytearray | memoryview) -> int:
    """``page_zip_calc_checksum()`` (crc32 variant) of a ROW_FORMAT=COMPRESSED page."""
    return (crc32c(page[FIL_PAGE_OFFSET:FIL_PAGE_LSN]) ^ crc32c(page[FIL_PAGE_TYPE:FIL_PAGE_TYPE + 2])
            ^ crc32c(page[FIL_PAGE_SPACE_ID:]))


def full_crc32_stored_size(page: bytes | bytearray | memoryview) -> tuple[int, bool]:
    """``buf_page_full_crc32_size()``: (bytes covered by the checksum, page-compressed?).

    Raises InnodbFormatError when the compressed size the type field claims exceeds the page.
    """
    ptype = _U16.unpack_from(page, FIL_PAGE_TYPE)[0]
    if not ptype & (1 << FIL_PAGE_COMPRESS_FCRC32_MARKER):
        return len(page), False
    stored = (ptype & ~(1 << FIL_PAGE_COMPRESS_FCRC32_MARKER)) << 8
    if stored >= len(page):
        raise InnodbFormatError(f"page-compressed size {stored} is not below the page size {len(page)}")
    if stored < FIL_PAGE_DATA + FIL_PAGE_FCRC32_END_LSN:
        raise InnodbFormatError(f"page-compressed size {stored} cannot hold a page header and checksum")
    return stored, True


@functools.cache
def _zeros(size: int) -> bytes:
    return bytes(size)


def _is_zero(data: bytes | bytearray | memoryview) -> bool:
    # bytes == bytes is one memcmp; any() or a memoryview comparison visits every byte in Python.
    raw = data if isinstance(data, bytes) else bytes(data)
    return raw == _zeros(len(raw))


def page_corruption(page: bytes | bytearray | memoryview, flags: TablespaceFlags) -> str | None:
    """Why ``page`` fails validation (``buf_page_is_corrupted()``), or None when it is valid.

    ``page`` is one physical page (``flags.physical_size`` bytes). An all-zero page is valid: files
    are extended with zeros and a page not yet written is legitimately empty.
    """
    size = len(page)
    if size != flags.physical_size:
        raise InnodbFormatError(f"page of {size} bytes, expected {flags.physical_size}")
    if flags.full_crc32:
        return _full_crc32_corruption(page)
    if flags.zip_size:
        return _zip_corruption(page)
    return _legacy_corruption(page)


class ChecksumAlgorithm(int, Enum):
    """Which check a tablespace's pages get (the codes of ``binhub/_speedups/_pages.c``)."""

    FULL_CRC32 = 0
    LEGACY = 1  # crc32, innodb or none, in the header and the trailer
    PAGE_ZIP = 2  # ROW_FORMAT=COMPRESSED

    @classmethod
    def of(cls, flags: TablespaceFlags) -> ChecksumAlgorithm:
        if flags.full_crc32:
            return cls.FULL_CRC32
        return cls.PAGE_ZIP if flags.zip_size else cls.LEGACY


def first_corrupt_page(pages: bytes | bytearray | memoryview, flags: TablespaceFlags) -> int | None:
    """The index of the first page of ``pages`` (a whole number of ``flags.physical_size`` pages)
    that :func:`page_corruption` rejects, or None when all are valid. In C when the extension is
    built (one call per buffer, the GIL released: the copy threads check pages side by side)."""
    size = flags.physical_size
    if len(pages) % size:
        raise InnodbFormatError(f"{len(pages)} bytes are not a whole number of {size}-byte pages")
    if _pages_c is not None:
        bad = _pages_c.first_corrupt_page(pages, size, ChecksumAlgorithm.of(flags))
        return None if bad < 0 else bad
    return first_corrupt_page_pure(pages, flags)


def first_corrupt_page_pure(pages: bytes | bytearray | memoryview, flags: TablespaceFlags) -> int | None:
    """:func:`first_corrupt_page` in Python, page by page: the twin the C version is tested against."""
    view = memoryview(pages)
    size = flags.physical_size
    for index in range(len(view) // size):
        if page_corruption(view[index * size:(index + 1) * size], flags) is not None:
            return index
    return None


def _full_crc32_corruption(page: bytes | bytearray | memoryview) -> str | None:
    try:
        size, compressed = full_crc32_stored_size(page)
    except InnodbFormatError as exc:
        return str(exc)
    stored = _U32.unpack_from(page, size - FIL_PAGE_FCRC32_CHECKSUM)[0]
    if stored == 0 and size == len(page) and _is_zero(page):
        return None
    computed = crc32c(page[:size - FIL_PAGE_FCRC32_CHECKSUM])
    if stored != computed:
        return f"full_crc32 checksum 0x{stored:08x} != computed 0x{computed:08x}"
    key_version = _U32.unpack_from(page, 0)[0]
    if not compressed and not key_version:
        lsn_low = _U32.unpack_from(page, FIL_PAGE_LSN + 4)[0]
        end_lsn = _U32.unpack_from(page, size - FIL_PAGE_FCRC32_END_LSN)[0]
        if lsn_low != end_lsn:
            return f"torn page: LSN low bits 0x{lsn_low:08x} in the header, 0x{end_lsn:08x} in the trailer"
    return None


def _legacy_corruption(page: bytes | bytearray | memoryview) -> str | None:
    size = len(page)
    lsn_low = _U32.unpack_from(page, FIL_PAGE_LSN + 4)[0]
    end_lsn = _U32.unpack_from(page, size - FIL_PAGE_END_LSN_OLD_CHKSUM + 4)[0]
    if lsn_low != end_lsn:
        return f"torn page: LSN low bits 0x{lsn_low:08x} in the header, 0x{end_lsn:08x} in the trailer"
    field1 = _U32.unpack_from(page, FIL_PAGE_SPACE_OR_CHKSUM)[0]
    field2 = _U32.unpack_from(page, size - FIL_PAGE_END_LSN_OLD_CHKSUM)[0]
    if field1 == 0 and field2 == 0 and _is_zero(page):
        return None
    if field1 == field2 == BUF_NO_CHECKSUM_MAGIC:
        return None
    crc = legacy_crc32_checksum(page)
    if field1 == crc and field2 == crc:
        return None
    # The innodb algorithm; a trailer equal to the LSN's low bits comes from files older than 4.0.14.
    if field1 == innodb_new_checksum(page) and field2 in (innodb_old_checksum(page), lsn_low):
        return None
    return f"legacy checksums 0x{field1:08x}/0x{field2:08x} match none of crc32, innodb, none"


def _zip_corruption(page: bytes | bytearray | memoryview) -> str | None:
    stored = _U32.unpack_from(page, FIL_PAGE_SPACE_OR_CHKSUM)[0]
    if stored == 0 and _is_zero(page):
        return None
    if stored == BUF_NO_CHECKSUM_MAGIC:
        return None
    computed = page_zip_checksum(page)
    if stored != computed:
        return f"compressed-page checksum 0x{stored:08x} != computed 0x{computed:08x}"
    return None

