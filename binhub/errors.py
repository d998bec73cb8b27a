"""One error hierarchy for binhub.

Every error a user can see is a :class:`BinhubError`. Messages are one sentence a DBA can act on:
what failed, why, and (in ``hint``) what to do about it.

    BinhubError
    ├── ConfigError (ValueError)           bad config file / env / flag; names the key
    ├── ProtocolError                      the peer broke the MySQL protocol
    │   ├── MalformedPacket
    │   └── UnexpectedPacket
    ├── UpstreamError                      the upstream server answered with an ERR packet (code, sqlstate)
    │   └── AuthenticationFailed
    ├── ConnectionFailed                   could not reach / lost the upstream (retryable)
    ├── EndOfDump                          the upstream ended a binlog dump (EOF packet)
    ├── BinlogError                        binlog content is not valid
    │   ├── ChecksumMismatch               an event's CRC32 does not match (file, offset)
    │   ├── TruncatedEvent                 a file or stream ends inside an event
    │   ├── InvalidEvent                   an event is structurally wrong
    │   └── UnsupportedValue               a column type or charset binhub cannot decode (named)
    ├── GtidError (ValueError)             a GTID / GTID set string cannot be parsed
    ├── StorageError                       the store cannot be opened / written
    │   ├── StoreLocked                    another writer holds the store
    │   ├── IdentityMismatch               the store belongs to another upstream
    │   ├── DiskFull
    │   └── FileInUse                      a purge would remove a file a reader holds
    ├── StartPositionError                 the requested start cannot be served (purged, unknown)
    │   └── StoreBehind                    the store has not reached it yet (the relay is behind)
    ├── SchemaError                        the schema history cannot answer
    │   ├── SchemaHistoryError             its files are damaged or cannot be written
    │   └── SchemaMismatch                 a TABLE_MAP disagrees with the history (both shapes named; also a BinlogError)
    ├── SourceError                        `binhub apply` cannot read its Kafka topics (broker, topic named; retryable)
    │   └── BadMessage                     a message is not binhub/Debezium JSON (topic, partition, offset named)
    ├── ApplyError                         the MySQL sink cannot apply a change downstream
    │   ├── ApplyConflict                  a duplicate key or a missing row (row, table and GTID named)
    │   ├── DdlRejected                    the downstream refused a DDL (statement and GTID named)
    │   └── DownstreamUnavailable          the downstream cannot be reached (retryable)
    ├── SandboxError                       the local sandbox server cannot be started
    ├── InnodbFormatError                  an InnoDB page or redo log is not in a format we read
    ├── BackupError                        a physical backup cannot be taken
    │   ├── RedoOverrun                    the server overwrote redo log not yet copied
    │   └── PageCorrupted                  a data page stays corrupt after re-reads (file, page)
    ├── TargetFull                         the disk a backup or a restore writes to is full (file named)
    ├── RestoreError                       a backup cannot be restored (incomplete, target not empty, ...)
    │   ├── BackupDamaged                  a backup file differs from its manifest (file; size or checksum)
    │   └── RecoveryFailed                 the throwaway mariadbd that prepares or replays did not do it
    └── MysqlError (binhub.wire.errors)    what binhub's server refuses: an ERR packet (ErrorCode, message)
        ├── LoginFailed (serve.login)
        └── DumpError (serve.dump_error)   error 1236: the replica stops instead of retrying
"""

from __future__ import annotations


class BinhubError(Exception):
    """Base of every binhub error. ``hint`` says what to do; ``retryable`` whether retrying may help."""

    retryable: bool = False

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} ({self.hint})"
        return self.message


class ConfigError(BinhubError, ValueError):
    """Invalid configuration; the message names the key and the reason."""

    def __init__(self, key: str, reason: str, *, hint: str | None = None) -> None:
        # No key: the config as a whole is wrong (the reason says how).
        super().__init__(f"invalid config {key}: {reason}" if key else reason, hint=hint)
        self.key = key
        self.reason = reason


class ProtocolError(BinhubError):
    """The peer sent something the MySQL protocol does not allow."""


class MalformedPacket(ProtocolError):
    """A packet is too short, too long or has an impossible field."""


class UnexpectedPacket(ProtocolError):
    """A well-formed packet arrived in a state where it is not allowed."""


class UpstreamError(BinhubError):
    """The upstream server answered with an ERR packet."""

    def __init__(self, code: int, sqlstate: str, message: str, *, hint: str | None = None) -> None:
        super().__init__(f"upstream error {code} ({sqlstate}): {message}", hint=hint)
        self.code = code
        self.sqlstate = sqlstate
        self.server_message = message


class AuthenticationFailed(UpstreamError):
    """The upstream refused our user or password."""


class ConnectionFailed(BinhubError):
    """The upstream could not be reached, or the connection was lost."""

    retryable = True


class BinlogError(BinhubError):
    """Binlog content is not valid."""

    def __init__(self, message: str, *, file: str | None = None, offset: int | None = None,
                 hint: str | None = None) -> None:
        where = ""
        if file is not None and offset is not None:
            where = f"{file} at offset {offset}: "
        elif file is not None:
            where = f"{file}: "
        elif offset is not None:
            where = f"at offset {offset}: "
        super().__init__(where + message, hint=hint)
        self.file = file
        self.offset = offset


class ChecksumMismatch(BinlogError):
    """An event's CRC32 does not match its content."""


class TruncatedEvent(BinlogError):
    """The data ends inside an event."""


class InvalidEvent(BinlogError):
    """An event is structurally invalid (bad length, bad magic, impossible field)."""


class UnsupportedValue(BinlogError):
    """A column whose type or charset binhub has no decoder for (the message names it)."""


class GtidError(BinhubError, ValueError):
    """A GTID or GTID set cannot be parsed or combined."""


class StorageError(BinhubError):
    """The store cannot be opened or written."""


class StoreLocked(StorageError):
    """Another process already writes this store."""


class IdentityMismatch(StorageError):
    """The store holds another upstream's binlog."""


class DiskFull(StorageError):
    """No space left on the store's disk."""

    retryable = True


class FileInUse(StorageError):
    """A purge would remove a file that a reader (a replica's dump, a stream) holds a lease on."""


class StartPositionError(BinhubError):
    """The requested start position cannot be served (purged or unknown).

    The message uses the primary's own words (a replica shows them as it would for its primary);
    ``plain``, when given, says the same in binhub's terms for readers that are no replica
    (stream, history): see :meth:`in_plain_words`.
    """

    def __init__(self, message: str, *, hint: str | None = None, plain: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.plain = plain

    def in_plain_words(self) -> StartPositionError:
        """This error as a stream or history user should read it (the same class, ``plain`` as message)."""
        if self.plain is None:
            return self
        return type(self)(self.plain, hint=self.hint)


class StoreBehind(StartPositionError):
    """The requested start lies past what the store holds (an empty store too): the relay has not reached it.

    A primary refuses such a request; binhub is often just a moment behind the primary a replica
    came from, or started before its relay, so a reader may wait for the relay and ask again.
    """


class SinkError(BinhubError):
    """A stream's destination refused its output or went away (after its own retries)."""

    retryable = True


class MessageTooLarge(SinkError):
    """A change is bigger than the destination takes in one message; it is never dropped."""

    retryable = False


class SchemaError(BinhubError):
    """The schema history cannot say what a table's columns were."""


class SchemaHistoryError(SchemaError):
    """The schema history's files are damaged or cannot be written."""


class SchemaMismatch(SchemaError, BinlogError):
    """A TABLE_MAP event and the schema history disagree on a table's columns: decoding would put
    values under the wrong names, so binhub stops instead (the message names both shapes). A binlog
    error too: the row decoder raises it with the file and offset of the event."""


class RangeError(BinhubError):
    """A flashback or replay range the store cannot give: a bound it does not hold, or bounds
    between which no transaction falls."""


class FlashbackRefused(BinhubError):
    """Flashback will not write what it cannot undo exactly: DDL in the range, a row changed again
    after the range, images without every column."""


class SourceError(BinhubError):
    """``binhub apply`` cannot read the Kafka topics it applies (the broker and topic named)."""

    retryable = True


class BadMessage(SourceError):
    """A Kafka message ``binhub apply`` cannot read as a change (its topic, partition and offset named):
    it stops rather than skip a change."""

    retryable = False


class ApplyError(BinhubError):
    """The MySQL sink cannot apply a change to the downstream server."""


class ApplyConflict(ApplyError):
    """The downstream already holds a row being inserted, or lacks one being updated or deleted."""


class DdlRejected(ApplyError):
    """The downstream refused a DDL statement of the stream."""


class DownstreamUnavailable(ApplyError):
    """The downstream server cannot be reached (or went away and did not come back in time)."""

    retryable = True


class SandboxError(BinhubError):
    """The local sandbox server cannot be started or stopped."""


class EndOfDump(BinhubError):
    """The upstream ended a binlog dump (EOF after a NON_BLOCK dump, or the server stopped sending)."""


class InnodbFormatError(BinhubError):
    """An InnoDB page, tablespace header or redo log header is not in a format binhub reads."""


class BackupError(BinhubError):
    """A physical backup cannot be taken (or finished); the output is marked incomplete."""


class RedoOverrun(BackupError):
    """The server wrapped its circular redo log over records the backup had not copied yet."""


class PageCorrupted(BackupError):
    """A data page failed its checksum on every re-read: really corrupt, not torn by a concurrent write."""

    def __init__(self, file: str, page_no: int, reason: str) -> None:
        super().__init__(f"{file}: page {page_no} is corrupted ({reason}) and stayed so after re-reads",
                         hint="check the source server with CHECK TABLE; the backup is marked incomplete")
        self.file = file
        self.page_no = page_no


class TargetFull(BinhubError):
    """The disk a backup or a restore writes to ran out of space (or the file outgrew the process's
    file-size limit). Names the file being written; the output is left marked incomplete or emptied."""

    def __init__(self, path: str, reason: str, *, hint: str) -> None:
        super().__init__(f"cannot write {path}: {reason}", hint=hint)
        self.path = path
        self.reason = reason


class RestoreError(BinhubError):
    """A backup cannot be restored: it is incomplete, the target is not empty, the PITR target is
    outside what the store holds. Nothing in the target is left half-done as if it were good."""


class BackupDamaged(RestoreError):
    """A file of the backup is missing or differs from what manifest.json recorded for it."""

    def __init__(self, file: str, reason: str) -> None:
        super().__init__(f"backup file {file} is damaged: {reason}",
                         hint="restore another backup; `binhub backup verify` checks them all")
        self.file = file


class RecoveryFailed(RestoreError):
    """The throwaway ``mariadbd`` that prepares a restored datadir (or replays the binlog into it) failed."""
