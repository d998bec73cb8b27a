"""Which files of a datadir a physical backup copies, and copying them (InnoDB page by page, checked).

InnoDB tablespaces (``ibdata*``, ``undo*``, ``*.ibd``) are read 4 MiB at a time and every page is
validated with its checksum (a whole buffer per call, in C without the GIL when the extension is built); a page that fails is re-read after a pause, because the server may have
been writing it at that instant (a torn read), and is called corrupt only after every re-read
failed. Both sides use direct I/O (``O_DIRECT``) where the filesystem allows it: the pages go from
the disk into the copier's buffer and from there to the disk, with no copy through the page cache
(measured: a fifth to a half of the system CPU of buffered reads and writes, and no page cache
pushed out). The server's own writes stay visible: a direct read first writes back dirty cached
pages of its range. The other files (``.frm``, MyISAM, Aria, CSV, ...) are plain copies taken under the backup
stage that keeps them still. The extensions are mariadb-backup's (``backup_copy.cc``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import mmap
import os
import re
import threading
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
    says so only by the count (the next write gets ENOSPC). A direct-I/O file that refuses a write
    (EINVAL: what is left after a short write is no longer aligned) goes on buffered, so that a full
    disk is still reported as one."""
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
        except OSError as exc:
            if exc.errno != errno.EINVAL or not stop_direct_io(fd):
                raise


# Direct I/O needs buffers, offsets and lengths aligned to the device's block: 4 KiB covers them
# all. Pages smaller than that (ROW_FORMAT=COMPRESSED with KEY_BLOCK_SIZE < 4) are copied buffered.
DIRECT_IO_ALIGNMENT = 4096


def open_direct(path: Path, flags: int, mode: int = 0o640) -> int:
    """``os.open`` with ``O_DIRECT``, or without it on a filesystem that refuses it (tmpfs, some FUSE)."""
    try:
        return os.open(path, flags | os.O_DIRECT, mode)
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
    return os.open(path, flags, mode)


def read_at(fd: int, buffer: memoryview, offset: int) -> int:
    """``os.preadv`` into ``buffer`` at ``offset``; a direct-I/O file that refuses the read (EINVAL:
    an offset left unaligned by a short read) goes on buffered."""
    try:
        return os.preadv(fd, [buffer], offset)
    except OSError as exc:
        if exc.errno != errno.EINVAL or not stop_direct_io(fd):
            raise
    return os.preadv(fd, [buffer], offset)


class ThreadBuffers:
    """One page-aligned buffer of ``size`` bytes per thread (direct I/O needs aligned memory), made
    once per thread and reused for every file it copies."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._local = threading.local()

    def get(self) -> memoryview:
        buffer: mmap.mmap | None = getattr(self._local, "buffer", None)
        if buffer is None:
            buffer = self._local.buffer = mmap.mmap(-1, self.size)  # anonymous: page-aligned, zero-filled
        return memoryview(buffer)


def is_direct(fd: int) -> bool:
    return bool(fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT)


def stop_direct_io(fd: int) -> bool:
    """Turn ``O_DIRECT`` off on ``fd``; False if it was not on."""
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    if not flags & os.O_DIRECT:
        return False
    fcntl.fcntl(fd, fcntl.F_SETFL, flags & ~os.O_DIRECT)
    return True


def drop_behind(fd: int, offset: int, length: int) -> None:
    """Tell the kernel a copied range will not be read again (``POSIX_FADV_DONTNEED``), as
    mariadb-backup does: for a file written, that starts its writeback now (so the fsync before
    "complete" finds little left to do) and lets its pages go once written; for the datadir's file
    read, it drops the pages the copy pulled in. Either way the copy does not push the server's
    and everyone else's pages out of the page cache."""
    os.posix_fadvise(fd, offset, length, os.POSIX_FADV_DONTNEED)


def create_backup_fd(dst: Path, *, direct: bool = False) -> int:
    """A new file of the backup: never over an existing one, readable by its owner and group only
    (a backup holds all the data, like the datadir it comes from); with direct I/O when asked and
    the filesystem has it."""
    dst.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    return open_direct(dst, flags) if direct else os.open(dst, flags, 0o640)


def create_backup_file(dst: Path, compression: str | None = None) -> BinaryIO:
    """:func:`create_backup_fd` as a file object, compressed when asked (under the compressed name)."""
    fd = create_backup_fd(dst.with_name(stored_name(dst.name, compression)))
    return compressing_writer(os.fdopen(fd, "wb"), compression)


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
        self._buffers = ThreadBuffers(TABLESPACE_CHUNK)

    def copy(self, src: Path, dst: Path, relpath: str, flags_hint: int | None,
             on_bytes: Callable[[int], None]) -> CopiedFile:
        buffer = self._buffers.get()
        fd = open_direct(src, os.O_RDONLY)
        try:
            flags = self._flags(fd, buffer, flags_hint)
            page_size = flags.physical_size if flags else self.default_page_size
            if page_size % DIRECT_IO_ALIGNMENT:
                stop_direct_io(fd)
            if not is_direct(fd):
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
            chunk = buffer[:max(1, TABLESPACE_CHUNK // page_size) * page_size]
            if self.compression is not None:
                with create_backup_file(dst, self.compression) as out:
                    copied = self._copy_pages(fd, chunk, out.write, None, relpath, flags, page_size, on_bytes)
                return dataclasses.replace(copied, stored=stored_name(relpath, self.compression))
            out_fd = create_backup_fd(dst, direct=page_size % DIRECT_IO_ALIGNMENT == 0)
            try:
                return self._copy_pages(fd, chunk, lambda view: write_all(out_fd, view), out_fd, relpath, flags,
                                        page_size, on_bytes)
            finally:
                os.close(out_fd)
        finally:
            os.close(fd)

    def _flags(self, fd: int, buffer: memoryview, hint: int | None) -> TablespaceFlags | None:
        page0 = buffer[:self.default_page_size]
        if read_at(fd, page0, 0) >= self.default_page_size and any(page0):
            return TablespaceFlags.from_page0(page0)
        if hint is not None:
            return TablespaceFlags.decode(hint)
        return None  # an empty file or an unknown one with no page 0 yet: copied unchecked

    def _copy_pages(self, fd: int, buffer: memoryview, write: Callable[[memoryview], object], out_fd: int | None,
                    relpath: str, flags: TablespaceFlags | None, page_size: int,
                    on_bytes: Callable[[int], None]) -> CopiedFile:
        """Copy through ``buffer`` (a whole number of pages); ``out_fd``: the uncompressed copy's file,
        whose pages are dropped from the cache as they are written when it is not direct."""
        crc = 0
        offset = 0
        reread = 0
        cached_in = not is_direct(fd)
        cached_out = out_fd is not None and not is_direct(out_fd)
        while True:
            got = read_at(fd, buffer, offset)
            whole = got - got % page_size
            if not whole:
                break  # end of file (a partial page at the end is an extension in progress: redo covers it)
            view = buffer[:whole]
            if flags is not None:
                reread += self._validate(fd, view, offset, relpath, flags, page_size)
            write(view)
            crc = crc32c(view, crc)
            if cached_in:
                drop_behind(fd, offset, whole)
            if cached_out:
                assert out_fd is not None
                drop_behind(out_fd, offset, whole)
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
            page = view[at:at + page_size]
            reason = page_corruption(page, flags) or "checksum mismatch"
            self._reread(fd, page, (offset + at) // page_size, flags, relpath, reason)
            rereads += 1
            start = at + page_size
        return rereads

    def _reread(self, fd: int, page: memoryview, page_no: int, flags: TablespaceFlags, relpath: str,
                reason: str) -> None:
        """Read page ``page_no`` again into ``page`` (its place in the aligned buffer) until it checks out."""
        for _ in range(self.retries):
            time.sleep(self.retry_delay)
            if read_at(fd, page, page_no * len(page)) < len(page):
                raise PageCorrupted(relpath, page_no, "the file shrank under the copy")
            reason_now = page_corruption(page, flags)
            if reason_now is None:
                return
            reason = reason_now
        raise PageCorrupted(relpath, page_no, reason)
