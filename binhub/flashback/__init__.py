"""Flashback and replay over the store: undo a range of row changes newest first (``binhub
flashback``), or apply a range into a database (``binhub replay``)."""

from binhub.flashback.bounds import Bound, RangeBounds
from binhub.flashback.flashback import DdlInRange, Flashback, FlashbackConfig, RowChanged
from binhub.flashback.reading import ChangeDecoder, DecoderFactory, TransactionMark, read_span
from binhub.flashback.replay import Replay, SinkOutput, SqlPrinter, jsonl_pieces
from binhub.flashback.span import Span, locate
from binhub.flashback.spool import Spool
from binhub.flashback.statements import HistoryColumns

__all__ = [
    "Bound", "ChangeDecoder", "DdlInRange", "DecoderFactory", "Flashback", "FlashbackConfig", "HistoryColumns",
    "RangeBounds", "Replay", "RowChanged", "SinkOutput", "Span", "Spool", "SqlPrinter", "TransactionMark",
    "jsonl_pieces", "locate", "read_span",
]
