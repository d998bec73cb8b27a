"""Which files of a datadir a physical backup copies, and copying them (InnoDB page by page, checked).

InnoDB tablespaces (``ibdata*``, ``undo*``, ``*.ibd``) are read 4 MiB at a time and every page is
validated with its checksum (a whole buffer per call, in C without the GIL when the extension is built); a page that fails is re-read after a pause, because the server may have
been writing it at that instant (a torn read), and is called corrupt only after every re-read
failed. The other files (``.frm``, MyISAM, Aria, CSV, ...) are plain copies taken under the backup
stage that keeps them still. The extensions are mariadb-backup's (``backup_copy.cc``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import re
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from binhub.backup.compression import compressing_writer, stored_name
from binhub.errors import PageCorrupted, TargetFull
from binhub.innodb import TablespaceFlags, crc32c, first_corrupt_page, page_corruption

CHUNK = 1 << 20
# Tablespaces are read 4 MiB at a time: a quarter of the system calls of mariadb-backup's 1 MiB, and
# each buffer's pages are checked in one call.
TABLESPACE_CHUNK = 4 << 20
# Files of a database directory worth copying (mariadb-backup's ext_list plus db.opt).
NON_INNODB_EXTENSIONS = frozenset({
    ".frm", ".isl", ".MYD", ".MYI", ".MAD", ".MAI", ".MRG", ".TRG", ".TRN", ".ARM", ".ARZ", ".CSM", ".CSV",
    ".opt", ".par",
})
_SYSTEM_TABLESPACE = re.compile(r"^(ibdata\d+|undo\d{3})$")
_ARIA_LOG = re.compile(r"^aria_log\.\d{8}$")
# Aria's control file and logs go last: recovery needs a log at least as new as the tables.
ARIA_LOG_CONTROL = "aria_log_control"
# Tables BACKUP STAGE keeps writable until BLOCK_COMMIT (sql/backup.cc: "except statistics and log tables").
COMMIT_STAGE_TABLES = frozenset({"table_stats", "column_stats", "index_stats", "general_log", "slow_log"})


@dataclass(frozen=True, slots=True)
class DatadirFile:
    """A file to copy, by its path relative to the datadir (the same path in the backup)."""

    relpath: str
    size: int


@dataclass(frozen=True, slots=True)
class DatadirInventory:
    """The files to copy, grouped by the backup stage that keeps them still.

    ``other``: the other engines' tables and every table's metadata, frozen from BLOCK_DDL on (which
    waits for running writes to non-transactional tables and flushes them). ``at_commit``: what
    BACKUP STAGE leaves writable until BLOCK_COMMIT, the statistics and log tables, then Aria's logs.
    """

    innodb: list[DatadirFile]
    other: list[DatadirFile]
    at_commit: list[DatadirFile]

    @property
    def every_file(self) -> list[DatadirFile]:
        return self.innodb + self.other + self.at_commit

    @staticmethod
    def size_of(files: list[DatadirFile]) -> int:
        return sum(f.size for f in files)


@dataclass(frozen=True, slots=True)
class CopiedFile:
    """What the manifest says about one copied file."""

    relpath: str
    size: int
    crc32c: str  # CRC-32C of the whole copy, 8 hex digits: catches bit rot and truncation at ~7 GB/s
    pages_reread: int = 0
    stored: str | None = None  # the compressed file's name (size and crc32c are of the uncompressed bytes)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def take_inventory(datadir: Path) -> DatadirInventory:
    """List the InnoDB tablespaces and the other engines' files of ``datadir`` (largest InnoDB first,
    so that N threads finish together)."""
    innodb: list[DatadirFile] = []
    other: list[DatadirFile] = []
    at_commit: list[DatadirFile] = []
    aria_logs: list[DatadirFile] = []
    for entry in sorted(datadir.iterdir()):
        name = entry.name
        if entry.is_file():
            if _SYSTEM_TABLESPACE.match(name):
                innodb.append(DatadirFile(name, _size(entry)))
            elif _ARIA_LOG.match(name) or name == ARIA_LOG_CONTROL:
                aria_logs.append(DatadirFile(name, _size(entry)))
            continue
        if not entry.is_dir() or name.startswith(("#", ".")) or name == "lost+found":
            continue
        for path in sorted(entry.iterdir()):
            if not path.is_file() or path.name.startswith("#sql"):
                continue  # #sql-*: a running ALTER's scratch table
            rel = f"{name}/{path.name}"
            if path.suffix == ".ibd":
                innodb.append(DatadirFile(rel, _size(path)))
            elif path.suffix in NON_INNODB_EXTENSIONS:
                commit_stage = name == "mysql" and path.stem in COMMIT_STAGE_TABLES
                (at_commit if commit_stage else other).append(DatadirFile(rel, _size(path)))
    # aria_log_control first, then the logs in order: the control file names the newest log.
    aria_logs.sort(key=lambda f: (f.relpath != ARIA_LOG_CONTROL, f.relpath))
    innodb.sort(key=lambda f: -f.size)
    return DatadirInventory(innodb, other, at_commit + aria_logs)


# ENOSPC and EDQUOT: the disk or the quota is full; EFBIG: the file outgrew RLIMIT_FSIZE (SIGXFSZ ignored).
OUT_OF_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
BACKUP_DISK_FULL = "free space on the backup's disk or choose another --to; the partial backup is marked incomplete"
BACKUP_DISK_FULL_AT_START = ("free space on the backup's disk or choose another --to; nothing was copied and the "
                             "source was not locked")


@contextlib.contextmanager
def naming_a_full_disk(path: Path, hint: str) -> Iterator[None]:
    """Turn running out of space while writing ``path`` into a :class:`TargetFull` that names it
    (a bare OSError from ``write()`` names no file); other errors pass unchanged."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in OUT_OF_SPACE:
            raise
        raise TargetFull(str(path), f"no space left on its disk ({exc.strerror})", hint=hint) from exc


def write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    """``os.write`` until every byte is written: a disk filling up first writes part of a buffer and
    says so only by the count (the next write gets ENOSPC)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def drop_behind(fd: int, offset: int, length: int) -> None:
    """Tell the kernel a copied range will not be read again (``POSIX_FADV_DONTNEED``), as
    mariadb-backup does: for a file written, that starts its writeback now (so the fsync before
    "complete" finds little left to do) and lets its pages go once written; for the datadir's file
    read, it drops the pages the copy pulled in. Either way the copy does not push the server's
    and everyone else's pages out of the page cache."""
    os.posix_fadvise(fd, offset, length, os.POSIX_FADV_DONTNEED)


def create_backup_file(dst: Path, compression: str | None = None) -> BinaryIO:
    """A new file of the backup: never over an existing one, readable by its owner and group only
    (a backup holds all the data, like the datadir it comes from); compressed when asked, under
    the compressed name."""
    dst.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = dst.with_name(stored_name(dst.name, compression))
    return compressing_writer(os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640), "wb"),
                              compression)


def sync_to_disk(files: list[Path], threads: int = 4) -> None:
    """fsync copied files (in ``threads``) and then their directories, before the manifest may call
    the backup complete. Done once at the end, after the backup locks are released, rather than per
    file while they are held."""

    def fsync(path: Path) -> None:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    with ThreadPoolExecutor(threads, thread_name_prefix="binhub-fsync") as pool:
        list(pool.map(fsync, files))
    for directory in sorted({path.parent for path in files}, key=lambda p: -len(p.parts)):
        fsync(directory)


def describe_file(root: Path, relpath: str, compression: str | None = None) -> CopiedFile:
    """Size and CRC-32C of a file already in the backup (the redo log its copier wrote, by offset),
    which is then replaced by its compressed copy when asked."""
    if compression is not None:
        copied = copy_plain_file(root / relpath, root / relpath, relpath, lambda n: None, compression)
        os.unlink(root / relpath)
        return copied
    crc = size = 0
    with open(root / relpath, "rb") as f:
        while chunk := f.read(CHUNK):
            crc = crc32c(chunk, crc)
            size += len(chunk)
    return CopiedFile(relpath, size, f"{crc:08x}")


def copy_plain_file(src: Path, dst: Path, relpath: str, on_bytes: Callable[[int], None],
                    compression: str | None = None) -> CopiedFile:
    """Copy a file as it is (the caller holds the backup stage that keeps it still)."""
    crc = 0
    size = 0
    with open(src, "rb") as fin, create_backup_file(dst, compression) as fout:
        while chunk := fin.read(CHUNK):
            fout.write(chunk)
            crc = crc32c(chunk, crc)
            if compression is None:
                drop_behind(fout.fileno(), size, len(chunk))
            size += len(chunk)
            on_bytes(len(chunk))
    return CopiedFile(relpath, size, f"{crc:08x}", stored=stored_name(relpath, compression) if compression else None)


class TablespaceCopier:
    """Copies one InnoDB tablespace, validating every page.

    ``flags_hint`` is InnoDB's own idea of the tablespace's flags (from information_schema): a file
    created after the last checkpoint may still have an all-zero page 0 on disk, its pages living only
    in the buffer pool and the redo log; then the hint says how to check the pages that are there.
    """

    def __init__(self, *, default_page_size: int, retries: int, retry_delay: float,
                 compression: str | None = None) -> None:
        self.compression = compression
        self.default_page_size = default_page_size
        self.retries = retries
        self.retry_delay = retry_delay

    def copy(self, src: Path, dst: Path, relpath: str, flags_hint: int | None,
             on_bytes: Callable[[int], None]) -> CopiedFile:
        fd = os.open(src, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
            flags = self._flags(fd, flags_hint)
            with create_backup_file(dst, self.compression) as out:
                copied = self._copy_pages(fd, out, relpath, flags, on_bytes)
            if self.compression is None:
                return copied
            return dataclasses.replace(copied, stored=stored_name(relpath, self.compression))
        finally:
            os.close(fd)

    def _flags(self, fd: int, hint: int | None) -> TablespaceFlags | None:
        page0 = os.pread(fd, self.default_page_size, 0)
        if len(page0) >= self.default_page_size and any(page0):
            return TablespaceFlags.from_page0(page0)
        if hint is not None:
            return TablespaceFlags.decode(hint)
        return None  # an empty file or an unknown one with no page 0 yet: copied unchecked

    def _copy_pages(self, fd: int, sink: BinaryIO, relpath: str, flags: TablespaceFlags | None,
                    on_bytes: Callable[[int], None]) -> CopiedFile:
        crc = 0
        page_size = flags.physical_size if flags else self.default_page_size
        buffer = bytearray(max(1, TABLESPACE_CHUNK // page_size) * page_size)  # reused: no allocation per read
        offset = 0
        reread = 0
        while True:
            got = os.preadv(fd, [buffer], offset)
            whole = got - got % page_size
            if not whole:
                break  # end of file (a partial page at the end is an extension in progress: redo covers it)
            view = memoryview(buffer)[:whole]
            if flags is not None:
                reread += self._validate(fd, view, offset, relpath, flags, page_size)
            sink.write(view)
            crc = crc32c(view, crc)
            drop_behind(fd, offset, whole)
            if self.compression is None:
                drop_behind(sink.fileno(), offset, whole)
            offset += whole
            on_bytes(whole)
        return CopiedFile(relpath, offset, f"{crc:08x}", reread)

    def _validate(self, fd: int, view: memoryview, offset: int, relpath: str, flags: TablespaceFlags,
                  page_size: int) -> int:
        """Check every page of ``view`` (in C when built, one call for the whole chunk); re-read the bad
        ones into it. Returns how many pages were re-read."""
        rereads = 0
        start = 0
        while (bad := first_corrupt_page(view[start:], flags)) is not None:
            at = start + bad * page_size
            page_no = (offset + at) // page_size
            reason = page_corruption(view[at:at + page_size], flags) or "checksum mismatch"
            view[at:at + page_size] = self._reread(fd, page_no, page_size, flags, relpath, reason)
            rereads += 1
            start = at + page_size
        return rereads

    def _reread(self, fd: int, page_no: int, page_size: int, flags: TablespaceFlags, relpath: str,
                reason: str) -> bytes:
        for _ in range(self.retries):
            time.sleep(self.retry_delay)
            page = os.pread(fd, page_size, page_no * page_size)
            if len(page) < page_size:
                raise PageCorrupted(relpath, page_no, "the file shrank under the copy")
            reason_now = page_corruption(page, flags)
            if reason_now is None:
                return page
            reason = reason_now
        raise PageCorrupted(relpath, page_no, reason)
