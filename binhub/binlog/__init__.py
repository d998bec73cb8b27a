"""The binlog codec: event header, checksums, events, GTIDs, file reader, transaction boundaries, and
the row decoder (row changes with their values, see ``changes``, ``rows`` and ``json_form``).

Sans-I/O: everything here works on bytes (or a file object handed in); nothing imports asyncio.
Names load on first use (PEP 562), as in ``binhub`` itself: the relay imports a few submodules
and should not pay ~50 ms of start-up for the row decoder it never runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from binhub.lazy import lazy_exports

_EXPORTS = {
    ".changes": ["RowChange", "RowChangeDecoder"],
    ".checksum": ["event_crc", "recompute_crc", "set_in_use_flag", "verify_checksum", "with_crc"],
    ".columns": ["ColumnInfo", "TableSchema"],
    ".constants": ["BINLOG_MAGIC", "CHECKSUM_SIZE", "HEADER_SIZE", "ChecksumAlg", "EventFlag", "EventType",
                  "event_type_name"],
    ".decode": ["decode_event"],
    ".events": ["Event", "FormatDescriptionEvent"],
    ".file": ["BinlogFileReader", "RawEvent", "read_events", "row_changes", "row_json_lines"],
    ".gtid": ["MariadbGtid", "MariadbGtidList", "MysqlGtid", "MysqlGtidSet", "parse_gtid_set"],
    ".header": ["HEADER_STRUCT", "EventHeader"],
    ".transaction": ["TransactionTracker"],
}

__all__ = [
    "BINLOG_MAGIC",
    "CHECKSUM_SIZE",
    "HEADER_SIZE",
    "HEADER_STRUCT",
    "BinlogFileReader",
    "ChecksumAlg",
    "ColumnInfo",
    "Event",
    "EventFlag",
    "EventHeader",
    "EventType",
    "FormatDescriptionEvent",
    "MariadbGtid",
    "MariadbGtidList",
    "MysqlGtid",
    "MysqlGtidSet",
    "RawEvent",
    "RowChange",
    "RowChangeDecoder",
    "TableSchema",
    "TransactionTracker",
    "decode_event",
    "event_crc",
    "event_type_name",
    "parse_gtid_set",
    "read_events",
    "recompute_crc",
    "row_changes",
    "row_json_lines",
    "set_in_use_flag",
    "verify_checksum",
    "with_crc",
]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())

if TYPE_CHECKING:
    from binhub.binlog.changes import RowChange, RowChangeDecoder
    from binhub.binlog.checksum import event_crc, recompute_crc, set_in_use_flag, verify_checksum, with_crc
    from binhub.binlog.columns import ColumnInfo, TableSchema
    from binhub.binlog.constants import (
        BINLOG_MAGIC,
        CHECKSUM_SIZE,
        HEADER_SIZE,
        ChecksumAlg,
        EventFlag,
        EventType,
        event_type_name,
    )
    from binhub.binlog.decode import decode_event
    from binhub.binlog.events import Event, FormatDescriptionEvent
    from binhub.binlog.file import BinlogFileReader, RawEvent, read_events, row_changes, row_json_lines
    from binhub.binlog.gtid import MariadbGtid, MariadbGtidList, MysqlGtid, MysqlGtidSet, parse_gtid_set
    from binhub.binlog.header import HEADER_STRUCT, EventHeader
    from binhub.binlog.transaction import TransactionTracker
