"""GTIDs of both flavours, as immutable values.

MySQL: a GTID is ``uuid[:tag]:gno``; a GTID *set* maps each (uuid, tag) — a "TSID" — to sorted,
disjoint intervals of gnos. Intervals are held with an exclusive end, as the server does
(``sql/rpl_gtid.h``), and printed inclusive (``1-5``). Binary form: ``Gtid_set::encode`` in
``sql/rpl_gtid_set.cc``, used by PREVIOUS_GTIDS and COM_BINLOG_DUMP_GTID.

MariaDB: a GTID is ``domain-server-seq``; a replication *position* (``gtid_slave_pos``,
``gtid_binlog_pos``) holds the last GTID applied in each domain. Sequence numbers grow within a
domain, so "contains" means "seq_no is at or below the position's seq_no in that domain".
"""

from __future__ import annotations

import re
import struct
import uuid as uuid_mod
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from binhub.binlog.buffer import ByteReader, pack_varlen
from binhub.errors import GtidError, InvalidEvent

_U64 = struct.Struct("<Q")
GNO_END = (1 << 63) - 1  # one past the largest valid gno (INT64_MAX in rpl_gtid.h)
TAG_MAX_LENGTH = 32
_TAG_RE = re.compile(r"[a-z_][a-z0-9_]{0,31}\Z")
_FORMAT_UNTAGGED = 0
_FORMAT_TAGGED = 1

Interval = tuple[int, int]  # [start, end) with start >= 1
Tsid = tuple[uuid_mod.UUID, str]


def normalize_tag(text: str) -> str:
    """Tags are case-insensitive and stored lowercase (``mysql::gtid::Tag``); '' means untagged."""
    tag = text.strip().lower()
    if tag and not _TAG_RE.match(tag):
        raise GtidError(f"invalid GTID tag {text!r}: it must start with a letter or '_' and hold at most "
                        f"{TAG_MAX_LENGTH} letters, digits or '_'")
    return tag


def _parse_uuid(text: str) -> uuid_mod.UUID:
    try:
        return uuid_mod.UUID(text.strip())
    except ValueError:
        raise GtidError(f"invalid server UUID {text.strip()!r} in GTID") from None


def _parse_gno(text: str, what: str) -> int:
    text = text.strip()
    if not text.isdigit():
        raise GtidError(f"invalid transaction number {text!r} in GTID {what!r}")
    gno = int(text)
    if not 1 <= gno < GNO_END:
        raise GtidError(f"transaction number {gno} in {what!r} is out of range 1..{GNO_END - 1}")
    return gno


@dataclass(frozen=True, slots=True)
class MysqlGtid:
    uuid: uuid_mod.UUID
    gno: int
    tag: str = ""

    def __post_init__(self) -> None:
        if not 1 <= self.gno < GNO_END:
            raise GtidError(f"GTID transaction number {self.gno} is out of range 1..{GNO_END - 1}")
        if self.tag:
            object.__setattr__(self, "tag", normalize_tag(self.tag))

    def __str__(self) -> str:
        if self.tag:
            return f"{self.uuid}:{self.tag}:{self.gno}"
        return f"{self.uuid}:{self.gno}"

    @classmethod
    def parse(cls, text: str) -> MysqlGtid:
        parts = text.strip().split(":")
        if len(parts) == 2:
            return cls(_parse_uuid(parts[0]), _parse_gno(parts[1], text))
        if len(parts) == 3:
            return cls(_parse_uuid(parts[0]), _parse_gno(parts[2], text), normalize_tag(parts[1]))
        raise GtidError(f"invalid MySQL GTID {text!r}: expected uuid:number or uuid:tag:number")

    @property
    def tsid(self) -> Tsid:
        return (self.uuid, self.tag)


def _merge(intervals: Iterable[Interval]) -> tuple[Interval, ...]:
    out: list[list[int]] = []
    for start, end in sorted(intervals):
        if out and start <= out[-1][1]:
            if end > out[-1][1]:
                out[-1][1] = end
        else:
            out.append([start, end])
    return tuple((s, e) for s, e in out)


def _subtract(a: tuple[Interval, ...], b: tuple[Interval, ...]) -> tuple[Interval, ...]:
    out: list[Interval] = []
    j = 0
    for start, end in a:
        cur = start
        while j < len(b) and b[j][1] <= cur:
            j += 1
        k = j
        while k < len(b) and b[k][0] < end:
            if b[k][0] > cur:
                out.append((cur, b[k][0]))
            cur = max(cur, b[k][1])
            if cur >= end:
                break
            k += 1
        if cur < end:
            out.append((cur, end))
    return tuple(out)


def _tsid_key(tsid: Tsid) -> tuple[bytes, str]:
    return (tsid[0].bytes, tsid[1])


class MysqlGtidSet:
    """An immutable MySQL GTID set. Operators return new sets."""

    __slots__ = ("_map", "_hash")

    def __init__(self, intervals: Mapping[Tsid, Iterable[Interval]] | None = None) -> None:
        items: dict[Tsid, tuple[Interval, ...]] = {}
        for (u, tag), ivs in (intervals or {}).items():
            checked = []
            for start, end in ivs:
                if not 1 <= start < end <= GNO_END:
                    raise GtidError(f"invalid GTID interval [{start}, {end}) for {u}")
                checked.append((start, end))
            merged = _merge(checked)
            if merged:
                items[(u, normalize_tag(tag))] = merged
        self._map = dict(sorted(items.items(), key=lambda kv: _tsid_key(kv[0])))
        self._hash: int | None = None

    # ---- text form
    @classmethod
    def parse(cls, text: str) -> MysqlGtidSet:
        """Parse MySQL syntax: ``uuid:1-5:7,uuid2:tag:1-3``; whitespace and newlines are ignored."""
        acc: dict[Tsid, list[Interval]] = {}
        for chunk in text.split(","):
            if not chunk.strip():
                continue
            parts = chunk.split(":")
            u = _parse_uuid(parts[0])
            tag = ""
            if len(parts) == 1:
                raise GtidError(f"GTID set element {chunk.strip()!r} has a UUID but no transaction numbers")
            for part in parts[1:]:
                part = part.strip()
                if part and (part[0].isalpha() or part[0] == "_"):
                    tag = normalize_tag(part)
                    acc.setdefault((u, tag), [])
                    continue
                lo, sep, hi = part.partition("-")
                start = _parse_gno(lo, chunk.strip())
                end = _parse_gno(hi, chunk.strip()) if sep else start
                if end < start:
                    raise GtidError(f"GTID interval {part!r} in {chunk.strip()!r} ends before it starts")
                acc.setdefault((u, tag), []).append((start, end + 1))
        return cls(acc)

    def to_string(self, separator: str = ",") -> str:
        """MySQL's canonical text: per uuid the untagged intervals, then each tag with its intervals.
        MySQL itself prints ``",\\n"`` between uuids; pass that as ``separator`` to match byte for byte."""
        per_uuid: dict[uuid_mod.UUID, list[str]] = {}
        for (u, tag), ivs in self._map.items():
            parts = per_uuid.setdefault(u, [str(u)])
            if tag:
                parts.append(tag)
            parts.extend(f"{s}" if e == s + 1 else f"{s}-{e - 1}" for s, e in ivs)
        return separator.join(":".join(p) for p in per_uuid.values())

    def __str__(self) -> str:
        return self.to_string()

    def __repr__(self) -> str:
        return f"MysqlGtidSet({self.to_string()!r})"

    # ---- queries
    def intervals(self, uuid: uuid_mod.UUID, tag: str = "") -> tuple[Interval, ...]:
        return self._map.get((uuid, tag), ())

    def items(self) -> Iterator[tuple[Tsid, tuple[Interval, ...]]]:
        return iter(self._map.items())

    @property
    def has_tags(self) -> bool:
        return any(tag for _, tag in self._map)

    def is_empty(self) -> bool:
        return not self._map

    def __bool__(self) -> bool:
        return bool(self._map)

    def __len__(self) -> int:
        """Number of GTIDs in the set."""
        return sum(e - s for ivs in self._map.values() for s, e in ivs)

    def __contains__(self, gtid: object) -> bool:
        if not isinstance(gtid, MysqlGtid):
            return False
        ivs = self._map.get(gtid.tsid)
        if not ivs:
            return False
        i = bisect_right(ivs, (gtid.gno, GNO_END)) - 1
        return i >= 0 and ivs[i][0] <= gtid.gno < ivs[i][1]

    def issubset(self, other: MysqlGtidSet) -> bool:
        return (self - other).is_empty()

    def issuperset(self, other: MysqlGtidSet) -> bool:
        return other.issubset(self)

    __le__ = issubset
    __ge__ = issuperset

    # ---- algebra
    def union(self, other: MysqlGtidSet) -> MysqlGtidSet:
        acc: dict[Tsid, list[Interval]] = {k: list(v) for k, v in self._map.items()}
        for k, v in other._map.items():
            acc.setdefault(k, []).extend(v)
        return MysqlGtidSet(acc)

    def subtract(self, other: MysqlGtidSet) -> MysqlGtidSet:
        acc = {k: _subtract(v, other._map[k]) if k in other._map else v for k, v in self._map.items()}
        return MysqlGtidSet(acc)

    def intersection(self, other: MysqlGtidSet) -> MysqlGtidSet:
        return self - (self - other)

    __or__ = union
    __sub__ = subtract
    __and__ = intersection

    def add(self, gtid: MysqlGtid) -> MysqlGtidSet:
        return self.union(MysqlGtidSet({gtid.tsid: [(gtid.gno, gtid.gno + 1)]}))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MysqlGtidSet) and self._map == other._map

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(tuple(self._map.items()))
        return self._hash

    # ---- binary form
    def encode(self, tagged: bool | None = None) -> bytes:
        """``Gtid_set::encode``. The tagged format (MySQL 8.3+) is used when a tag is present, or when
        forced with ``tagged=True``; ``tagged=False`` with tags present is an error (old readers cannot
        represent them)."""
        use_tagged = self.has_tags if tagged is None else tagged
        if not use_tagged and self.has_tags:
            raise GtidError("a GTID set with tags can only be encoded in the tagged format (MySQL 8.3+)")
        n = len(self._map)
        # encode_nsids_format: tagged puts the format in the top byte, the count in bytes 1..6 and the
        # format again in byte 0; untagged is the plain count.
        head = (_FORMAT_TAGGED << 56) | (n << 8) | _FORMAT_TAGGED if use_tagged else n
        out = [_U64.pack(head)]
        for (u, tag), ivs in self._map.items():
            out.append(u.bytes)
            if use_tagged:
                encoded_tag = tag.encode("ascii")
                out.append(pack_varlen(len(encoded_tag)) + encoded_tag)
            out.append(_U64.pack(len(ivs)))
            for s, e in ivs:
                out.append(_U64.pack(s) + _U64.pack(e))
        return b"".join(out)

    @classmethod
    def decode(cls, data: bytes | memoryview) -> MysqlGtidSet:
        """``Gtid_set::add_gtid_encoding``: both formats; the whole buffer must be consumed."""
        gtid_set, used = cls.decode_prefix(data)
        if used != len(data):
            raise GtidError(f"encoded GTID set has {len(data) - used} trailing bytes")
        return gtid_set

    @classmethod
    def decode_prefix(cls, data: bytes | memoryview) -> tuple[MysqlGtidSet, int]:
        """Decode a GTID set at the start of ``data``; return it and the bytes it used."""
        r = ByteReader(data, what="encoded GTID set")
        try:
            head = r.u64()
            fmt = head >> 56
            if fmt == _FORMAT_UNTAGGED:
                n_sids = head
            elif fmt == _FORMAT_TAGGED:
                n_sids = (head >> 8) & 0xFFFF_FFFF_FFFF
            else:
                raise GtidError(f"unknown GTID set encoding format {fmt}")
            acc: dict[Tsid, list[Interval]] = {}
            for _ in range(n_sids):
                u = uuid_mod.UUID(bytes=r.take(16))
                tag = ""
                if fmt == _FORMAT_TAGGED:
                    tag_len = r.varlen()
                    if tag_len > TAG_MAX_LENGTH:
                        raise GtidError(f"encoded GTID tag of {tag_len} bytes exceeds {TAG_MAX_LENGTH}")
                    tag = normalize_tag(r.take(tag_len).decode("ascii", "replace"))
                n_iv = r.u64()
                if n_iv * 16 > r.remaining():
                    raise GtidError(f"encoded GTID set claims {n_iv} intervals for {u} but is too short")
                last = 0
                ivs = acc.setdefault((u, tag), [])
                for _ in range(n_iv):
                    start, end = r.u64(), r.u64()
                    if start <= last or end <= start:
                        raise GtidError(f"encoded GTID set has an unordered interval [{start}, {end}) for {u}")
                    last = end
                    ivs.append((start, end))
        except InvalidEvent as exc:
            raise GtidError(f"truncated GTID set encoding: {exc.message}") from None
        return cls(acc), r.pos


# --------------------------------------------------------------------------- MariaDB

_MARIADB_GTID_RE = re.compile(r"\s*(\d+)-(\d+)-(\d+)\s*\Z")


@dataclass(frozen=True, slots=True, order=True)
class MariadbGtid:
    domain_id: int
    server_id: int
    seq_no: int

    def __post_init__(self) -> None:
        if not (0 <= self.domain_id < 1 << 32 and 0 <= self.server_id < 1 << 32 and 0 <= self.seq_no < 1 << 64):
            raise GtidError(f"MariaDB GTID {self.domain_id}-{self.server_id}-{self.seq_no} is out of range")

    def __str__(self) -> str:
        return f"{self.domain_id}-{self.server_id}-{self.seq_no}"

    @classmethod
    def parse(cls, text: str) -> MariadbGtid:
        m = _MARIADB_GTID_RE.match(text)
        if not m:
            raise GtidError(f"invalid MariaDB GTID {text!r}: expected domain-server-sequence, e.g. 0-1-42")
        return cls(int(m[1]), int(m[2]), int(m[3]))


class MariadbGtidList:
    """A MariaDB GTID position: at most one GTID per domain, the last one applied there."""

    __slots__ = ("_by_domain",)

    def __init__(self, gtids: Iterable[MariadbGtid] = ()) -> None:
        by_domain: dict[int, MariadbGtid] = {}
        for g in gtids:
            if g.domain_id in by_domain:
                raise GtidError(f"GTID position lists domain {g.domain_id} twice "
                                f"({by_domain[g.domain_id]} and {g}); keep one GTID per domain")
            by_domain[g.domain_id] = g
        self._by_domain = dict(sorted(by_domain.items()))

    @classmethod
    def parse(cls, text: str) -> MariadbGtidList:
        return cls(MariadbGtid.parse(part) for part in text.split(",") if part.strip())

    def __str__(self) -> str:
        return ",".join(str(g) for g in self._by_domain.values())

    def __repr__(self) -> str:
        return f"MariadbGtidList({str(self)!r})"

    @property
    def domains(self) -> tuple[int, ...]:
        return tuple(self._by_domain)

    @property
    def gtids(self) -> tuple[MariadbGtid, ...]:
        return tuple(self._by_domain.values())

    def get(self, domain_id: int) -> MariadbGtid | None:
        return self._by_domain.get(domain_id)

    def is_empty(self) -> bool:
        return not self._by_domain

    def __bool__(self) -> bool:
        return bool(self._by_domain)

    def __len__(self) -> int:
        return len(self._by_domain)

    def __iter__(self) -> Iterator[MariadbGtid]:
        return iter(self._by_domain.values())

    def contains(self, gtid: MariadbGtid) -> bool:
        """True if the position is at or past ``gtid`` in its domain (the server id does not matter)."""
        mine = self._by_domain.get(gtid.domain_id)
        return mine is not None and gtid.seq_no <= mine.seq_no

    def __contains__(self, gtid: object) -> bool:
        return isinstance(gtid, MariadbGtid) and self.contains(gtid)

    def covers(self, other: MariadbGtidList) -> bool:
        """True if this position is at or past ``other`` in every domain ``other`` names."""
        return all(self.contains(g) for g in other)

    def update(self, gtid: MariadbGtid) -> MariadbGtidList:
        """The position after applying ``gtid``: its domain's entry is replaced."""
        new = MariadbGtidList()
        by_domain = {**self._by_domain, gtid.domain_id: gtid}
        # A domain already listed keeps its place (once per transaction: sort only for a new one).
        new._by_domain = by_domain if len(by_domain) == len(self._by_domain) else dict(sorted(by_domain.items()))
        return new

    add = update

    def union(self, other: MariadbGtidList) -> MariadbGtidList:
        """Per domain, the entry with the higher sequence number (ties keep ``self``)."""
        merged = dict(self._by_domain)
        for g in other:
            mine = merged.get(g.domain_id)
            if mine is None or g.seq_no > mine.seq_no:
                merged[g.domain_id] = g
        return MariadbGtidList(merged.values())

    __or__ = union

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MariadbGtidList) and self._by_domain == other._by_domain

    def __hash__(self) -> int:
        return hash(tuple(self._by_domain.values()))


def parse_gtid_set(text: str, flavour: str | None = None) -> MysqlGtidSet | MariadbGtidList:
    """Parse a GTID set of either flavour; without ``flavour`` the syntax decides (uuid → MySQL,
    d-s-n → MariaDB). An empty string is an empty MySQL set unless ``flavour="mariadb"``."""
    if flavour == "mysql":
        return MysqlGtidSet.parse(text)
    if flavour == "mariadb":
        return MariadbGtidList.parse(text)
    if flavour is not None:
        raise GtidError(f"unknown GTID flavour {flavour!r}: use 'mysql' or 'mariadb'")
    if not text.strip():
        return MysqlGtidSet()
    if ":" in text:
        return MysqlGtidSet.parse(text)
    first = text.split(",")[0]
    if _MARIADB_GTID_RE.match(first):
        return MariadbGtidList.parse(text)
    raise GtidError(f"cannot tell the flavour of GTID set {text.strip()[:60]!r}: expected uuid:1-5 (MySQL) "
                    "or 0-1-5 (MariaDB)")
