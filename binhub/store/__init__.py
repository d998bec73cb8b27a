"""The binlog store: real binlog files, a GTID index, crash-safe state."""

from binhub.store.durability_policy import Durability
from binhub.store.durable_position import DurablePosition
from binhub.store.store import BinlogStore

__all__ = ["BinlogStore", "Durability", "DurablePosition"]
