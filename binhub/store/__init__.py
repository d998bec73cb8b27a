"""The binlog store: real binlog files, a GTID index, crash-safe state."""

from binhub.store.durability import Durability
from binhub.store.durable import DurablePosition
from binhub.store.store import BinlogStore

__all__ = ["BinlogStore", "Durability", "DurablePosition"]
