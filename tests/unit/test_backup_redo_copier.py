"""The redo copier on a server-format ib_logfile0 ring made here: wrap-around, sequence bits, overrun."""

from __future__ import annotations

from pathlib import Path

import pytest

from binhub.backup.redo_copier import RedoCopier
from binhub.errors import RedoOverrun
from binhub.innodb import (
    START_OFFSET,
    Checkpoint,
    LogHeader,
    RedoRing,
    ScanStop,
    newest_checkpoint,
    scan_mtrs,
)
from binhub.innodb.redo import CHECKPOINT_1, CHECKPOINT_2
from tests.innodb_factory import mtr, write_record

CAPACITY = 4096
FIRST_LSN = 12288


class ServerLog:
    """A circular ib_logfile0 the way the server writes it: header, checkpoint blocks, the ring."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.ring = RedoRing(START_OFFSET + CAPACITY, FIRST_LSN)
        path.write_bytes(LogHeader(FIRST_LSN, "MariaDB 10.11.19").encode().ljust(START_OFFSET + CAPACITY, b"\0"))
        self.lsn = FIRST_LSN
        self.server_lsn = FIRST_LSN

    def checkpoint(self, lsn: int, block: int = CHECKPOINT_1) -> None:
        with open(self.path, "r+b") as f:
            f.seek(block)
            f.write(Checkpoint(lsn, lsn).encode())

    def append(self, payload: bytes) -> bytes:
        """Write one mini-transaction at the end of the log, with the sequence bit of its lap."""
        records = [write_record(5, 3, payload)]
        body_len = len(mtr(records)) - 5
        data = mtr(records, self.ring.sequence_bit(self.lsn + body_len))
        with open(self.path, "r+b") as f:
            done = 0
            for at, n in self.ring.spans(self.lsn, len(data)):
                f.seek(at)
                f.write(data[done:done + n])
                done += n
        self.lsn += len(data)
        self.server_lsn = self.lsn
        return data


def _copier(log: ServerLog, out: Path) -> RedoCopier:
    return RedoCopier(log.path, out, lsn_probe=lambda: log.server_lsn, creator="Backup 10.11.19", interval=0.01)


def test_the_copy_crosses_the_ring_end_and_rewrites_sequence_bits(tmp_path: Path) -> None:
    log = ServerLog(tmp_path / "ib_logfile0")
    for _ in range(30):  # most of a lap, then the start of the next: checkpoint near the end
        log.append(b"a" * 100)
    start = log.lsn
    log.checkpoint(start)
    written = [log.append(bytes([65 + i]) * 120) for i in range(20)]  # crosses the end, lap 2 has bit 0
    assert log.ring.sequence_bit(log.lsn) == 0
    out = tmp_path / "backup_ib_logfile0"
    copier = _copier(log, out)
    try:
        assert copier.start_lsn == start
        assert copier.copy_available() == sum(map(len, written))
        assert copier.copied_lsn == log.lsn
    finally:
        copier.close()
    backup = out.read_bytes()
    assert newest_checkpoint(backup[:START_OFFSET]) == Checkpoint(start, start)
    assert LogHeader.parse(backup).first_lsn == start
    scan = scan_mtrs(backup[START_OFFSET:], start, lambda lsn: 1)  # a backup's log never wraps
    assert (scan.length, scan.stop) == (len(backup) - START_OFFSET, ScanStop.INCOMPLETE)
    assert [backup[START_OFFSET + at] for at in scan.sequence_positions] == [1] * 20


def test_new_log_is_copied_on_the_next_poll(tmp_path: Path) -> None:
    log = ServerLog(tmp_path / "ib_logfile0")
    log.checkpoint(FIRST_LSN)
    log.append(b"first")
    copier = _copier(log, tmp_path / "out")
    try:
        first = copier.copy_available()
        assert copier.copy_available() == 0
        second = log.append(b"second")
        assert copier.copy_available() == len(second)
        assert copier.copied_lsn == FIRST_LSN + first + len(second)
    finally:
        copier.close()


def test_a_checkpoint_past_the_copy_is_fine_until_the_server_is_a_ring_ahead(tmp_path: Path) -> None:
    log = ServerLog(tmp_path / "ib_logfile0")
    log.checkpoint(FIRST_LSN)
    for _ in range(5):
        log.append(b"x" * 200)
    copier = _copier(log, tmp_path / "out")
    try:
        copied = copier.copy_available()
        for _ in range(5):
            log.append(b"y" * 200)
        log.checkpoint(log.lsn, CHECKPOINT_2)  # the server checkpointed past what we copied
        log.server_lsn = FIRST_LSN + copied + CAPACITY - 1  # but has not reused that space yet
        copier.copy_available()
        assert copier.copied_lsn == log.lsn

        for _ in range(25):  # now it writes more than a whole ring past the copy
            log.append(b"z" * 200)
        log.checkpoint(log.lsn)
        with pytest.raises(RedoOverrun, match="innodb_log_file_size") as caught:
            copier.copy_available()
        assert f"the copy reached LSN {copier.copied_lsn}" in str(caught.value)
    finally:
        copier.close()


def test_the_copy_ends_at_the_consistent_point_not_at_what_the_server_wrote_after_it(tmp_path: Path) -> None:
    # Log written after the LSN read under BLOCK_COMMIT (after BACKUP STAGE END: commits going on,
    # some prepared for the binlog but not in it yet) must stay out of the copy, however far the
    # server's log is ahead when the copier reaches that LSN.
    log = ServerLog(tmp_path / "ib_logfile0")
    log.checkpoint(FIRST_LSN)
    log.append(b"before")
    out = tmp_path / "out"
    copier = RedoCopier(log.path, out, lsn_probe=lambda: log.server_lsn, creator="Backup 10.11.19", interval=3600)
    try:
        copier.start()  # copies what is there, then sleeps for the interval
        kept = [log.append(b"under BLOCK_COMMIT %d" % i) for i in range(3)]
        assert copier.end_at(lambda: log.lsn) == log.lsn
        end = log.lsn
        for i in range(5):
            log.append(b"after END %d" % i)
        copier.wait_for(end, timeout=10)
        copier.copy_available()  # a poll after the end changes nothing
    finally:
        copier.close()
    assert copier.copied_lsn == end
    backup = out.read_bytes()
    assert len(backup) == START_OFFSET + end - FIRST_LSN == copier.written[0]
    assert backup.endswith(b"".join(kept))
    assert b"after END" not in backup


def test_a_consistent_point_inside_a_mini_transaction_ends_the_copy_after_it(tmp_path: Path) -> None:
    log = ServerLog(tmp_path / "ib_logfile0")
    log.checkpoint(FIRST_LSN)
    first = log.append(b"one")
    second = log.append(b"two")
    log.append(b"three")
    copier = _copier(log, tmp_path / "out")
    try:
        copier.end_at(lambda: FIRST_LSN + len(first) + 1)
        copier.copy_available()
        assert copier.copied_lsn == FIRST_LSN + len(first) + len(second)
    finally:
        copier.close()
