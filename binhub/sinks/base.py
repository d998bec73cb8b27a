"""What every sink is: the small interface a stream writes through, and the checkpoint it keeps.

A sink receives the lines of one transaction after another (:meth:`Sink.write`), is told where each
transaction ends in the store (:meth:`Sink.transaction_end`), and makes everything up to the last
end durable together with that position (:meth:`Sink.commit`): where the output ends and where the
stream resumes are one fact, so a restart after ``kill -9`` neither loses nor repeats a change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from binhub.errors import DiskFull, StorageError
from binhub.store.fsutil import storage_error

__all__ = ["Checkpoint", "Sink", "output_error"]

@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Where the stream stands: after the transaction ending at ``file:pos`` of the store."""

    file: str
    pos: int
    gtid_set: str  # executed through that transaction ("" when the store has no GTIDs)
    out_file: str = ""  # the output file holding the transaction's last line, and where it ends
    out_offset: int = 0


class Sink(Protocol):
    def resume_point(self) -> Checkpoint | None:
        """The checkpoint of a previous run (None: start fresh)."""

    def write(self, data: bytes) -> None:
        """Append lines (each ends with a newline) of the current transaction."""

    def transaction_end(self, checkpoint: Checkpoint) -> None:
        """Everything written so far belongs to complete transactions, the last ending at ``checkpoint``."""

    def commit(self) -> None:
        """Make everything up to the last transaction end durable, with its checkpoint."""

    def close(self) -> None: ...


def output_error(exc: OSError, what: str, *, disk_full_hint: str) -> StorageError:
    """The store's translation of an OSError, with what to do when the sink's own disk is full."""
    error = storage_error(exc, what)
    if isinstance(error, DiskFull):
        error.hint = disk_full_hint
    return error
