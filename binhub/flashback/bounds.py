"""Which transactions of the store a flashback or a replay covers: a start and a stop bound.

Each end is one of a GTID, a commit time or a binlog position, as ``mariadb-binlog`` takes them:

* ``--start-gtid G`` begins with transaction G; ``--stop-gtid G`` ends with it (both inclusive, so
  ``--start-gtid G --stop-gtid G`` is the one transaction G, and a replay to the GTID before a bad
  statement stops where ``START SLAVE UNTIL master_gtid_pos=`` that GTID stops);
* ``--start-datetime T`` begins with the first transaction committed at or after T;
  ``--stop-datetime T`` ends before the first committed at or after T (``mariadb-binlog``'s rule).
  Times are wall-clock times in ``--tz`` (UTC unless given), compared with the time the primary
  wrote in the transaction's GTID event (the ``ts`` of binhub JSON);
* ``--start-file F --start-pos P`` begins with the first transaction starting at or after F:P;
  ``--stop-file F --stop-pos P`` ends before the first transaction starting at or after F:P.

Without a start the range begins with the store's first transaction; without a stop it ends with
the last durable one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from binhub.errors import ConfigError
from binhub.store.index import file_seq

__all__ = ["Bound", "RangeBounds", "TransactionHead", "parse_time"]


@dataclass(frozen=True, slots=True)
class TransactionHead:
    """What a bound is matched against: where a transaction starts, its GTID and commit time."""

    file: str
    pos: int
    gtid: str | None
    time: int  # seconds since the epoch (the GTID event's header time)


@dataclass(frozen=True, slots=True)
class Bound:
    """One end of a range: exactly one of a GTID, a time (epoch seconds) or a file position."""

    gtid: str | None = None
    time: float | None = None
    file: str | None = None
    pos: int = 4
    text: str = ""  # as the user wrote it, for messages

    def reached_by(self, head: TransactionHead) -> bool:
        """Whether ``head`` is at or past this bound (for a GTID: is that transaction)."""
        if self.gtid is not None:
            return head.gtid == self.gtid
        if self.time is not None:
            return head.time >= self.time
        assert self.file is not None
        return (file_seq(head.file), head.pos) >= (file_seq(self.file), self.pos)


@dataclass(frozen=True, slots=True)
class RangeBounds:
    start: Bound | None = None
    stop: Bound | None = None

    @classmethod
    def from_options(cls, *, start_gtid: str | None = None, start_datetime: str | None = None,
                     start_file: str | None = None, start_pos: int | None = None, stop_gtid: str | None = None,
                     stop_datetime: str | None = None, stop_file: str | None = None, stop_pos: int | None = None,
                     tz: str = "UTC") -> RangeBounds:
        return cls(_bound("start", start_gtid, start_datetime, start_file, start_pos, tz),
                   _bound("stop", stop_gtid, stop_datetime, stop_file, stop_pos, tz))

    def describe(self) -> str:
        start = self.start.text if self.start is not None else "the store's first transaction"
        stop = self.stop.text if self.stop is not None else "the last durable one"
        return f"from {start} to {stop}"


def _bound(end: str, gtid: str | None, when: str | None, file: str | None, pos: int | None, tz: str) -> Bound | None:
    given = [name for name, value in ((f"--{end}-gtid", gtid), (f"--{end}-datetime", when),
                                      (f"--{end}-file", file)) if value is not None]
    if len(given) > 1:
        raise ConfigError(given[1], f"give only one of {', '.join(given)}")
    if pos is not None and file is None:
        raise ConfigError(f"--{end}-pos", f"--{end}-pos needs --{end}-file")
    if gtid is not None:
        return Bound(gtid=_one_gtid(f"--{end}-gtid", gtid), text=f"GTID {gtid.strip()}")
    if when is not None:
        return Bound(time=parse_time(when, tz, f"--{end}-datetime").timestamp(), text=f"{when} {tz}")
    if file is not None:
        at = pos if pos is not None else 4
        return Bound(file=file, pos=at, text=f"{file}:{at}")
    return None


def _one_gtid(option: str, text: str) -> str:
    text = text.strip()
    if not text or "," in text:
        raise ConfigError(option, f"{text!r} is not one GTID (domain-server-seq for MariaDB, uuid:N for MySQL)")
    if ":" in text:  # MySQL's uuid[:tag]:N
        return text.lower()
    parts = text.split("-")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise ConfigError(option, f"{text!r} is not a GTID (domain-server-seq for MariaDB, uuid:N for MySQL)")
    return "-".join(str(int(p)) for p in parts)


def parse_time(text: str, tz: str, option: str = "--tz") -> datetime:
    """``YYYY-MM-DD[ HH:MM[:SS[.ffffff]]]`` (or ISO-8601 with a ``T``) as a wall-clock time in ``tz``."""
    try:
        zone = UTC if tz.upper() in ("UTC", "Z") else ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError("--tz", f"{tz!r} is not a time zone (use an IANA name such as Europe/Paris, or UTC)") \
            from None
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(option, f"{text!r} is not a time: use 'YYYY-MM-DD HH:MM:SS' (in --tz, UTC by default)") \
            from None
    if value.tzinfo is not None:
        raise ConfigError(option, f"{text!r} carries its own offset: give a wall-clock time and --tz instead")
    return value.replace(tzinfo=zone).astimezone(UTC)
