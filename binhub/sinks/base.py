"""What every sink is: the small interface a stream writes through, and the checkpoint it keeps.

A sink receives the lines of one transaction after another (:meth:`Sink.write`), is told where each
transaction ends in the store (:meth:`Sink.transaction_end`), and makes everything up to the last
end durable together with that position (:meth:`Sink.commit`): where the output ends and where the
stream resumes are one fact, so a restart after ``kill -9`` neither loses nor repeats a change.

A destination that routes and keys each change (Kafka: a topic per table, the primary key as the
message key) is a :class:`KeyedSink`: instead of lines it is sent :class:`Message` objects, one per
change, with the same ``transaction_end``/``commit`` contract. A destination that turns changes back
into values (the MySQL sink) is a :class:`ChangeSink`: it is handed the decoder's
:class:`~binhub.binlog.changes.RowChange` records themselves, values in binhub form, instead of
JSON lines it would parse again (DDL still comes as a binhub JSON line through ``write``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from binhub.errors import DiskFull, StorageError
from binhub.frozen import fast_init
from binhub.store.fsutil import storage_error

if TYPE_CHECKING:  # the relay imports this module: the row decoder is not loaded for an annotation
    from binhub.binlog.changes import RowChange

__all__ = ["ChangeSink", "Checkpoint", "CheckpointSource", "KeyedSink", "Message", "Sink", "output_error"]

@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Where the stream stands: after the transaction ending at ``file:pos`` of the store."""

    file: str
    pos: int
    gtid_set: str  # executed through that transaction ("" when the store has no GTIDs)
    out_file: str = ""  # the output file holding the transaction's last line, and where it ends
    out_offset: int = 0
    offsets: str = ""  # where a source beyond the store stands (``binhub apply``'s Kafka offsets), as JSON

    def checkpoint(self) -> Checkpoint:
        """A checkpoint is its own :class:`CheckpointSource`."""
        return self


class CheckpointSource(Protocol):
    """A transaction end as :meth:`Sink.transaction_end` is given it. :meth:`checkpoint` renders the
    :class:`Checkpoint` (it prints the executed GTID set), which a sink asks for only when it writes
    it (once per commit, not once per transaction), for the last transaction end it was given, or
    for each as it is given it: the stream works the GTID sets out forward only."""

    def checkpoint(self) -> Checkpoint: ...


@fast_init  # one per event: see binhub.frozen
@dataclass(frozen=True, slots=True)
class Message:
    """One change in a stream's output format, with what routes it.

    ``value`` is the text of whole lines, each ending with a newline: exactly one line for a
    :class:`KeyedSink` unless ``keys`` is given; line sinks may be given several at once (a rows
    event's). ``value`` None is a tombstone (Debezium's after a delete: the key alone, for log
    compaction), which only keyed sinks deliver. ``key`` is the primary key's JSON (the whole row's
    for a table without one; None for DDL and when unknown). ``keys``: a keyed sink's changes of
    one table given at once (a rows event's binhub lines): one key per line of ``value``, in order,
    so that a million rows need not be a million objects on their way to Kafka. ``topic`` names a
    Kafka topic of the format's own (Debezium's schema-change and transaction topics), where the
    sink's routing would not put it."""

    db: str
    table: str  # "" for a statement on a database (CREATE DATABASE …)
    key: bytes | None
    value: bytes | None
    ddl: bool = False
    topic: str | None = None
    rows: Sequence[RowChange] | None = None  # a rows event's changes as records, for a ChangeSink (value None)
    keys: list[bytes] | None = None


class Sink(Protocol):
    def resume_point(self) -> Checkpoint | None:
        """The checkpoint of a previous run (None: start fresh)."""

    def write(self, data: bytes) -> None:
        """Append lines (each ends with a newline) of the current transaction."""

    def transaction_end(self, end: CheckpointSource) -> None:
        """Everything written so far belongs to complete transactions, the last ending at ``end``."""

    def commit(self) -> None:
        """Make everything up to the last transaction end durable, with its checkpoint."""

    def close(self) -> None: ...


@runtime_checkable
class KeyedSink(Sink, Protocol):
    """A sink that takes one :class:`Message` per change (with its table and key) instead of lines."""

    def send(self, messages: list[Message]) -> None:
        """Deliver the messages (of the current transaction) in order; durable at :meth:`commit`."""


@runtime_checkable
class ChangeSink(Sink, Protocol):
    """A sink that takes row changes as :class:`~binhub.binlog.changes.RowChange` records (binhub form
    values straight from the decoder: no JSON round trip, and a JSON column's JSON ``null`` stays
    apart from SQL NULL); DDL lines still come through :meth:`Sink.write`."""

    def write_changes(self, changes: Sequence[RowChange]) -> None:
        """The row changes (of one rows event) of the current transaction, in order."""


def output_error(exc: OSError, what: str, *, disk_full_hint: str) -> StorageError:
    """The store's translation of an OSError, with what to do when the sink's own disk is full."""
    error = storage_error(exc, what)
    if isinstance(error, DiskFull):
        error.hint = disk_full_hint
    return error
