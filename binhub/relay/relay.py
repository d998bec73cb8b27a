"""The relay: connect to the upstream as a replica and store its binlog, durably and byte for byte.

One long-running service. ``_run`` is a reconnect loop with capped exponential backoff around
``_session``: connect → probe → choose the start → register → COM_BINLOG_DUMP → pump events into
the store. Group commit runs beside the pump: while one fsync is in flight, newly arrived
transactions pile up and the next fsync covers them all.

The relay always dumps whole files from the file's start (or resumes where the store ends), so
every stored file is the upstream's file. What is not file content (artificial events,
heartbeats, the FDE the server repeats when a dump resumes mid-file) is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl as ssl_mod
import struct
import time
import uuid
import zlib
from typing import TYPE_CHECKING, Any

from binhub.binlog.constants import EventType
from binhub.binlog.transaction import TransactionTracker
from binhub.errors import (
    AuthenticationFailed,
    BinhubError,
    ChecksumMismatch,
    ConnectionFailed,
    DiskFull,
    EndOfDump,
    ProtocolError,
    StartPositionError,
    UpstreamError,
)
from binhub.net.client import UpstreamConnection
from binhub.relay.upstream import UpstreamInfo, locate_gtid_start, probe
from binhub.store.state import RequestedStart
from binhub.store.store import BinlogStore, file_seq

if TYPE_CHECKING:
    from binhub.ops.config import RelayConfig
    from binhub.ops.metrics import Metrics

LOG = logging.getLogger("binhub.relay")

_U32 = struct.Struct("<I")
_FDE = EventType.FORMAT_DESCRIPTION
_ROTATE = EventType.ROTATE
_STOP = EventType.STOP
_HEARTBEATS = (EventType.HEARTBEAT, EventType.HEARTBEAT_V2)
_ARTIFICIAL = 0x20
_IN_USE = 0x01

# Upstream errors that no reconnect can fix.
ER_SLAVE_SAME_ID = 4052  # MariaDB: another replica registered with our server_id
ER_MASTER_FATAL_ERROR_READING_BINLOG = 1236
FATAL_CODES = {1045, 1044, 1227, 1142, 1381, ER_MASTER_FATAL_ERROR_READING_BINLOG, ER_SLAVE_SAME_ID}
MYSQL_DUP_SERVER_ID_TEXT = "same server_uuid/server_id"

ER_ACCESS_DENIED = 1045
ER_SPECIFIC_ACCESS_DENIED = 1227
MARIADB_SEND_ANNOTATE_ROWS = 2
MARIA_SLAVE_CAPABILITY_MINE = 4


class RelayFatal(BinhubError):
    """The relay stopped for a reason reconnecting cannot fix."""


class Relay:
    """Fill a store from one upstream. ``start()``/``stop()``; ``wait()`` for one-shot runs."""

    def __init__(self, config: RelayConfig, store: BinlogStore, *, metrics: Metrics | None = None,
                 until_caught_up: bool = False) -> None:
        self.config = config
        self.store = store
        self.metrics = metrics
        self.until_caught_up = until_caught_up
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._conn: UpstreamConnection | None = None
        self._tracker = TransactionTracker()
        self._checksum_size = 4
        self._target: tuple[int, int] | None = None  # (file seq, position) for --until-caught-up
        self._caught_up = asyncio.Event()
        self._sync_wanted = asyncio.Event()
        self._sync_lock = asyncio.Lock()
        self._syncer: asyncio.Task[None] | None = None
        self._ack_wanted = False
        self._sessions = 0
        self._reconnects = 0
        self._last_event_ts = 0
        self._last_error: str = ""
        self._connected = False
        self._info: UpstreamInfo | None = None
        self.transactions = 0
        self.bytes = 0
        self.events = 0

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="relay")

    async def stop(self) -> None:
        """Stop reading, make everything received durable, write the state."""
        self._stopping = True
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, BinhubError):
                await self._task
        self._finish_durably()

    async def wait(self) -> None:
        """Until the relay ends by itself (caught up, or a fatal error, which is raised)."""
        assert self._task is not None
        await self._task

    def status(self) -> dict[str, Any]:
        info = self._info
        return {
            "connected": self._connected,
            "upstream": {"version": info.version, "flavour": info.flavour, "server_id": info.server_id}
            if info else None,
            "file": self.store.current_file,
            "position": self.store.position,
            "transactions": self.transactions,
            "events": self.events,
            "bytes": self.bytes,
            "reconnects": self._reconnects,
            "lag_seconds": self._lag(),
            "last_gtid": self.store.last_durable_gtid,
            "last_error": self._last_error,
            "caught_up": self._caught_up.is_set(),
        }

    # ------------------------------------------------------------------ reconnect loop

    async def _run(self) -> None:
        initial_backoff = backoff = 0.2
        try:
            while not self._stopping:
                sessions_before = self._sessions
                try:
                    await self._session()
                    if self._caught_up.is_set():
                        return
                    raise ConnectionFailed("the upstream ended the binlog dump")
                except asyncio.CancelledError:
                    raise
                except BinhubError as exc:
                    fatal = self._fatal(exc)
                    if fatal is not None:
                        self._last_error = str(fatal)
                        raise fatal from exc
                    self._last_error = str(exc)
                    level = logging.ERROR if isinstance(exc, DiskFull) else logging.WARNING
                    LOG.log(level, "relay interrupted: %s; reconnecting in %.1fs", exc, backoff)
                except OSError as exc:
                    self._last_error = str(exc)
                    LOG.warning("relay interrupted: %s; reconnecting in %.1fs", exc, backoff)
                finally:
                    self._connected = False
                    if self.metrics is not None:
                        self.metrics.relay_connected.set(0)
                    await self._end_session()
                self._reconnects += 1
                if self.metrics is not None:
                    self.metrics.relay_reconnects.inc()
                if self._sessions > sessions_before:
                    backoff = initial_backoff  # the last session got going: start the backoff again
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.config.reconnect_max_backoff)
        finally:
            self._finish_durably()

    def _fatal(self, exc: BinhubError) -> BinhubError | None:
        """None if reconnecting may help; otherwise the error to stop with."""
        if isinstance(exc, AuthenticationFailed):
            return exc
        if isinstance(exc, UpstreamError):
            if exc.code == ER_SLAVE_SAME_ID or MYSQL_DUP_SERVER_ID_TEXT in exc.server_message:
                return RelayFatal(
                    f"another replica connected to the upstream with binhub's server_id "
                    f"{self.config.server_id}, and the upstream ended binhub's dump (error {exc.code}: "
                    f"{exc.server_message})",
                    hint="give binhub a server_id no other replica uses (--server-id / relay.server_id)")
            if exc.code in FATAL_CODES:
                return exc
            return None
        if isinstance(exc, ConnectionFailed):
            if self.until_caught_up and self._sessions == 0:
                return exc  # a one-shot run fails fast when the upstream cannot be reached at all
            return None
        if isinstance(exc, DiskFull | ChecksumMismatch):
            return None
        if isinstance(exc, EndOfDump):
            # The relay never asks for a non-blocking dump: an EOF means the upstream is shutting
            # down (a clean restart), and it will be back.
            return None
        if isinstance(exc, ProtocolError) and self._sessions:
            return None
        return exc

    # ------------------------------------------------------------------ one session

    async def _session(self) -> None:
        cfg = self.config
        src = cfg.source
        self._conn = conn = await UpstreamConnection.connect(
            src.host, src.port, src.user, src.password, ssl=self._ssl_context(),
            ssl_optional=cfg.ssl_mode == "preferred",
            connect_timeout=cfg.connect_timeout, attrs={"program_name": "binhub", "_client_role": "binary_log_listener"})
        self._info = info = await probe(conn, is_mariadb=conn.is_mariadb, user=src.user)
        if info.binlog_format.upper() != "ROW" and self._sessions == 0:
            LOG.warning("the upstream's binlog_format is %s, not ROW: relayed as is, but streams (CDC) need ROW",
                        info.binlog_format)
        self._check_identity(info)
        if info.encrypted and not self.store.state.encrypted_upstream:
            LOG.warning("the upstream encrypts its binlogs (encrypt_binlog=ON): binhub stores the decrypted events, "
                        "so the stored files are not byte-identical to the upstream's encrypted files")
            self.store.update_state(encrypted_upstream=True)
        file, position = await self._start_position(conn, info)
        if self.until_caught_up and self._target is None:
            self._target = (file_seq(info.current_file), info.current_position)
        self._checksum_size = 4 if info.checksum == "CRC32" else 0
        await self._prepare_dump(conn, info)
        try:
            await conn.register_replica(cfg.server_id)
            if cfg.semi_sync and await conn.enable_semisync():
                LOG.info("semi-sync replication is on: transactions are acknowledged once durable")
            flags = MARIADB_SEND_ANNOTATE_ROWS if info.flavour == "mariadb" else 0
            await conn.start_binlog_dump(file, position, cfg.server_id, flags)
        except UpstreamError as exc:
            # Already authenticated: "access denied" here means a missing privilege, not a password.
            if exc.code in (ER_ACCESS_DENIED, ER_SPECIFIC_ACCESS_DENIED):
                raise RelayFatal(
                    f"the upstream user {src.user!r} lacks the REPLICATION SLAVE privilege needed to read "
                    f"the binlog (server said: {exc.server_message})",
                    hint=f"GRANT REPLICATION SLAVE ON *.* TO {src.user!r}") from exc
            raise
        LOG.info("relaying from %s:%d (%s %s), starting at %s:%d", src.host, src.port, info.flavour, info.version,
                 file, position, extra={"upstream": f"{src.host}:{src.port}", "file": file})
        self._sessions += 1
        self._connected = True
        if self.metrics is not None:
            self.metrics.relay_connected.set(1)
        self._tracker = TransactionTracker()
        self._syncer = asyncio.create_task(self._sync_loop(), name="relay-sync")
        if self._reached_target():
            await self._commit_now()
            self._caught_up.set()
            return
        await self._pump(conn)

    async def _end_session(self) -> None:
        if self._syncer is not None:
            self._syncer.cancel()
            with contextlib.suppress(asyncio.CancelledError, BinhubError):
                await self._syncer
            self._syncer = None
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()
            self._conn = None
        with contextlib.suppress(BinhubError, OSError):
            self.store.rollback_to_boundary()

    def _ssl_context(self) -> ssl_mod.SSLContext | None:
        mode = self.config.ssl_mode
        if mode == "disabled":
            return None
        ctx = ssl_mod.create_default_context(cafile=str(self.config.ssl_ca) if self.config.ssl_ca else None)
        if mode in ("preferred", "required"):
            ctx.check_hostname = False
            ctx.verify_mode = ssl_mod.CERT_NONE
        return ctx

    def _check_identity(self, info: UpstreamInfo) -> None:
        live = info.identity()
        stored = self.store.state.upstream
        if stored is None:
            if self.store.files:
                return
            self.store.set_identity(live)
        else:
            stored.check(live, self.store.data_dir)

    async def _start_position(self, conn: UpstreamConnection, info: UpstreamInfo) -> tuple[str, int]:
        """Where this dump starts: where the store ends, or (empty store) what the user asked for."""
        cfg = self.config
        store = self.store
        requested = self._requested_start()
        if store.current_file is not None:
            recorded = store.state.requested_start
            if requested is not None and recorded is not None and _conflicts(requested, recorded):
                raise BinhubError(
                    f"the store {store.data_dir} already holds binlogs from {recorded.file or recorded.gtid}; "
                    f"a different start ({requested.gtid or requested.file or requested.kind}) cannot be applied",
                    hint="drop the start option to resume where the store ends, or use a new --data-dir")
            if store.current_finished:
                return store.next_file, 4
            return store.current_file, store.position
        if not info.files:
            raise BinhubError("the upstream lists no binary logs", hint="is binary logging enabled on it?")
        names = [f.name for f in info.files]
        if cfg.start_gtid:
            file = await locate_gtid_start(conn, info, cfg.start_gtid)
            start = RequestedStart("gtid", gtid=cfg.start_gtid, file=file, position=4)
        elif cfg.start_file:
            if cfg.start_file not in names:
                raise StartPositionError(
                    f"the upstream has no binlog file {cfg.start_file!r} (it has {names[0]} … {names[-1]})",
                    hint="pick a file listed by SHOW BINARY LOGS")
            file = cfg.start_file
            start = RequestedStart("file", file=file, position=cfg.start_pos or 4)
        elif cfg.from_now:
            file = info.current_file
            start = RequestedStart("now", gtid=info.gtid_position, file=file, position=info.current_position)
        else:
            file = names[0]
            start = RequestedStart("oldest", file=file, position=4)
        store.update_state(requested_start=start)
        return file, 4

    def _requested_start(self) -> RequestedStart | None:
        cfg = self.config
        if cfg.start_gtid:
            return RequestedStart("gtid", gtid=cfg.start_gtid)
        if cfg.start_file:
            return RequestedStart("file", file=cfg.start_file, position=cfg.start_pos or 4)
        if cfg.from_now:
            return RequestedStart("now")
        return None

    async def _prepare_dump(self, conn: UpstreamConnection, info: UpstreamInfo) -> None:
        period_ns = int(self.config.heartbeat_period * 1e9)
        if info.flavour == "mariadb":
            await conn.execute(f"SET @master_heartbeat_period = {period_ns}")
            await conn.execute("SET @master_binlog_checksum = @@global.binlog_checksum")
            await conn.execute(f"SET @mariadb_slave_capability = {MARIA_SLAVE_CAPABILITY_MINE}")
        else:
            await conn.execute(f"SET @master_heartbeat_period = {period_ns}, @source_heartbeat_period = {period_ns}")
            await conn.execute("SET @master_binlog_checksum = @@global.binlog_checksum, "
                               "@source_binlog_checksum = @@global.binlog_checksum")
            replica_uuid = self.store.state.replica_uuid or str(uuid.uuid4())
            if not self.store.state.replica_uuid:
                self.store.update_state(replica_uuid=replica_uuid)
            await conn.execute(f"SET @slave_uuid = '{replica_uuid}', @replica_uuid = '{replica_uuid}'")

    # ------------------------------------------------------------------ the pump

    async def _pump(self, conn: UpstreamConnection) -> None:
        store = self.store
        while not self._stopping:
            events = await conn.read_events()
            rotated = False
            for ev in events:
                rotated |= self._handle(ev)
                if rotated:
                    # A file ended inside this batch: make it whole on disk before the next one begins.
                    await self._close_finished_file()
                    rotated = False
            store.flush()
            if self.metrics is not None:
                self.metrics.relay_lag.set(self._lag())
            if conn.last_ack_requested:
                self._ack_wanted = True
            if self.config.semi_sync or self.store.durability.mode != "rotate":
                self._sync_wanted.set()
            if self._reached_target():
                await self._commit_now()
                self._caught_up.set()
                return

    def _handle(self, ev: bytes | memoryview) -> bool:
        """Store one event if it is file content. Returns True when it closed the current file."""
        etype = ev[4]
        if etype in _HEARTBEATS:
            self._last_event_ts = 0
            return False
        flags = ev[17] | (ev[18] << 8)
        if flags & _ARTIFICIAL:
            if etype == _ROTATE:
                self._fake_rotate(ev)
            return False
        store = self.store
        size = len(ev)
        if etype == _FDE:
            if store.position != 4:
                return False  # the server repeats the file's FDE when a dump resumes mid-file
            self._checksum_size = _fde_checksum_size(ev)
            if self._checksum_size:
                self._verify(ev, fde=True)
            store.append_fde(ev)
        else:
            if self._checksum_size:
                self._verify(ev)
            store.append(ev)
        log_pos = _U32.unpack_from(ev, 13)[0]
        if log_pos and log_pos != store.position:
            raise ProtocolError(
                f"event of type {etype} ends at {log_pos} according to the upstream but at {store.position} "
                f"in the stored copy of {store.current_file}; refusing to store a file that differs",
                hint="this is a bug or an upstream that rewrites positions; please report it")
        self.events += 1
        self.bytes += size
        if self.metrics is not None:
            self.metrics.relay_events.inc()
            self.metrics.relay_bytes.inc(size)
        self._last_event_ts = _U32.unpack_from(ev, 0)[0]
        tracker = self._tracker
        done = tracker.transactions
        if tracker.feed(ev, self._checksum_size):
            # Control events (ROTATE, FDE, ...) are boundaries too, but complete no transaction.
            gtid = tracker.last_gtid if tracker.transactions != done else None
            store.mark_boundary(gtid, self._last_event_ts)
            if tracker.transactions != done:
                self.transactions += 1
                if self.metrics is not None:
                    self.metrics.relay_transactions.inc()
            if etype == _ROTATE:
                end = size - self._checksum_size
                store.mark_finished(bytes(ev[27:end]).decode())
                return True
            if etype == _STOP:
                store.mark_finished("")
                return True
        return False

    def _verify(self, ev: bytes | memoryview, *, fde: bool = False) -> None:
        body = memoryview(ev)[:-4]
        expected = _U32.unpack_from(ev, len(ev) - 4)[0]
        if fde and ev[17] & _IN_USE:
            data = bytearray(body)
            data[17] &= ~_IN_USE
            actual = zlib.crc32(data)
        else:
            actual = zlib.crc32(body)
        if actual != expected:
            raise ChecksumMismatch(
                f"event of type {ev[4]} received with a bad CRC32 (expected {expected:#010x}, got {actual:#010x})",
                file=self.store.current_file, offset=self.store.position)

    def _fake_rotate(self, ev: bytes | memoryview) -> None:
        """The server names the file it is about to send (dump start, or a file switch)."""
        end = len(ev) - self._checksum_size if self._checksum_size else len(ev)
        name = bytes(ev[27:end]).decode()
        store = self.store
        current = store.current_file
        if name == current:
            return
        if current is not None:
            if not store.at_boundary:
                raise ProtocolError(f"the upstream switched to {name} in the middle of a transaction in {current}")
            if file_seq(name) != file_seq(current) + 1:
                LOG.warning("the upstream skipped from %s to %s", current, name)
            if not store.current_finished:
                # The upstream's file ended without ROTATE or STOP (it crashed): it is complete as it is.
                LOG.info("%s ended without a ROTATE or STOP event (the upstream restarted)", current)
        store.begin_file(name)
        self._tracker = TransactionTracker()

    async def _close_finished_file(self) -> None:
        async with self._sync_lock:
            self.store.close_file()
            LOG.info("binlog file complete: %s", self.store.files[-1], extra={"file": self.store.files[-1]})

    # ------------------------------------------------------------------ group commit

    async def _sync_loop(self) -> None:
        """One fsync at a time; each covers every transaction that arrived while the previous one ran."""
        store = self.store
        mode = store.durability
        while True:
            await self._sync_wanted.wait()
            self._sync_wanted.clear()
            if mode.mode == "interval":
                await asyncio.sleep(mode.interval_ms / 1000)
            async with self._sync_lock:
                target = store.sync_target()
                if target is None:
                    continue
                await asyncio.to_thread(store.fsync)
                store.publish(target)
                if self.metrics is not None and store.last_durable_gtid:
                    self.metrics.set_last_gtid(store.last_durable_gtid)
            if self._ack_wanted and self._conn is not None:
                self._ack_wanted = False
                await self._conn.send_semisync_ack(target.file, target.position)

    async def _commit_now(self) -> None:
        async with self._sync_lock:
            await asyncio.to_thread(self.store.commit)

    def _reached_target(self) -> bool:
        if self._target is None or self.store.current_file is None:
            return False
        seq = file_seq(self.store.current_file)
        tseq, tpos = self._target
        if self.store.current_finished and seq >= tseq:
            return True
        return seq > tseq or (seq == tseq and self.store.position >= tpos)

    def _finish_durably(self) -> None:
        with contextlib.suppress(BinhubError, OSError):
            self.store.rollback_to_boundary()
            self.store.commit()

    def _lag(self) -> float:
        if not self._last_event_ts:
            return 0.0
        return max(0.0, time.time() - self._last_event_ts)


def _fde_checksum_size(ev: bytes | memoryview) -> int:
    """An FDE ends with the checksum algorithm byte and (if any) the CRC: alg 1 means CRC32."""
    server_version = bytes(ev[21:71])
    if not _has_checksum_alg(server_version):
        return 0
    return 4 if ev[len(ev) - 5] == 1 else 0


def _has_checksum_alg(server_version: bytes) -> bool:
    """Servers before 5.6.1 (MySQL) / 5.3 (MariaDB) write no checksum algorithm byte."""
    text = server_version.split(b"\0", 1)[0].decode(errors="replace")
    parts = text.split("-", 1)[0].split(".")
    try:
        major, minor, patch = (int("".join(c for c in p if c.isdigit()) or 0) for p in (parts + ["0", "0"])[:3])
    except ValueError:
        return True
    if "MariaDB" in text:
        return (major, minor) >= (5, 3)
    return (major, minor, patch) >= (5, 6, 1)


def _conflicts(requested: RequestedStart, recorded: RequestedStart) -> bool:
    if requested.kind != recorded.kind:
        return True
    if requested.kind == "gtid":
        return requested.gtid != recorded.gtid
    if requested.kind == "file":
        return requested.file != recorded.file
    return False


__all__ = ["Relay", "RelayFatal"]
