"""The binlog store: real binlog files, a GTID index, crash-safe state; its writer and its readers.

:class:`BinlogStore` is the writer (the relay's); :class:`StoreReader` the read-only view that
serve, stream, apply and backup use, in the writer's process (``store.reader``) or any other
(``StoreReader.open``).
"""

from binhub.store.durability_policy import Durability
from binhub.store.durable_position import DurablePosition
from binhub.store.reader import StoreReader
from binhub.store.store import BinlogStore

__all__ = ["BinlogStore", "Durability", "DurablePosition", "StoreReader"]
