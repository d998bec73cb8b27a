"""The Kafka side of ``binhub apply``: which partitions it reads, from where, and what it feeds the
:class:`~binhub.apply.merge.Merger`.

A plain consumer with manual assignment (``isolation.level=read_committed``: only what
``binhub stream`` committed). The topics are those ``--from`` names (templates and regular
expressions are matched against the broker's topics, again at every seal: a new table's topic
appears while apply runs), plus the checkpoint topic, whose records under the writing stream's id
are the seals. Where each partition starts is the downstream's checkpoint (the offsets committed
with the rows); partitions it does not name start at their beginning. Consumer-group offsets are
neither read nor needed.

A partition with nothing buffered is cleared for a seal by a look at its high watermark
(``READ_UNCOMMITTED``: the end of what is written, committed or not) taken after the seal was read.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from confluent_kafka import Consumer, IsolationLevel, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec  # type: ignore[attr-defined]

from binhub.apply.changes import Where, read_change
from binhub.apply.config import KafkaApplyConfig
from binhub.apply.merge import Merger, PartitionId
from binhub.errors import BadMessage, SourceError
from binhub.sinks import Checkpoint
from binhub.store.index import file_seq

__all__ = ["KafkaReader", "offsets_json"]

log = logging.getLogger(__name__)

_BATCH = 2000  # messages per poll
_MAX_BUFFERED = 50_000  # changes a partition buffers before it is paused (the merge waits for another)
_EARLIEST = OffsetSpec.earliest()  # type: ignore[no-untyped-call]
_LATEST = OffsetSpec.latest()  # type: ignore[no-untyped-call]


def offsets_json(merger: Merger, checkpoint_partition: PartitionId) -> str:
    """Where every partition resumes after what the merger released, as the downstream keeps it."""
    parts = [[t, p, o] for (t, p), o in sorted(merger.offsets().items())]
    seal = [*checkpoint_partition, merger.seal_offset] if merger.seal_offset >= 0 else None
    return orjson.dumps({"partitions": parts, "checkpoint": seal}).decode()


def _parse_offsets(text: str) -> tuple[dict[PartitionId, int], int]:
    if not text:
        return {}, -1
    doc = orjson.loads(text)
    seal = doc.get("checkpoint")
    return {(t, int(p)): int(o) for t, p, o in doc.get("partitions", [])}, int(seal[2]) if seal else -1


class KafkaReader:
    """Reads the source's partitions into a merger (module docstring)."""

    def __init__(self, config: KafkaApplyConfig, resume: Checkpoint | None) -> None:
        self.config = config
        self.bootstrap = config.source.bootstrap
        self.producer_id = config.producer_id.encode()
        self.checkpoint_partition: PartitionId = (config.checkpoint_topic, 0)
        self._match = config.source.matcher()
        ddl_topic = f"{config.producer_id}.ddl" if config.source.templated else ""
        self._ddl_topics = frozenset(t for t in (ddl_topic, config.schema_topic) if t)
        common: dict[str, Any] = {"bootstrap.servers": self.bootstrap, "socket.connection.setup.timeout.ms": 10_000,
                                  "logger": logging.getLogger("binhub.apply.librdkafka")}
        self._admin = AdminClient(common)
        self.consumer = Consumer({**common, "group.id": f"binhub-apply.{config.name}", "enable.auto.commit": False,
                                  "isolation.level": "read_committed", "auto.offset.reset": "earliest",
                                  "enable.partition.eof": False})
        self._start, self._seal_start = _parse_offsets(resume.offsets if resume is not None else "")
        after = (file_seq(resume.file), resume.pos) if resume is not None and resume.file else None
        self.merger = Merger(after)
        self._targets: dict[PartitionId, tuple[int, int]] = {}  # high watermark to reach, for seal number
        self._paused: set[PartitionId] = set()
        self.bad: BadMessage | None = None  # a message that is no change: its partition reads no further
        self.bad_partition: PartitionId = ("", -1)
        self._checkpoint_assigned = False
        self.discover(first=True)

    # -- partitions --------------------------------------------------------------------------------
    def discover(self, *, first: bool = False) -> None:
        """Assign the partitions of matching topics not assigned yet."""
        try:
            metadata = self.consumer.list_topics(timeout=self.config.timeout)
        except KafkaException as exc:
            raise self._error("cannot reach the Kafka broker", exc.args[0]) from None
        topics = metadata.topics
        if first and self.config.checkpoint_topic not in topics:
            raise SourceError(f"the Kafka broker at {self.bootstrap} has no topic {self.config.checkpoint_topic}, "
                              "where binhub stream commits its checkpoints",
                              hint="apply reads topics written by binhub stream --to kafka://; start the stream first")
        new = [(name, p) for name, t in topics.items()
               if (self._match.match(name) or name in self._ddl_topics) and name != self.config.checkpoint_topic
               for p in t.partitions if (name, p) not in self.merger.parts]
        if first and not new:
            raise SourceError(f"no topic at the Kafka broker {self.bootstrap} matches {','.join(self.config.source.topics)}",
                              hint="check the topic names (binhub stream creates them on its first change)")
        earliest = self._list_offsets(new, _EARLIEST, IsolationLevel.READ_COMMITTED) if new else {}
        assign = []
        for pid in new:
            offset = self._start.get(pid, earliest[pid])
            if offset < earliest[pid]:
                raise SourceError(f"{pid[0]}[{pid[1]}] no longer holds offset {offset}, where the downstream's "
                                  f"checkpoint resumes (it begins at {earliest[pid]}: retention removed the rest)",
                                  hint="the changes in between are gone from Kafka: bring the downstream up to "
                                       "date another way (binhub replay from the store), and keep the topic longer "
                                       "(retention.ms) than apply may stay stopped")
            self.merger.add(pid, offset)
            assign.append(TopicPartition(*pid, offset))
        if not self._checkpoint_assigned:
            start = self._seal_start  # the seal of the downstream's checkpoint, read again
            if start < 0:
                start = self._list_offsets([self.checkpoint_partition], _EARLIEST,
                                           IsolationLevel.READ_COMMITTED)[self.checkpoint_partition]
            assign.append(TopicPartition(*self.checkpoint_partition, start))
            self._checkpoint_assigned = True
        if assign:
            self.consumer.incremental_assign(assign)
            log.info("reading %s", ", ".join(f"{t.topic}[{t.partition}]@{t.offset}" for t in assign))

    def _list_offsets(self, pids: list[PartitionId], spec: Any, level: IsolationLevel) -> dict[PartitionId, int]:
        futures = self._admin.list_offsets({TopicPartition(*pid): spec for pid in pids}, isolation_level=level,
                                           request_timeout=self.config.timeout)
        try:
            return {(tp.topic, tp.partition): f.result().offset for tp, f in futures.items()}
        except KafkaException as exc:
            raise self._error("cannot read the offsets of the topics", exc.args[0]) from None

    # -- reading -----------------------------------------------------------------------------------
    def poll(self, timeout: float) -> int:
        """Read what is there (up to a batch) into the merger; the number of messages."""
        messages = self.consumer.consume(_BATCH, timeout)
        merger, fmt = self.merger, self.config.format
        for msg in messages:
            error = msg.error()
            if error is not None:
                if error.fatal() or error.code() in (KafkaError.TOPIC_AUTHORIZATION_FAILED,):
                    raise self._error("the Kafka consumer failed", error)
                log.warning("Kafka: %s", error.str())
                continue
            pid: PartitionId = (msg.topic() or "", msg.partition() or 0)
            offset = msg.offset() or 0
            if self.bad is not None and pid == self.bad_partition:
                continue
            if pid == self.checkpoint_partition:
                self._seal(msg.key(), msg.value(), offset)
                continue
            value = msg.value()
            if value is None:
                merger.passed(pid, offset)
                continue
            try:
                change = read_change(value, Where(pid[0], pid[1], offset), fmt)
            except BadMessage as exc:
                # What surely comes before it is still applied (the merger releases it); then apply stops.
                self.bad, self.bad_partition = exc, pid
                self.consumer.pause([TopicPartition(*pid)])
                continue
            merger.push(pid, change)
        self._pause_full()
        return len(messages)

    def _seal(self, key: bytes | None, value: bytes | None, offset: int) -> None:
        if key != self.producer_id or value is None:
            return
        try:
            doc = orjson.loads(value)
            file, pos = doc["file"], int(doc["pos"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            log.warning("the checkpoint record at offset %d of %s cannot be read: ignored", offset,
                        self.checkpoint_partition[0])
            return
        if file:
            before = self.merger.seal_number
            self.merger.sealed((file_seq(file), pos, -1), offset)
            if self.merger.seal_number != before and self.config.source.templated:
                self.discover()  # a topic made for the changes this seal covers exists by now

    def clear_waiting(self) -> None:
        """Clear the partitions the merger waits for that are read to their high watermark."""
        merger = self.merger
        if not merger.waiting or merger.seal is None:
            return
        number = merger.seal_number
        probe = [pid for pid in merger.waiting if self._targets.get(pid, (0, -1))[1] != number]
        if probe:
            for pid, end in self._list_offsets(probe, _LATEST, IsolationLevel.READ_UNCOMMITTED).items():
                self._targets[pid] = (end, number)
        waiting = list(merger.waiting)
        for tp in self.consumer.position([TopicPartition(*pid) for pid in waiting]):
            pid = (tp.topic, tp.partition)
            end, seal = self._targets[pid]
            position = tp.offset if tp.offset >= 0 else merger.parts[pid].next_offset
            if position >= end:
                merger.clear(pid, seal)

    def _pause_full(self) -> None:
        merger = self.merger
        for pid, part in merger.parts.items():
            size = len(part.buffer)
            if size > _MAX_BUFFERED and pid not in self._paused:
                self.consumer.pause([TopicPartition(*pid)])
                self._paused.add(pid)
            elif size <= _MAX_BUFFERED // 2 and pid in self._paused:
                self.consumer.resume([TopicPartition(*pid)])
                self._paused.discard(pid)

    # -- progress ----------------------------------------------------------------------------------
    def ends(self) -> dict[PartitionId, int]:
        """The end of every assigned partition now (committed or not)."""
        pids = [*self.merger.parts, self.checkpoint_partition]
        return self._list_offsets(pids, _LATEST, IsolationLevel.READ_UNCOMMITTED)

    def reached(self, ends: dict[PartitionId, int]) -> bool:
        """Whether every partition is read up to ``ends``."""
        for tp in self.consumer.position([TopicPartition(*pid) for pid in ends]):
            pid = (tp.topic, tp.partition)
            position = tp.offset if tp.offset >= 0 else self.merger.parts[pid].next_offset \
                if pid in self.merger.parts else 0
            if position < ends[pid]:
                return False
        return True

    def lag(self) -> int:
        """Committed messages not applied yet: those past the consumer's position (by the last fetches'
        end, which counts Kafka's transaction markers too) and those it holds back."""
        behind = 0
        merger = self.merger
        for tp in self.consumer.position([TopicPartition(*pid) for pid in merger.parts]):
            pid = (tp.topic, tp.partition)
            try:
                _, high = self.consumer.get_watermark_offsets(tp, cached=True)
            except KafkaException:
                continue
            part = merger.parts[pid]
            position = tp.offset if tp.offset >= 0 else part.next_offset
            behind += len(part.buffer) + (max(0, high - position) if high >= 0 else 0)
        return behind

    def offsets(self) -> str:
        return offsets_json(self.merger, self.checkpoint_partition)

    def close(self) -> None:
        self.consumer.close()

    def _error(self, what: str, error: KafkaError) -> SourceError:
        return SourceError(f"{what} at {self.bootstrap}: {error.str()}",
                           hint="check that the broker is up and reachable (--kafka-timeout says how long apply "
                                "waits for it); started again, apply resumes at the downstream's checkpoint")

