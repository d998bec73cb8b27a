"""What the store is told: where it lives, when events become durable, what may be purged."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from binhub.store.durability_policy import Durability
from binhub.store.retention import PurgeRules

__all__ = ["RetentionConfig", "StoreConfig"]


@dataclass(frozen=True, slots=True)
class RetentionConfig:
    """When old binlog files may be purged (or archived); ``None`` means no limit of that kind."""

    max_age: float | None = None  # seconds
    max_size: int | None = None  # bytes, all files together
    max_files: int | None = None
    stream_lease_max_age: float | None = None  # seconds; None: a stopped stream's lease holds forever

    def rules(self) -> PurgeRules:
        """The purge the store applies whenever a file is complete."""
        return PurgeRules(max_age=self.max_age, max_size=self.max_size, max_files=self.max_files,
                          stream_lease_max_age=self.stream_lease_max_age)


@dataclass(frozen=True, slots=True)
class StoreConfig:
    data_dir: Path
    durability: Durability = field(default_factory=Durability)
    retention: RetentionConfig = field(default_factory=RetentionConfig)
    archive_dir: Path | None = None
