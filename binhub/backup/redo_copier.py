"""Copy the server's circular ``ib_logfile0`` into the backup's linear one, from the checkpoint on.

The copy starts at the newest checkpoint LSN when the backup starts, so that recovery of the copied
data files (each copied at some moment after it) can replay every change they may be missing. It
runs in its own thread until it reaches the LSN of the consistent point, read under BACKUP STAGE
BLOCK_COMMIT (:meth:`RedoCopier.end_at`), and it ends exactly there, at that mini-transaction's
end, as mariadb-backup's copy does: once BACKUP STAGE END lets commits go on, the server's log holds
transactions prepared for the binlog but not yet in it (and others committed after the backup's
binlog position); recovery of a copy holding them would commit what the binlog position leaves out,
or find a "prepared transaction" it may not resolve.

Reads use ``os.pread`` into private buffers, never mmap: a mapping shows bytes the server is
overwriting at that instant (mariadb-backup's "Missing FILE_CHECKPOINT" race). Only whole
mini-transactions whose sequence bit and CRC-32C check out are copied; their end byte is written as
1 because the copy never wraps (as mariadb-backup does), so ``mariadb-backup --prepare`` and a plain
``mariadbd`` read it like a log that was never full.

Overrun: the server reuses log space below its checkpoint. Once its checkpoint has passed the LSN
we copied up to, the bytes we read may belong to the next lap; they are trusted only while the
server's current LSN is still less than one ring capacity past them. Otherwise the backup fails,
naming ``innodb_log_file_size``.
"""

from __future__ import annotations

import bisect
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from binhub.backup.datafiles import BACKUP_DISK_FULL, naming_a_full_disk, write_all
from binhub.errors import BackupError, BinhubError, RedoOverrun
from binhub.innodb import (
    START_OFFSET,
    Checkpoint,
    LogHeader,
    MtrScan,
    RedoRing,
    ScanStop,
    backup_log_header,
    crc32c,
    newest_checkpoint,
    scan_ring,
)

log = logging.getLogger("binhub.backup")

READ_SIZE = 4 << 20  # bytes of log read per pread; more than two of the largest mini-transactions


class RedoCopier:
    """Owns the read side (the server's log) and the write side (the backup's log) of the redo copy.

    ``lsn_probe`` returns the server's current LSN; it is called from the copier's thread only, and
    only when the server's checkpoint has overtaken the copy.
    """

    def __init__(self, server_log: Path, backup_log: Path, *, lsn_probe: Callable[[], int], creator: str,
                 interval: float, on_progress: Callable[[int], None] | None = None) -> None:
        self.server_log = server_log
        self.backup_log = backup_log
        self._lsn_probe = lsn_probe
        self._interval = interval
        self._on_progress = on_progress
        self._fd = os.open(server_log, os.O_RDONLY)
        try:
            self._inode = os.fstat(self._fd).st_ino
            area = os.pread(self._fd, START_OFFSET, 0)
            header = LogHeader.parse(area)
            if header.encrypted:
                raise BackupError("the redo log is encrypted (innodb_encrypt_log=ON); binhub cannot copy it yet")
            self.checkpoint: Checkpoint = newest_checkpoint(area)
            self.ring = RedoRing(os.fstat(self._fd).st_size, header.first_lsn)
            self._out = os.open(backup_log, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        except BaseException:
            os.close(self._fd)
            raise
        head = backup_log_header(self.checkpoint.lsn, self.checkpoint, creator)
        try:
            with naming_a_full_disk(self.backup_log, BACKUP_DISK_FULL):
                write_all(self._out, head)
        except BaseException:
            os.close(self._out)
            os.close(self._fd)
            raise
        self._written = len(head)  # what the copy's file holds, and its CRC-32C (for the manifest)
        self._crc = crc32c(head)
        self.start_lsn = self.checkpoint.lsn
        self._copied = self.start_lsn
        self._stop_at: int | None = None  # the consistent point: nothing past it is copied
        self._step = threading.Lock()  # held by the thread while it reads, scans and writes one chunk
        self._error: BaseException | None = None
        self._closing = threading.Event()
        self._wake = threading.Event()  # cuts a poll interval short: a target LSN was set, or close()
        self._advanced = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="binhub-redo-copier", daemon=True)

    @property
    def written(self) -> tuple[int, int]:
        """(size, CRC-32C) of the backup's log file as written so far."""
        return self._written, self._crc

    @property
    def copied_lsn(self) -> int:
        """The LSN just past the last mini-transaction written to the backup's log."""
        return self._copied

    # --- the copy ----------------------------------------------------------------------------------------

    def copy_available(self) -> int:
        """Copy every complete mini-transaction the server has written; return how many bytes were added."""
        added = 0
        while True:
            with self._step:
                scan, reached_end = self._copy_step()
            added += scan.length
            if reached_end or scan.stop is not ScanStop.INCOMPLETE or not scan.length:
                return added

    def _copy_step(self) -> tuple[MtrScan, bool]:
        """Copy the whole mtrs of one read (none past the consistent point); True once it is reached."""
        stop_at = self._stop_at
        if stop_at is not None and self._copied >= stop_at:
            return MtrScan([], [], ScanStop.END_OF_LOG), True
        self._check_same_file()
        length = min(READ_SIZE, self.ring.capacity)
        data = b"".join(os.pread(self._fd, n, at) for at, n in self.ring.spans(self._copied, length))
        scan = _up_to(scan_ring(data, self._copied, self.ring), None if stop_at is None else stop_at - self._copied)
        self._check_not_overrun(scan.length)
        if scan.length:
            chunk = self._with_fresh_bits(data, scan)
            with naming_a_full_disk(self.backup_log, BACKUP_DISK_FULL):
                write_all(self._out, chunk)
            self._crc = crc32c(chunk, self._crc)
            self._written += len(chunk)
            self._copied += scan.length
            with self._advanced:
                self._advanced.notify_all()
            if self._on_progress is not None:
                self._on_progress(self._copied)
        return scan, stop_at is not None and self._copied >= stop_at

    def _with_fresh_bits(self, data: bytes, scan: MtrScan) -> bytes | bytearray:
        """The scanned mtrs with every end byte 1 (the copy never wraps); as read when all are 1 already."""
        ring, start, end = self.ring, self._copied, self._copied + scan.length - 1
        if ring.lap(start) == ring.lap(end) and ring.sequence_bit(start) == 1:
            return data[:scan.length]
        chunk = bytearray(memoryview(data)[:scan.length])
        for at in scan.sequence_positions:
            chunk[at] = 1
        return chunk

    def _check_not_overrun(self, length: int) -> None:
        """Raise RedoOverrun if the bytes just read from ``copied_lsn`` may already be the next lap's."""
        current_checkpoint = newest_checkpoint(os.pread(self._fd, START_OFFSET, 0))
        if current_checkpoint.lsn <= self._copied:
            return  # the server may not write past checkpoint + capacity: our bytes are intact
        server_lsn = self._lsn_probe()
        if server_lsn >= self._copied + self.ring.capacity:
            raise RedoOverrun(
                f"the server overwrote redo log not yet copied: the copy reached LSN {self._copied} but the "
                f"server is at LSN {server_lsn}, more than the {self.ring.capacity}-byte log ahead",
                hint=f"increase innodb_log_file_size (now {self.ring.file_size}) so the log holds the writes "
                     "of a whole backup, or back up at a quieter time",
            )

    def _check_same_file(self) -> None:
        try:
            inode = os.stat(self.server_log).st_ino
        except FileNotFoundError:
            inode = -1
        if inode != self._inode:
            raise BackupError(f"{self.server_log} was replaced while the backup copied it "
                              "(an online innodb_log_file_size change?); start the backup again")

    # --- the thread --------------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        try:
            while True:
                self.copy_available()
                if self._stop_at is not None and self._copied >= self._stop_at:
                    return
                # Once the coordinator waits for a target LSN, poll briskly: it holds BLOCK_COMMIT.
                self._wake.wait(self._interval if self._stop_at is None else 0.02)
                self._wake.clear()
                if self._closing.is_set():
                    return
        except BaseException as exc:  # handed to the coordinator by wait_for() / finish()
            self._error = exc
            log.debug("redo copier failed", exc_info=True)
        finally:
            with self._advanced:
                self._advanced.notify_all()

    def end_at(self, read_lsn: Callable[[], int]) -> int:
        """Make the LSN ``read_lsn`` returns (the server's, under BLOCK_COMMIT) the end of the copy, and
        return it. No read of the server's log is in flight meanwhile: whatever the copy read before
        holds only log written before that LSN, and every read after it stops there."""
        with self._step:
            lsn = read_lsn()
            self._stop_at = lsn
        self._wake.set()
        return lsn

    def wait_for(self, lsn: int, timeout: float) -> None:
        """Block until the copy has reached ``lsn`` (its end: see :meth:`end_at`); raise the copier's
        error, or BackupError on timeout."""
        if self._stop_at is None:
            with self._step:
                self._stop_at = lsn
        self._wake.set()
        deadline = time.monotonic() + timeout
        with self._advanced:
            while self._copied < lsn:
                self._raise_error()
                if not self._thread.is_alive():
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._advanced.wait(min(left, 0.1))
        self._raise_error()
        if self._copied < lsn:
            raise BackupError(f"the redo copy stopped at LSN {self._copied} before the consistent point {lsn}",
                              hint="the server may not have written its log that far; check its error log")

    def check(self) -> None:
        """Raise the copier's error now, if it has failed (the data copy stops early instead of finishing in vain)."""
        self._raise_error()

    def _raise_error(self) -> None:
        if self._error is None:
            return
        if isinstance(self._error, BinhubError):
            raise self._error
        raise BackupError(f"the redo copy failed: {self._error}") from self._error

    def close(self) -> None:
        """Stop the thread (if running) and close both files (the coordinator fsyncs the copy)."""
        self._closing.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join()
        os.close(self._out)
        os.close(self._fd)


def _up_to(scan: MtrScan, limit: int | None) -> MtrScan:
    """``scan`` cut after the first mtr that ends at or past buffer offset ``limit`` (the consistent
    point, an mtr's end: the server counts its LSN in whole mtrs)."""
    if limit is None or scan.length < limit:
        return scan
    last = bisect.bisect_left(scan.ends, limit) + 1
    return MtrScan(scan.ends[:last], scan.sequence_positions[:last], ScanStop.END_OF_LOG)
