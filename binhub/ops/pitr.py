"""Point-in-time restore, composed: the store's binlog server and the physical restore that replays from it.

``binhub restore BACKUP --to DATADIR --until ...`` resolves the target from the store, checks that
the store holds everything from the backup's GTID to it (before anything is written), starts
``binhub serve`` on the store in this process (127.0.0.1, a free port, a one-off user; or uses a
server already running, ``--serve HOST:PORT``), and runs the restore with a replay plan: the
restored server replicates from it with ``START SLAVE UNTIL master_gtid_pos`` (see
``binhub.backup.pitr`` for why replication).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shutil
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from binhub.backup.pitr import (
    ReplayPlan,
    ReplicationSource,
    check_store_covers,
    parse_position,
    until_before,
    until_time,
)
from binhub.backup.restore import PhysicalRestore, RestoreConfig, RestoreReport, check_complete, read_manifest
from binhub.binlog.gtid import MariadbGtid, MariadbGtidList
from binhub.errors import GtidError, RestoreError
from binhub.store import StoreReader

SERVE_SERVER_ID = 1001
RESTORE_USER = "binhub_restore"


@dataclass(frozen=True, slots=True)
class PitrTarget:
    """Exactly one of: a GTID position, a time (aware datetime), the GTID to stop just before."""

    until_gtid: str | None = None
    until_time: datetime | None = None
    until_before_gtid: str | None = None

    def describe(self) -> str:
        if self.until_gtid:
            return f"GTID position {self.until_gtid}"
        if self.until_time:
            return f"the last transaction committed at or before {self.until_time.isoformat()}"
        return f"just before {self.until_before_gtid}"


@dataclass(frozen=True, slots=True)
class PitrSource:
    """Where the binlog comes from: the store (``data_dir``), served here or by ``serve`` already."""

    data_dir: Path | None
    serve: tuple[str, int] | None = None
    serve_user: str = RESTORE_USER
    serve_password: str = ""


def resolve_target(target: PitrTarget, start: MariadbGtidList, store: StoreReader | None) -> MariadbGtidList:
    if target.until_gtid is not None:
        return parse_position(target.until_gtid, "--until-gtid")
    if store is None:
        raise RestoreError("--until and --until-before-gtid read the store: give --data-dir STORE")
    if target.until_time is not None:
        return until_time(store, start, int(target.until_time.timestamp()))
    assert target.until_before_gtid is not None
    try:
        bad = MariadbGtid.parse(target.until_before_gtid)
    except GtidError as exc:
        raise RestoreError(f"--until-before-gtid: {exc}") from None
    return until_before(store, start, bad)


def point_in_time_restore(config: RestoreConfig, target: PitrTarget, source: PitrSource) -> RestoreReport:
    data = read_manifest(config.backup)
    check_complete(config.backup, data)
    if not data.get("gtid"):
        raise RestoreError(f"{config.backup} recorded no GTID position (was the binlog off?); "
                           "a point-in-time restore starts from it")
    start = parse_position(str(data["gtid"]), "the backup's GTID")
    store = StoreReader.open(source.data_dir) if source.data_dir is not None else None
    try:
        until = resolve_target(target, start, store)
        if store is not None:
            check_store_covers(store, start, until)
        elif not until.covers(start):
            raise RestoreError(f"the target {until} lies before the backup's GTID position {start}")
        if until == start or start.covers(until):
            return PhysicalRestore(config).run()  # nothing after the backup to replay
        if source.serve is not None:
            host, port = source.serve
            replication = ReplicationSource(host, port, source.serve_user, source.serve_password)
            return PhysicalRestore(replace(config, replay=ReplayPlan(replication, start, until))).run()
        if store is None:
            raise RestoreError("a point-in-time restore needs the store (--data-dir) or a running --serve")
        with serving(store) as replication:
            return PhysicalRestore(replace(config, replay=ReplayPlan(replication, start, until))).run()
    finally:
        if store is not None:
            store.close()


@contextlib.contextmanager
def serving(store: StoreReader) -> Iterator[ReplicationSource]:
    """``binhub serve`` on ``store`` in a thread of this process: 127.0.0.1, a free port, no TLS
    (loopback only), a user with a random password, its keys in a scratch directory (the store is
    only read)."""
    # Here, not at the top: a plain restore (the same CLI command) has no use for the server.
    from binhub.serve.server import BinlogServer
    from binhub.serve.users import UserDirectory, make_user

    password = secrets.token_hex(16)
    key_dir = Path(tempfile.mkdtemp(prefix="binhub-restore-serve-"))
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="binhub-restore-serve", daemon=True)
    thread.start()
    server = BinlogServer(store, users=UserDirectory(users=[make_user(RESTORE_USER, password)]),
                          server_id=SERVE_SERVER_ID, host="127.0.0.1", port=0, tls=False, key_dir=key_dir,
                          replica_ahead_wait=0)
    try:
        asyncio.run_coroutine_threadsafe(server.start(), loop).result(60)
        yield ReplicationSource("127.0.0.1", server.port, RESTORE_USER, password)
    finally:
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(server.stop(), loop).result(60)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        shutil.rmtree(key_dir, ignore_errors=True)
