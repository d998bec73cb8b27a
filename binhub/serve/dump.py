"""The binlog dump: what binhub sends after COM_BINLOG_DUMP / COM_BINLOG_DUMP_GTID, until it ends.

One :class:`DumpSession` per replica connection. It resolves the start (:mod:`binhub.store.seek`), sends the
per-flavour preamble as a real primary does (``preamble.py``), then streams the store's events
untouched from a :class:`~binhub.store.follower.StoreFollower`:

* every event goes out as ``0x00`` + event (``0x00 0xEF flag`` + event with semi-sync); the
  connection frames payloads and splits those of 0xFFFFFF bytes or more;
* events go out a span (up to a MiB) at a time, then one ``drain``: the per-session backpressure,
  so a slow replica only slows its own task. Past its start, a replica gets spans of the file
  framed once and shared with every replica at the same place (``_write_plain``);
* what the replica gets of those events, given its start (GTID skipping, each file's FDE,
  ANNOTATE_ROWS, the announcements of skipped runs) is decided by an
  :class:`~binhub.serve.selector.EventSelector`;
* heartbeats (v1, or v2 when a MySQL replica sets dump flag bit 1) after ``@master_heartbeat_period``
  without events, naming the file and position the replica has reached;
* ``BINLOG_DUMP_NON_BLOCK`` (or server_id 0): an EOF packet once everything durable was sent;
* MariaDB's ``@slave_until_gtid`` (``START SLAVE UNTIL master_gtid_pos``): an EOF packet after the
  stop position's artificial GTID_LIST (:mod:`binhub.serve.until`).

The session ends when the replica goes (its socket reader task sees the close), on an error
(sent as an ERR packet first), or at the NON_BLOCK end.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from dataclasses import dataclass
from typing import Protocol

from binhub._speedups import frame_events
from binhub.binlog.constants import HEADER_SIZE
from binhub.binlog.gtid import MariadbGtid, MariadbGtidList, MysqlGtidSet
from binhub.errors import BinhubError, GtidError, StartPositionError, StorageError, StoreBehind
from binhub.serve import preamble
from binhub.serve.dump_error import DumpError
from binhub.serve.metrics import ServeMetrics
from binhub.serve.selector import MARIA_SLAVE_CAPABILITY_GTID, EventSelector, Selected
from binhub.serve.until import UntilGtid, stopped_before_start
from binhub.store import StoreReader
from binhub.store.follower import StoreFollower
from binhub.store.seek import StartPlan, plan_file_position, plan_mariadb_gtid, plan_mysql_gtid
from binhub.wire.commands import ComBinlogDump, ComBinlogDumpGtid, SemisyncAck
from binhub.wire.constants import SEMISYNC_MAGIC, SEMISYNC_NEED_ACK
from binhub.wire.errors import ErrorCode, MysqlError
from binhub.wire.messages import EofPacket

LOG = logging.getLogger("binhub.serve.dump")

NON_BLOCK = 0x01
FLAG_BIT1 = 0x02  # MariaDB COM_BINLOG_DUMP: send ANNOTATE_ROWS; MySQL: heartbeat v2
BATCH_BYTES = 1 << 20

_U32 = struct.Struct("<I")


# --------------------------------------------------------------------------- what the dump uses

class DumpConnection(Protocol):
    """What the dump needs of the server-side connection (``binhub.net.server.ServerConnection``)."""

    sequence: int  # sequence id of the next packet written

    @property
    def closed(self) -> bool: ...

    async def read_packet(self) -> bytes: ...

    def write_packets(self, payloads: list[bytes]) -> None: ...

    # Optional (``ServerConnection`` has it): framed packets shared with other connections.
    # def write_shared(self, data: bytes, packets: int) -> None: ...

    async def drain(self) -> None: ...


class DumpSessionState(Protocol):
    user_vars: dict[str, str]
    # None until COM_REGISTER_SLAVE or the dump names one (``SessionState``); the dump then
    # falls back to the server_id of the dump command.
    replica_server_id: int | None
    connection_id: int
    greeted_version: str  # what the greeting announced ("": not known)


class DumpServer(Protocol):
    store: StoreReader
    server_id: int
    metrics: ServeMetrics
    replica_ahead_wait: float  # how long a replica ahead of the store waits for the relay (``StoreBehind``)

    @property
    def version_string(self) -> str: ...


@dataclass
class DumpContext:
    conn: DumpConnection
    state: DumpSessionState
    command: ComBinlogDump | ComBinlogDumpGtid
    server: DumpServer


async def serve_dump(ctx: DumpContext) -> None:
    """Run one dump until the replica leaves, an error was sent, or a NON_BLOCK dump reached the end."""
    await DumpSession(ctx).run()


def _truthy(value: str | None) -> bool:
    return (value or "").strip().strip("'\"").lower() in {"1", "on", "true", "yes"}


def _frame_span(data: bytes, seq: int, drop: int, file: str, start: int) -> tuple[bytes, int, int, int, int]:
    try:
        return frame_events(data, seq, drop)
    except ValueError as exc:
        raise StorageError(f"{file} (from offset {start}): {exc}", hint="run `binhub binlog verify` on the store") from None


# --------------------------------------------------------------------------- the session

class DumpSession:
    def __init__(self, ctx: DumpContext) -> None:
        self.conn = ctx.conn
        self.server = ctx.server
        self.store = ctx.server.store
        self.server_id = ctx.server.server_id
        self.metrics = ctx.server.metrics
        self.command = ctx.command
        self.replica_id = ctx.state.replica_server_id or ctx.command.server_id
        uv = {k.lower().lstrip("@"): v for k, v in ctx.state.user_vars.items()}
        self.vars = uv
        self.flags = int(ctx.command.flags)
        self._set_flavour(self._flavour())
        self.non_block = bool(self.flags & NON_BLOCK) or ctx.command.server_id == 0
        self.semisync = _truthy(uv.get("rpl_semi_sync_slave")) or _truthy(uv.get("rpl_semi_sync_replica"))
        period_ns = uv.get("master_heartbeat_period") or uv.get("source_heartbeat_period") or "0"
        try:
            self.heartbeat_period = max(0.0, float(period_ns.strip("'\"")) / 1e9)
        except ValueError:
            self.heartbeat_period = 0.0
        try:
            self.capability = int((uv.get("mariadb_slave_capability") or "0").strip("'\""))
        except ValueError:
            self.capability = 0
        declared = uv.get("master_binlog_checksum", uv.get("source_binlog_checksum"))
        self.checksum_aware = declared is not None
        self.rotate_crc = (declared or "").strip("'\"").upper() == "CRC32"
        self.holder = f"dump of replica {self.replica_id} (connection {ctx.state.connection_id})"
        self.greeted_version = ctx.state.greeted_version
        self.follower: StoreFollower | None = None
        self.until: UntilGtid | None = None  # @slave_until_gtid of a MariaDB GTID dump (``_make_plan``)
        self.acks = 0
        self.events = 0
        self.bytes = 0

    def _set_flavour(self, flavour: str) -> None:
        self.flavour = flavour
        self.heartbeat_v2 = flavour == "mysql" and bool(self.flags & FLAG_BIT1)
        self.send_annotate = flavour == "mariadb" and isinstance(self.command, ComBinlogDump) and bool(self.flags & FLAG_BIT1)

    def _flavour(self) -> str:
        up = self.store.state.upstream
        if up is not None and up.flavour:
            return up.flavour
        files = self.store.files
        if files:
            with contextlib.suppress(BinhubError, OSError):
                return "mariadb" if self.store.file_head(files[0]).is_mariadb else "mysql"
        return "mariadb"

    # -- lifecycle ------------------------------------------------------------------------------
    async def run(self) -> None:
        reader = asyncio.create_task(self._read_replica(), name=f"dump-reader-{self.replica_id}")
        streamer = asyncio.create_task(self._run_stream(), name=f"dump-{self.replica_id}")
        try:
            await asyncio.wait({reader, streamer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (streamer, reader):
                if not task.done():
                    task.cancel()
            for task in (streamer, reader):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            if self.follower is not None:
                self.follower.close()
            LOG.info("dump of replica %s ended: %d events, %d bytes, %d semi-sync acks", self.replica_id,
                     self.events, self.bytes, self.acks)

    async def _run_stream(self) -> None:
        try:
            await self._stream()
        except MysqlError as exc:
            await self._send_error(exc)
        except StartPositionError as exc:  # the store cannot serve the start (purged, unknown, not reached)
            await self._send_error(DumpError(str(exc)))
        except StorageError as exc:
            await self._send_error(DumpError(f"binhub could not read its store: {exc}"))
        except (ConnectionError, OSError) as exc:
            LOG.info("replica %s disconnected: %s", self.replica_id, exc)
        except BinhubError as exc:
            if not self.conn.closed:
                await self._send_error(DumpError(str(exc)))

    async def _send_error(self, error: MysqlError) -> None:
        LOG.warning("dump of replica %s refused: %s", self.replica_id, error)
        self.metrics.dump_errors.inc()
        if self.conn.closed:
            return
        with contextlib.suppress(Exception):
            self.conn.write_packets([error.packet()])
            await self.conn.drain()

    async def _read_replica(self) -> None:
        """The replica's side of the socket: semi-sync acks, or its going away."""
        while True:
            try:
                payload = await self.conn.read_packet()
            except (BinhubError, ConnectionError, OSError, asyncio.IncompleteReadError, EOFError):
                return
            if not payload:
                return
            if payload[0] == SEMISYNC_MAGIC:
                with contextlib.suppress(BinhubError, ValueError):
                    ack = SemisyncAck.parse(payload)
                    self.acks += 1
                    self.metrics.semisync_acks.inc()
                    LOG.debug("semi-sync ack from replica %s: %s:%d", self.replica_id, ack.filename, ack.position)
            elif payload[0] == 0x01:  # COM_QUIT
                return

    # -- start ----------------------------------------------------------------------------------
    def _make_plan(self) -> StartPlan:
        cmd = self.command
        if self.flavour == "mysql" and cmd.position < 4:
            # mysqld's check_start_file, for both dump commands, a file named or not (mariadbd says
            # "impossible position" for a file/position dump and ignores the position in GTID mode).
            raise DumpError("Client requested master to start replication from position < 4")
        if isinstance(cmd, ComBinlogDumpGtid):
            try:
                exclude = MysqlGtidSet.decode(cmd.gtid_data) if cmd.gtid_data else MysqlGtidSet()
            except GtidError as exc:
                raise DumpError(f"malformed GTID set in COM_BINLOG_DUMP_GTID: {exc}") from None
            if cmd.filename:
                # mysqld (check_start_file): a named file is where the dump starts, GTIDs or not;
                # the set's transactions are still skipped (``mysqlbinlog --exclude-gtids``).
                plan = plan_file_position(self.store, cmd.filename, cmd.position)
                plan.mysql_exclude = exclude
                return plan
            return plan_mysql_gtid(self.store, exclude)
        connect_state = self.vars.get("slave_connect_state")
        if self.flavour == "mariadb" and connect_state is not None:
            try:
                wanted = MariadbGtidList.parse(connect_state.strip("'\""))
            except GtidError as exc:
                # mariadbd's GTID list parser answers this before the dump's own "malformed slave request".
                raise MysqlError(ErrorCode.INCORRECT_GTID_STATE, "Could not parse GTID list",
                                 hint=f"@slave_connect_state: {exc}") from None
            until = self._parse_until()
            ignore_duplicates = _truthy(self.vars.get("slave_gtid_ignore_duplicates"))
            if until is not None and not ignore_duplicates:
                ignore_duplicates = stopped_before_start(self.store.mariadb_state(), wanted, until)
            plan = plan_mariadb_gtid(self.store, wanted, strict=_truthy(self.vars.get("slave_gtid_strict_mode")),
                                     ignore_duplicates=ignore_duplicates)
            if until is not None:
                # mariadbd reads every transaction from the start file's head on: an index jump
                # would hide GTIDs that count for the stop.
                plan.position = 4
                self.until = UntilGtid(until.values())
            return plan
        return plan_file_position(self.store, cmd.filename, cmd.position)

    def _check_replica(self, plan: StartPlan) -> None:
        head = self.store.file_head(plan.file)
        if head.crc and not self.checksum_aware:
            raise DumpError("Slave can not handle replication events with the checksum that master is "
                            "configured to log")
        if self.flavour == "mariadb" and self.capability < MARIA_SLAVE_CAPABILITY_GTID:
            raise DumpError(
                f"binhub serves MariaDB binlogs only to GTID-aware replicas (@mariadb_slave_capability="
                f"{MARIA_SLAVE_CAPABILITY_GTID}, MariaDB 10.0 and later); this replica announced "
                f"{self.capability}, so GTID, GTID_LIST and BINLOG_CHECKPOINT events would have to be rewritten")

    # -- streaming ------------------------------------------------------------------------------
    async def _plan(self) -> StartPlan:
        """The start plan; a replica ahead of the store waits (bounded) for the relay to get there.

        A replica moved from the primary to binhub is often a few transactions ahead of binhub's
        relay. Nothing is sent while waiting, so the wait stays below a replica's net timeout
        (``slave_net_timeout``, 60 s by default); past it the replica gets the error.
        """
        loop = asyncio.get_running_loop()
        wait = self.server.replica_ahead_wait
        deadline = loop.time() + wait
        announced = False
        while True:
            try:
                return await asyncio.to_thread(self._make_plan)
            except StoreBehind as exc:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise
                if not announced:
                    announced = True
                    LOG.warning("replica %s is ahead of binhub's store (%s); waiting up to %.0f s for the relay",
                                self.replica_id, exc, wait)
                await self.store.wait(min(remaining, 1.0))

    def _check_greeting(self) -> None:
        """A replica greeted as the wrong flavour (before binhub knew its upstream) must reconnect.

        Started before its relay, binhub greets as a MariaDB server (``UNKNOWN_UPSTREAM_VERSION``
        in ``server.py``): a replica chooses its dump by that greeting. Once the store names a
        MySQL upstream, a replica greeted so is let go with an error other than 1236, which makes
        it reconnect at once (rather than stop) and be greeted as what the upstream is.
        """
        greeted_mariadb = "mariadb" in self.greeted_version.lower()
        if self.greeted_version and greeted_mariadb != (self.flavour == "mariadb"):
            raise MysqlError(ErrorCode.UNKNOWN_ERROR,
                             f"binhub knew nothing of its upstream yet when this replica connected (it was greeted "
                             f"as {self.greeted_version}, the upstream is {self.server.version_string}); "
                             "reconnect to replicate from it")

    def _parse_until(self) -> dict[int, MariadbGtid] | None:
        """A MariaDB GTID dump's ``@slave_until_gtid``, by domain (mariadbd ignores it by file/position)."""
        text = self.vars.get("slave_until_gtid")
        if text is None:
            return None
        try:
            return {g.domain_id: g for g in MariadbGtidList.parse(text.strip("'\""))}
        except GtidError as exc:  # mariadbd's GTID list parser answers this before the dump's own message
            raise MysqlError(ErrorCode.INCORRECT_GTID_STATE, "Could not parse GTID list",
                             hint=f"@slave_until_gtid: {exc}") from None

    async def _stream(self) -> None:
        plan = await self._plan()
        self._set_flavour(self._flavour())  # the store may have been empty when the session began
        self._check_greeting()
        self._check_replica(plan)
        head = self.store.file_head(plan.file)
        selector = EventSelector(plan, flavour=self.flavour, server_id=self.server_id,
                                 crc=head.crc if plan.mid_file else self.rotate_crc,
                                 send_annotate=self.send_annotate, capability=self.capability,
                                 heartbeat_v2=self.heartbeat_v2, metrics=self.metrics, until=self.until)
        # The dump command opened the exchange with sequence id 0: the stream continues from 1.
        self.conn.sequence = 1
        out = [preamble.fake_rotate(plan.file, plan.rotate_position, self.server_id, crc=self.rotate_crc)]
        start = plan.position
        if plan.mid_statement and self.flavour == "mariadb":
            # A MariaDB replica by file/position keeps its check that a statement's row events end
            # with STMT_END_F across a reconnect (``rows_event_tracker``, reset on reconnect only
            # in GTID mode): any other event before the statement's last row event, the ROTATE and
            # FDE mariadbd sends here included, stops it with 1595 ("did not receive an expected
            # Rows-log end-of-statement"). The replica knows the file and position it asked for and
            # the checksum (@master_binlog_checksum), so the statement simply goes on; the next
            # file gets its ROTATE and FDE as usual.
            out = []
        elif plan.mid_file:
            out.append(preamble.dump_fde(head.fde, zero_log_pos=True, zero_created=True, crc=head.crc))
        elif plan.jumps:
            start = 4  # the head (FDE, PREVIOUS_GTIDS / GTID_LIST, checkpoints) first, then the jump
        else:
            start = 4 if plan.position == 4 else plan.position
        self.follower = follower = StoreFollower(self.store, plan.file, start, holder=self.holder)
        self._send(out)
        await self.conn.drain()
        LOG.info("dump to replica %s from %s:%d (%s%s)", self.replica_id, plan.file, plan.position,
                 "GTID" if plan.gtid_mode else "file/position", ", jumping with the GTID index" if plan.jumps else "")
        jump_pending = plan.jumps
        timeout: float | None = 0 if self.non_block else (self.heartbeat_period or None)
        while True:
            if not await follower.ready(timeout):
                if self.non_block:
                    self._send(selector.announce_skipped())
                    self.conn.write_packets([EofPacket().build()])
                    await self.conn.drain()
                    return
                self._send(selector.announce_skipped() or [selector.heartbeat()])
                await self.conn.drain()
                continue
            if not jump_pending and await self._write_plain(follower, selector):
                await self.conn.drain()
                continue
            # A file's FDE is read alone: the rest of the file can then take the plain path.
            batch = await follower.read(0, max_bytes=HEADER_SIZE if follower.position == 4 else BATCH_BYTES)
            events, jump_now = selector.select(batch, jump_pending)
            if jump_now:
                jump_pending = False
                follower.seek(plan.position)
                selector.jumped(plan.position)
            await self._write(events)
            if selector.until_reached:
                LOG.info("dump to replica %s reached its UNTIL position %s", self.replica_id,
                         self.vars.get("slave_until_gtid"))
                self.conn.write_packets([EofPacket().build()])
                await self.conn.drain()
                return

    # -- the plain path: a replica past its start gets every event as it is ------------------------
    async def _write_plain(self, follower: StoreFollower, selector: EventSelector) -> bool:
        """Send the next span of the file untouched if nothing in it needs a decision.

        Once a replica has reached its start, nothing is skipped any more (MariaDB; MySQL GTID dumps
        always take ``selector.select``), so a span of the file is its events framed as packets. The
        framed span is built once (in C where the extension is built) and shared through the hub by
        every replica at the same position with the same next sequence id, the common case of a
        fan-out (same preamble, same span boundaries): a replica then costs a dict lookup and a
        zero-copy socket write per MiB, not a pass over its events. False leaves the span to
        ``selector.select`` (a file's FDE, a decision to make, a connection that cannot share buffers).
        """
        write = getattr(self.conn, "write_shared", None)
        if write is None or self.semisync or not selector.passes_span(follower.file, follower.position):
            return False
        drop = selector.dropped_type
        seq = self.conn.sequence
        file, start = follower.file, follower.position

        async def build() -> tuple[tuple[bytes, int, int, int, int], int]:
            data = await follower.read_raw(BATCH_BYTES)
            framed, packets, events, consumed, nbytes = _frame_span(data, seq, drop, file, start)
            if not consumed and len(data) >= HEADER_SIZE:
                # One event longer than a span: that event alone (split into packets if need be).
                data = await follower.read_raw(_U32.unpack_from(data, 9)[0])
                framed, packets, events, consumed, nbytes = _frame_span(data, seq, drop, file, start)
            if not consumed:
                raise StorageError(f"{file}: the event at offset {start} runs past the durable end",
                                   hint="run `binhub binlog verify` on the store")
            return (framed, packets, events, start + consumed, nbytes), len(framed)

        framed, packets, count, end, nbytes = await follower.hub.memo_build(("framed", file, start, seq, drop), build)
        follower.seek(end)
        if packets:
            write(framed, packets)
        selector.pos = end
        self.events += count
        self.bytes += nbytes
        self.metrics.dump_events.inc(count)
        self.metrics.dump_bytes.inc(nbytes)
        return True

    # -- writing --------------------------------------------------------------------------------
    def _send(self, events: list[bytes]) -> None:
        """Artificial events (preamble, heartbeats): framed like file events, never asking for an ack."""
        if events:
            prefix = b"\x00" + bytes((SEMISYNC_MAGIC, 0)) if self.semisync else b"\x00"
            self.conn.write_packets([prefix + e for e in events])

    async def _write(self, out: list[Selected]) -> None:
        if not out:
            return
        n = sum(len(e) for e, _ in out)
        self.events += len(out)
        self.bytes += n
        self.metrics.dump_events.inc(len(out))
        self.metrics.dump_bytes.inc(n)
        if not self.semisync:
            self.conn.write_packets([b"\x00" + e for e, _ in out])
            await self.conn.drain()
            return
        # Semi-sync: ask for an ack at the last transaction end of the batch (an ack covers everything
        # before it). After such an event a primary restarts its sequence ids at 1, because the
        # replica's ack (sequence 0) interleaves with the stream; the replica expects exactly that.
        last = max((i for i, (_, ends) in enumerate(out) if ends), default=-1)
        head = [b"\x00" + bytes((SEMISYNC_MAGIC, SEMISYNC_NEED_ACK if i == last else 0)) + e
                for i, (e, _) in enumerate(out)]
        if last < 0:
            self.conn.write_packets(head)
        else:
            self.conn.write_packets(head[:last + 1])
            self.conn.sequence = 1
            if last + 1 < len(head):
                self.conn.write_packets(head[last + 1:])
            self.metrics.semisync_requests.inc()
        await self.conn.drain()


__all__ = ["DumpConnection", "DumpContext", "DumpServer", "DumpSession", "DumpSessionState", "serve_dump"]
