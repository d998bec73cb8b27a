"""What is in a binlog file, and whether a set of files is sound.

``summarize`` reads one file (headers, GTIDs, times) for ``binhub binlog ls``; ``verify_files``
checks CRCs, event positions and the ROTATE chain between files, and names the first bad file and
offset. Both work on any binlog files, inside a store or not.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from binhub.binlog.constants import BINLOG_MAGIC, HEADER_SIZE, EventType
from binhub.binlog.decode import decode_event
from binhub.binlog.events import FormatDescriptionEvent
from binhub.binlog.file import BinlogFileReader
from binhub.binlog.transaction import TransactionTracker
from binhub.errors import BinlogError, InvalidEvent
from binhub.store.state import UpstreamIdentity


@dataclass(frozen=True, slots=True)
class FileSummary:
    name: str
    size: int
    events: int
    transactions: int
    first_gtid: str
    last_gtid: str
    first_timestamp: int
    last_timestamp: int
    in_use: bool
    server_version: str
    checksum: str
    next_file: str  # from the closing ROTATE, "" if none


def summarize(path: Path) -> FileSummary:
    """One pass over ``path``: counts, first/last GTID and event time, the in-use flag."""
    size = path.stat().st_size
    events = transactions = 0
    first_gtid = last_gtid = ""
    first_ts = last_ts = 0
    in_use = False
    version = checksum = next_file = ""
    tracker = TransactionTracker()
    with open(path, "rb") as f:
        reader = BinlogFileReader(f, path.name, verify_checksums=False)
        for ev in reader:
            events += 1
            ts = ev.header.timestamp
            if ts:
                first_ts = first_ts or ts
                last_ts = max(last_ts, ts)
            kind = ev.header.type_code
            if kind == EventType.FORMAT_DESCRIPTION and isinstance(reader.fde, FormatDescriptionEvent):
                version = reader.fde.server_version
                checksum = reader.fde.checksum_alg.name
                in_use = in_use or bool(ev.header.flags & 0x1)
            crc = reader.fde.checksum_size if reader.fde else 4
            done = tracker.transactions
            if tracker.feed(ev.data, crc) and tracker.transactions != done:
                transactions += 1
                if tracker.last_gtid is not None:
                    text = str(tracker.last_gtid)
                    first_gtid = first_gtid or text
                    last_gtid = text
            if kind == EventType.ROTATE:
                next_file = bytes(ev.data[HEADER_SIZE + 8 : len(ev.data) - crc]).decode(errors="replace")
    return FileSummary(path.name, size, events, transactions, first_gtid, last_gtid, first_ts, last_ts,
                       in_use, version, checksum, next_file)


def identity_from_file(path: Path) -> UpstreamIdentity:
    """The upstream identity a file carries (for imports): flavour, server_id and FDE from its header."""
    from binhub.store.store import fde_fingerprint

    with open(path, "rb") as f:
        reader = BinlogFileReader(f, path.name, verify_checksums=False)
        for ev in reader:
            fde = reader.fde
            if ev.header.type_code != EventType.FORMAT_DESCRIPTION or fde is None:
                break
            return UpstreamIdentity(flavour=fde.flavour, server_id=ev.header.server_id,
                                    base_name=path.name.rsplit(".", 1)[0], version=fde.server_version,
                                    first_fde_sha256=fde_fingerprint(ev.data))
    raise InvalidEvent("does not start with a FORMAT_DESCRIPTION event", file=path.name, offset=4)


@dataclass
class VerifyReport:
    files: int = 0
    events: int = 0
    bytes: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_files(paths: Iterable[Path], *, limit: int | None = None) -> VerifyReport:
    """Check every CRC, that each event ends where its header says, and the ROTATE chain.

    A file that ends inside an event is reported as truncated. Verification stops at the first
    problem in a file (later offsets would be meaningless) but goes on with the next file.
    """
    report = VerifyReport()
    expected_next = ""
    for path in paths:
        report.files += 1
        if expected_next and path.name != expected_next:
            report.problems.append(f"{path.name}: the previous file rotates to {expected_next}, not to this file")
        expected_next = ""
        try:
            expected_next = _verify_one(path, report)
        except BinlogError as exc:
            report.problems.append(str(exc))
        except OSError as exc:
            report.problems.append(f"{path}: cannot read: {exc.strerror or exc}")
        if limit is not None and len(report.problems) >= limit:
            break
    return report


def _verify_one(path: Path, report: VerifyReport) -> str:
    next_file = ""
    relay_log = False
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size < len(BINLOG_MAGIC):
            raise InvalidEvent("shorter than the 4-byte binlog header", file=path.name, offset=0)
        reader = BinlogFileReader(f, path.name, verify_checksums=True)
        for ev in reader:
            report.events += 1
            report.bytes += ev.header.event_size
            end = ev.offset + ev.header.event_size
            if ev.header.type_code == EventType.FORMAT_DESCRIPTION and ev.offset > 4:
                relay_log = True  # relay logs hold the primary's FDE too; positions are the primary's
            if not relay_log and ev.header.log_pos and ev.header.log_pos != end:
                raise InvalidEvent(
                    f"event {ev.header.type_name} says it ends at {ev.header.log_pos} but ends at {end}",
                    file=path.name, offset=ev.offset)
            if ev.header.type_code == EventType.ROTATE and not relay_log:
                event = decode_event(ev.data, reader.fde)
                next_file = str(getattr(event, "next_file", ""))
    return next_file
