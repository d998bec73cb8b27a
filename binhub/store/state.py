"""The store's state file: upstream identity, requested start, last durable position, GTID sets.

Written atomically (never per transaction): at rotation, on close and at most every second in between.
Recovery does not depend on it being recent: it only says where a scan of the last file may start.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from binhub.errors import IdentityMismatch, StorageError
from binhub.store.fsutil import atomic_write

STATE_FORMAT = 1


@dataclass(frozen=True, slots=True)
class UpstreamIdentity:
    """What makes an upstream the same upstream across reconnects.

    ``first_fde_sha256`` is set from the first file the store holds and not compared with the live
    server (the primary may have purged that file); the rest is read from the server on connect.
    """

    flavour: str  # "mariadb" | "mysql"
    server_id: int
    base_name: str
    server_uuid: str = ""  # MySQL only; MariaDB has none
    gtid_domain_id: int | None = None  # MariaDB only
    first_fde_sha256: str = ""
    version: str = ""

    # Fields whose change means "another server": version and the FDE hash are informative only.
    COMPARED = ("flavour", "server_id", "base_name", "server_uuid", "gtid_domain_id")

    def differences(self, live: UpstreamIdentity) -> list[str]:
        out = []
        for name in self.COMPARED:
            mine, theirs = getattr(self, name), getattr(live, name)
            # None/"" means "not known when the store was seeded" (an import only sees the files,
            # which carry no domain id or server_uuid): nothing to disagree with.
            if mine in (None, "") and name != "base_name":
                continue
            if mine != theirs:
                out.append(f"{name}: store has {mine!r}, upstream has {theirs!r}")
        return out

    def completed_from(self, live: UpstreamIdentity) -> UpstreamIdentity:
        """This identity with the fields it did not know taken from ``live`` (after :meth:`check`)."""
        unknown = {name: getattr(live, name) for name in self.COMPARED if getattr(self, name) in (None, "")}
        return replace(self, **unknown) if unknown else self

    def check(self, live: UpstreamIdentity, data_dir: Path) -> None:
        diffs = self.differences(live)
        if diffs:
            raise IdentityMismatch(
                f"the store {data_dir} belongs to another upstream ({'; '.join(diffs)})",
                hint="point the relay at the upstream this store was filled from, or use a new --data-dir",
            )


@dataclass(frozen=True, slots=True)
class UpstreamSource:
    """Where and how the relay connects, never the password: what SHOW SLAVE STATUS shows.

    Not part of :class:`UpstreamIdentity`: an upstream may move to another address (a failover,
    a new DNS name) and stay the same server; the relay records it again on every connect.
    """

    host: str
    port: int
    user: str
    ssl: bool = False  # the connection runs over TLS
    ssl_verify_server_cert: bool = False
    connect_retry: int = 60  # seconds: the cap of the relay's reconnect backoff
    heartbeat_period: float = 0.0  # seconds


@dataclass(frozen=True, slots=True)
class RequestedStart:
    """What the user asked for when the store was first filled; serve and stream begin here by default."""

    kind: str  # "gtid" | "file" | "now" | "oldest" | "import"
    gtid: str = ""
    file: str = ""
    position: int = 4


@dataclass(frozen=True, slots=True)
class StoreState:
    upstream: UpstreamIdentity | None = None
    source: UpstreamSource | None = None  # None: no relay has connected (e.g. a store seeded by import)
    requested_start: RequestedStart | None = None
    last_file: str = ""
    last_position: int = 0
    executed_gtids: str = ""  # everything the store holds plus what came before its first file
    purged_gtids: str = ""  # the GTID state before the first stored file
    replica_uuid: str = ""  # binhub's own identity towards a MySQL upstream (@replica_uuid)
    encrypted_upstream: bool = False
    #: The upstream's replication-relevant global variables as ``SHOW GLOBAL VARIABLES`` printed them
    #: (lower-case names), recorded on each relay connect: serve answers them as the upstream would.
    upstream_variables: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def with_(self, **changes: Any) -> StoreState:
        return replace(self, **changes)

    def to_json(self) -> bytes:
        doc = {"format": STATE_FORMAT, **asdict(self)}
        return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes, path: Path) -> StoreState:
        try:
            doc = json.loads(data)
            if doc.pop("format", None) != STATE_FORMAT:
                raise ValueError("unknown state format")
            upstream = doc.pop("upstream", None)
            source = doc.pop("source", None)
            start = doc.pop("requested_start", None)
            known = {f.name for f in fields(cls)}
            return cls(
                upstream=_build(UpstreamIdentity, upstream),
                source=_build(UpstreamSource, source),
                requested_start=_build(RequestedStart, start),
                **{k: v for k, v in doc.items() if k in known},
            )
        except (ValueError, TypeError, KeyError) as exc:
            raise StorageError(f"the state file {path} is not valid: {exc}",
                               hint="restore it from a backup or remove the store") from exc

    @classmethod
    def load(cls, path: Path) -> StoreState:
        if not path.exists():
            return cls()
        return cls.from_json(path.read_bytes(), path)

    def save(self, path: Path) -> None:
        atomic_write(path, self.to_json())


def _build(kind: Any, doc: dict[str, Any] | None) -> Any:
    if doc is None:
        return None
    names = {f.name for f in fields(kind)}
    return kind(**{k: v for k, v in doc.items() if k in names})
