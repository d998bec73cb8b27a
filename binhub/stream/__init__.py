"""The stream service: the store's row changes and DDL, decoded with the schema they were written
under, delivered to a sink with a checkpoint committed alongside (``binhub stream``)."""

from binhub.stream.changes import ChangeReader, TableFilter, TransactionEnd
from binhub.stream.config import StreamConfig, StreamStart
from binhub.stream.metrics import StreamMetrics
from binhub.stream.stream import Stream

__all__ = [
    "ChangeReader",
    "Stream",
    "StreamConfig",
    "StreamMetrics",
    "StreamStart",
    "TableFilter",
    "TransactionEnd",
]
