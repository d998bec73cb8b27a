"""When stored events become durable (fsynced) and therefore visible to readers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from binhub.errors import ConfigError

DurabilityMode = Literal["txn", "interval", "rotate"]


@dataclass(frozen=True, slots=True)
class Durability:
    """``txn``: group commit, one fsync covers every transaction that arrived meanwhile (default);
    ``interval``: fsync at most every ``interval_ms``; ``rotate``: fsync only when a file is complete."""

    mode: DurabilityMode = "txn"
    interval_ms: int = 0

    @classmethod
    def parse(cls, text: str, *, key: str = "durability") -> Durability:
        value = text.strip().lower()
        if value in ("txn", "rotate"):
            return cls(value)  # type: ignore[arg-type]
        if value.startswith("interval:"):
            ms = value.split(":", 1)[1]
            if ms.isdigit() and int(ms) > 0:
                return cls("interval", int(ms))
            raise ConfigError(key, f"{text!r}: interval needs a positive number of milliseconds, e.g. interval:50")
        raise ConfigError(key, f"{text!r} is not one of txn, interval:MS, rotate")

    def __str__(self) -> str:
        return f"interval:{self.interval_ms}" if self.mode == "interval" else self.mode
