"""Reading binlog and relay-log files event by event.

A file is the 4-byte magic ``\\xfebin`` followed by events laid end to end, each announcing its own
size in its header. The first event is a Format_description (FDE) that says whether the others
carry a CRC32. Relay logs may hold more than one FDE (the replica's, then the source's), so the
reader switches to every FDE it meets.

The reader pulls the file in chunks of at least 1 MiB and slices events out of the buffer, so
small events cost no system call each.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, TypeVar

from binhub.binlog.checksum import verify_checksum
from binhub.binlog.constants import BINLOG_MAGIC, CHECKSUM_SIZE, HEADER_SIZE, ChecksumAlg, EventType
from binhub.binlog.decode import decode_format_description
from binhub.binlog.events import FormatDescriptionEvent
from binhub.binlog.header import EventHeader
from binhub.errors import InvalidEvent, TruncatedEvent

if TYPE_CHECKING:
    from binhub.binlog.changes import EventWalker, RowChange, SchemaLookup

CHUNK_SIZE = 1 << 20
T = TypeVar("T")
_FDE = EventType.FORMAT_DESCRIPTION


@dataclass(frozen=True, slots=True)
class RawEvent:
    """One complete event as stored: ``data`` includes header and CRC; ``offset`` is where it starts."""

    offset: int
    header: EventHeader
    data: bytes

    @property
    def end(self) -> int:
        return self.offset + len(self.data)


class BinlogFileReader:
    """Iterate the events of a binlog file object, verifying CRCs and tracking the current FDE.

    ``position`` is the offset just after the last complete event returned: the place where a
    torn file can safely be cut, or where a follower resumes reading.
    """

    def __init__(self, fileobj: BinaryIO, name: str = "", *, start: int = 4, verify_checksums: bool = True) -> None:
        if start < len(BINLOG_MAGIC):
            raise ValueError(f"start offset {start} is inside the binlog magic; use 4 or more")
        self._f = fileobj
        self.name = name or str(getattr(fileobj, "name", "")) or "<binlog>"
        self.verify_checksums = verify_checksums
        self.fde: FormatDescriptionEvent | None = None
        self._check_magic()
        if start > len(BINLOG_MAGIC):
            # The checksum setting of events in the middle of a file comes from the FDE at offset 4.
            self._read_fde_at_start()
        self.position = start
        self._buf = b""
        self._buf_offset = start  # file offset of self._buf[0]
        self._f.seek(start)
        self._eof = False

    def _check_magic(self) -> None:
        self._f.seek(0)
        magic = self._f.read(len(BINLOG_MAGIC))
        if magic == BINLOG_MAGIC:
            return
        if BINLOG_MAGIC.startswith(magic):
            raise TruncatedEvent(f"file is {len(magic)} bytes long, shorter than the binlog magic",
                                 file=self.name, offset=0)
        raise InvalidEvent(f"not a binlog file: it starts with {magic.hex()} instead of fe62696e ('\\xfebin')",
                           file=self.name, offset=0,
                           hint="check the path; binlog files are named like mysql-bin.000001")

    def _read_fde_at_start(self) -> None:
        self._f.seek(len(BINLOG_MAGIC))
        head = self._f.read(HEADER_SIZE)
        if len(head) < HEADER_SIZE:
            return
        header = EventHeader.unpack(head)
        if header.type_code != _FDE:
            return  # a file without an FDE at 4 (very old or hand-made): assume CRC32 like decode_event
        data = head + self._f.read(header.event_size - HEADER_SIZE)
        if len(data) == header.event_size:
            self.fde = self._take_fde(header, data, len(BINLOG_MAGIC))

    def _take_fde(self, header: EventHeader, data: bytes, offset: int) -> FormatDescriptionEvent:
        try:
            fde = decode_format_description(header, data)
        except InvalidEvent as exc:
            raise InvalidEvent(exc.message, file=self.name, offset=offset) from None
        if self.verify_checksums and fde.checksum_alg == ChecksumAlg.CRC32:
            verify_checksum(data, file=self.name, offset=offset)
        return fde

    def _fill(self, pos: int, need: int) -> int:
        """Make ``need`` bytes available from buffer index ``pos``; return the new index of that byte."""
        if len(self._buf) - pos >= need or self._eof:
            return pos
        keep = self._buf[pos:]
        self._buf_offset += pos
        chunks = [keep]
        have = len(keep)
        while have < need:
            chunk = self._f.read(max(CHUNK_SIZE, need - have))
            if not chunk:
                self._eof = True
                break
            chunks.append(chunk)
            have += len(chunk)
        self._buf = b"".join(chunks)
        return 0

    def __iter__(self) -> Iterator[RawEvent]:
        pos = self.position - self._buf_offset
        while True:
            pos = self._fill(pos, HEADER_SIZE)
            available = len(self._buf) - pos
            offset = self._buf_offset + pos
            if available == 0:
                return
            if available < HEADER_SIZE:
                raise TruncatedEvent(
                    f"the file ends inside an event header: {available} of 19 bytes after the last complete "
                    f"event", file=self.name, offset=offset, hint=self._truncation_hint(offset))
            try:
                header = EventHeader.unpack(self._buf, pos)
            except InvalidEvent as exc:
                raise InvalidEvent(exc.message, file=self.name, offset=offset) from None
            size = header.event_size
            pos = self._fill(pos, size)
            available = len(self._buf) - pos
            if available < size:
                raise TruncatedEvent(
                    f"the file ends inside a {header.type_name} event: it declares {size} bytes but only "
                    f"{available} are present", file=self.name, offset=offset, hint=self._truncation_hint(offset))
            data = self._buf[pos:pos + size]
            if header.type_code == _FDE:
                self.fde = self._take_fde(header, data, offset)
            elif self.verify_checksums and (self.fde is None or self.fde.checksum_size):
                if size < HEADER_SIZE + CHECKSUM_SIZE:
                    raise InvalidEvent(f"{header.type_name} event of {size} bytes has no room for its CRC32",
                                       file=self.name, offset=offset)
                verify_checksum(data, file=self.name, offset=offset)
            pos += size
            self.position = offset + size
            yield RawEvent(offset, header, data)

    @staticmethod
    def _truncation_hint(offset: int) -> str:
        return (f"the writer stopped mid-event (crash, full disk or a copy still running); the last complete "
                f"event ends at offset {offset}, which is where the file can be cut")


def read_events(path: str | Path, *, start: int = 4, verify_checksums: bool = True) -> Iterator[RawEvent]:
    """Open ``path`` and yield its events (see BinlogFileReader)."""
    with open(path, "rb") as f:
        yield from BinlogFileReader(f, str(path), start=start, verify_checksums=verify_checksums)



def _walk(path: str | Path, walker: EventWalker[T], start: int, verify_checksums: bool) -> Iterator[T]:
    with open(path, "rb") as f:
        reader = BinlogFileReader(f, Path(path).name, start=start, verify_checksums=verify_checksums)
        for event in reader:
            yield from walker.feed(event.data, event.offset, reader.fde)


def row_changes(path: str | Path, *, start: int = 4, schemas: SchemaLookup | None = None,
                verify_checksums: bool = True) -> Iterator[RowChange]:
    """Open ``path`` and yield the row changes of its events (see binhub.binlog.changes)."""
    from binhub.binlog.changes import RowChangeDecoder  # the row decoder: readers of raw events skip it

    return _walk(path, RowChangeDecoder(Path(path).name, schemas=schemas), start, verify_checksums)


def row_json_lines(path: str | Path, *, start: int = 4, schemas: SchemaLookup | None = None,
                   verify_checksums: bool = True) -> Iterator[bytes]:
    """Open ``path`` and yield binhub JSON lines, one chunk per rows event (see binhub.binlog.row_json)."""
    from binhub.binlog.row_json import RowJsonDecoder  # imports orjson and the C extension

    return _walk(path, RowJsonDecoder(Path(path).name, schemas=schemas), start, verify_checksums)
