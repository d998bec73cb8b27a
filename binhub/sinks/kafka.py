"""``--to kafka://HOST:PORT/TOPIC``: one Kafka message per change, keyed by primary key, with the
stream's checkpoint committed in the same Kafka transaction as the messages.

Routing: ``{db}`` and ``{table}`` in TOPIC make a topic per database or table (characters Kafka
does not allow in a topic name become ``_``, as Debezium does); DDL goes to ``ddl_topic`` (default:
TOPIC itself when it has no placeholders, so DDL stays in order with the rows, else
``<transactional id>.ddl``). Topics are created on first use with ``partitions`` partitions (-1:
the broker's default). The key is the change's primary key as JSON (the whole row for a table
without one), so the default partitioner keeps every row's changes in order and compaction keeps
its last state.

Delivery (``transactions``):

* ``on`` (``auto`` when the broker supports transactions): a transactional producer
  (``transactional.id`` = ``id``). Each commit of the stream is one Kafka transaction holding its
  messages *and* the checkpoint record (key ``id``, value the position as JSON) in the compacted
  topic ``checkpoint_topic``. A consumer with ``isolation.level=read_committed`` sees a
  transaction's changes exactly when the checkpoint after them is durable, so a restart after
  ``kill -9`` resumes exactly where the committed output ends: no loss, no duplicate. On open the
  producer's ``init_transactions`` fences a previous incarnation (aborting its open transaction)
  before the checkpoint is read back.
* ``off`` (``auto`` when the broker lacks them): an idempotent producer; the checkpoint is written
  after every message before it is acknowledged (``acks=all``). After a crash the changes past
  the last checkpoint are delivered again: at least once, with the same key, so consumers (or
  compaction) dedupe by key and position.

A change bigger than ``max_message_bytes`` (the producer's ``message.max.bytes``), or one the broker
refuses as too large, stops the stream with :class:`~binhub.errors.MessageTooLarge` naming its
table and key: never dropped, never split. A broker that goes away is retried by librdkafka for
``timeout`` seconds, then the stream stops with :class:`~binhub.errors.SinkError`; nothing past the
last committed checkpoint counts as delivered, so a restart resumes there.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict
from typing import Any

import orjson
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from binhub.errors import MessageTooLarge, SinkError
from binhub.sinks.base import Checkpoint, CheckpointSource, Message
from binhub.sinks.kafka_config import KafkaOptions, KafkaTarget, topic_name

__all__ = ["KafkaSink"]

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 1
_TRANSACTION_TIMEOUT_MS = 900_000
_QUEUE_WAIT = 0.05  # seconds to let librdkafka drain its queue when it is full
# What a broker without transactions answers InitProducerId with a transactional.id: a Kafka too old
# for them, ACLs that deny transactional ids, Redpanda with enable_transactions off.
_NO_TRANSACTIONS = frozenset({KafkaError._UNSUPPORTED_FEATURE, KafkaError.UNSUPPORTED_VERSION,
                              KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, KafkaError.CLUSTER_AUTHORIZATION_FAILED})
_QUEUE_MESSAGES = 500_000  # queue.buffering.max.messages: what librdkafka holds unacknowledged
_POLL_EVERY = 10_000  # messages between polls for librdkafka's callbacks (errors only; commits poll too)
# After this long without an answer while opening, say so: the sink waits up to kafka_timeout
# (a minute by default) and the user would otherwise see nothing at all meanwhile.
_SLOW_BROKER_NOTICE = 5.0
_TOO_LARGE = {KafkaError.MSG_SIZE_TOO_LARGE, getattr(KafkaError, "RECORD_LIST_TOO_LARGE", -10_000)}


class KafkaSink:
    """The Kafka sink (module docstring). A :class:`~binhub.sinks.base.KeyedSink`."""

    def __init__(self, target: KafkaTarget, name: str, options: KafkaOptions | None = None) -> None:
        self.target = target
        self.options = options = options if options is not None else KafkaOptions()
        self.id = options.id or f"binhub.{name}"
        self.ddl_topic = options.ddl_topic or (target.topic if "{" not in target.topic else f"{self.id}.ddl")
        self._templated = "{" in target.topic
        self._topics: dict[tuple[str, str], str] = {}
        self._created: set[str] = set()
        self._errors: list[str] = []
        self._too_large: list[str] = []
        self._pending: CheckpointSource | None = None  # rendered only when a commit writes it
        self._in_transaction = False
        self._mid_transaction = False  # messages sent since the last store transaction ended
        self._unpolled = 0  # messages sent since the producer was last polled
        # librdkafka's own complaints (a broker refusing connections, …) go to logging, not stderr.
        common: dict[str, Any] = {"bootstrap.servers": target.bootstrap, "socket.connection.setup.timeout.ms": 10_000,
                                  "logger": logging.getLogger("binhub.sinks.kafka.librdkafka")}
        self._common = common
        self._admin = AdminClient(common)
        with self._notice_if_slow():
            self.transactional = self._want_transactions(common)
            self._ensure_topic(options.checkpoint_topic, compacted=True)
            if not self._templated:
                self._ensure_topic(target.topic)
            self._checkpoint = self._read_checkpoint()

    @contextlib.contextmanager
    def _notice_if_slow(self) -> Iterator[None]:
        """Log once if the block takes longer than a broker answering would (it still runs to its end)."""
        timer = threading.Timer(_SLOW_BROKER_NOTICE, log.warning, args=(
            "the Kafka broker at %s has not answered for %g s; still trying (for up to kafka_timeout, %g s)",
            self.target.bootstrap, _SLOW_BROKER_NOTICE, self.options.timeout))
        timer.daemon = True
        timer.start()
        try:
            yield
        finally:
            timer.cancel()

    # -- opening --------------------------------------------------------------------------------
    def _producer_config(self, common: dict[str, Any], transactional: bool) -> dict[str, Any]:
        config: dict[str, Any] = {
            **common, "enable.idempotence": True, "acks": "all",
            "message.max.bytes": self.options.max_message_bytes,
            "delivery.timeout.ms": int(self.options.timeout * 1000), "linger.ms": 5, "compression.type": "none",
            # Only failures come back to Python (one callback per message would cost more than
            # the rest of the sink): the default on_delivery hook, errors only.
            "on_delivery": self._delivered, "delivery.report.only.error": True,
            # What librdkafka holds unacknowledged, bounded: a big store transaction streams through.
            "queue.buffering.max.messages": _QUEUE_MESSAGES, "queue.buffering.max.kbytes": 64 << 10,
            "batch.size": 1 << 20,
        }
        if transactional:
            config["transactional.id"] = self.id
            # A store transaction is one Kafka transaction: give big ones the broker's default
            # ceiling (transaction.max.timeout.ms, 15 min) before the broker aborts them.
            config["transaction.timeout.ms"] = _TRANSACTION_TIMEOUT_MS
        return config

    def _want_transactions(self, common: dict[str, Any]) -> bool:
        """Open the producer: transactional when asked, or (auto) when the broker can."""
        mode = self.options.transactions
        if mode != "off":
            self._producer = Producer(self._producer_config(common, True))
            try:
                self._producer.init_transactions(self.options.timeout)  # fences a previous run
                return True
            except KafkaException as exc:
                error = exc.args[0]
                refused = error.code() in _NO_TRANSACTIONS
                if mode == "on" and refused:
                    raise SinkError(f"the Kafka broker at {self.target.bootstrap} refuses transactions: {error.str()}",
                                    hint="allow this principal the transactional id (ACLs) or enable transactions on "
                                         "the broker; or set kafka_transactions = auto (or off) to deliver at least "
                                         "once") from None
                if not refused:
                    raise self._broker_error("cannot start a Kafka transaction", error) from None
                log.warning("the Kafka broker at %s has no transactions (%s): delivering at least once, "
                            "keyed by primary key", self.target.bootstrap, error.str())
        self._producer = Producer(self._producer_config(common, False))
        return False

    def _ensure_topic(self, topic: str, *, compacted: bool = False) -> None:
        if topic in self._created:
            return
        config = {"cleanup.policy": "compact"} if compacted else {}
        new = NewTopic(topic, num_partitions=1 if compacted else self.options.partitions, config=config)
        future = self._admin.create_topics([new], operation_timeout=self.options.timeout,
                                           request_timeout=self.options.timeout)[topic]
        try:
            future.result()
        except KafkaException as exc:
            error = exc.args[0]
            if error.code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise self._broker_error(f"cannot create the Kafka topic {topic}", error) from None
        self._created.add(topic)

    def _read_checkpoint(self) -> Checkpoint | None:
        """The last committed checkpoint under our id, read back from the checkpoint topic."""
        topic = self.options.checkpoint_topic
        # fetch.wait.max.ms: at the end of the topic the broker would hold each fetch for its default
        # half second before answering "nothing more", and every start of the stream would wait it.
        consumer = Consumer({**self._common, "group.id": f"{self.id}.resume",
                             "enable.auto.commit": False, "isolation.level": "read_committed",
                             "enable.partition.eof": True, "fetch.wait.max.ms": 10})
        try:
            partition = TopicPartition(topic, 0, OFFSET_BEGINNING)
            try:
                low, high = consumer.get_watermark_offsets(partition, timeout=self.options.timeout)
            except KafkaException as exc:
                raise self._broker_error(f"cannot read the stream checkpoint in {topic}", exc.args[0]) from None
            found: bytes | None = None
            if high > low:
                consumer.assign([partition])
                deadline = time.monotonic() + self.options.timeout
                while True:
                    if time.monotonic() > deadline:
                        raise SinkError(f"reading the stream checkpoint from Kafka topic {topic} at "
                                        f"{self.target.bootstrap} did not finish in {self.options.timeout:g} s")
                    msg = consumer.poll(0.5)
                    if msg is None:
                        continue
                    error = msg.error()
                    if error is not None:
                        if error.code() == KafkaError._PARTITION_EOF:
                            break
                        raise self._broker_error(f"cannot read the stream checkpoint in {topic}", error)
                    if msg.key() == self.id.encode():
                        found = msg.value()
        finally:
            consumer.close()
        if found is None:
            return None
        try:
            doc = orjson.loads(found)
            if doc.pop("format", None) != CHECKPOINT_FORMAT:
                raise ValueError("unknown format")
            return Checkpoint(**doc)
        except (ValueError, TypeError) as exc:
            raise SinkError(f"the stream checkpoint {self.id!r} in Kafka topic {topic} cannot be read: {exc}",
                            hint="delete it (a null record for that key) to start the stream afresh") from None

    # -- Sink -----------------------------------------------------------------------------------
    def resume_point(self) -> Checkpoint | None:
        return self._checkpoint

    def write(self, data: bytes) -> None:
        raise SinkError("the Kafka sink takes messages with their table and key, not lines (a bug in the caller)")

    def send(self, messages: list[Message]) -> None:
        if not messages:
            return
        self._begin()
        self._mid_transaction = True
        single = None if self._templated else self.target.topic
        # Consecutive messages for one topic go to librdkafka as one produce_batch: a dict per
        # message, not a produce() call (whose argument parsing costs more than the dict).
        topic: str | None = None
        batch: list[dict[str, Any]] = []
        for message in messages:
            to = single if single is not None and not message.ddl and message.topic is None else \
                self._topic(message)
            if to != topic:
                if batch and topic is not None:
                    self._produce(topic, batch)
                    batch = []
                topic = to
            value = message.value
            if message.keys is not None and value is not None:  # several lines, each with its key
                values = value.split(b"\n")
                del values[-1]  # after the last newline
                if 2 * len(value) + 100 > self.options.max_message_bytes:  # a key is shorter than its line
                    for line, key in zip(values, message.keys, strict=True):
                        self._check_size(to, line, key)
                batch.extend([{"value": v, "key": k} for v, k in zip(values, message.keys, strict=True)])
                continue
            if value is not None:
                value = value[:-1]  # the line's newline
                self._check_size(to, value, message.key)
            batch.append({"value": value, "key": message.key})
        if batch and topic is not None:
            self._produce(topic, batch)
        self._unpolled += len(messages)
        if self._unpolled >= _POLL_EVERY:  # serve librdkafka's callbacks (errors only) now and then
            self._unpolled = 0
            self._producer.poll(0)
            self._check_errors()

    def _check_size(self, topic: str, value: bytes, key: bytes | None) -> None:
        if len(value) + len(key or b"") + 100 > self.options.max_message_bytes:
            raise self._too_big(topic, key, len(value))

    def _produce(self, topic: str, batch: list[dict[str, Any]]) -> None:
        """Hand ``batch`` to librdkafka in order; wait for room in its queue when it is full."""
        producer = self._producer
        while batch:
            # Never more than the queue has room for by count: a batch cut short by a full queue
            # must fail as a suffix, or a later change could go out before an earlier one.
            room = _QUEUE_MESSAGES - len(producer)
            if room <= 0:
                producer.poll(_QUEUE_WAIT)
                self._check_errors()
                continue
            part = batch if len(batch) <= room else batch[:room]
            taken = producer.produce_batch(topic, part)
            if taken == len(part):
                batch = batch[len(part):] if part is not batch else []
                continue
            failed = [i for i, m in enumerate(part) if "_error" in m]
            for i in failed:
                error = part[i]["_error"]
                if error.code() in _TOO_LARGE:
                    raise self._too_big(topic, part[i]["key"], len(part[i]["value"] or b""))
                if error.code() != KafkaError._QUEUE_FULL:
                    raise self._broker_error(f"cannot queue a message for {topic}", error)
            if failed != list(range(failed[0], len(part))):
                # The queue filled (by bytes) and emptied again within the batch: a change went
                # ahead of an earlier one. Stop; the open Kafka transaction is aborted and a
                # restart resumes at the checkpoint.
                raise SinkError(f"librdkafka's queue for {topic} filled mid-batch and the batch went out of "
                                f"order; nothing past the last checkpoint counts as delivered",
                                hint="restart the stream: it resumes at its last checkpoint")
            for m in part[failed[0]:]:
                del m["_error"]
            batch = part[failed[0]:] + batch[len(part):]
            producer.poll(_QUEUE_WAIT)  # let it send
            self._check_errors()

    def transaction_end(self, end: CheckpointSource) -> None:
        self._pending = end
        self._mid_transaction = False

    def commit(self) -> None:
        pending = self._pending
        if pending is None and not self._in_transaction:
            return
        if self.transactional:
            if self._mid_transaction:
                # Part of a store transaction is in the Kafka transaction: committing now would
                # show consumers half of it. It stays open until the store transaction ends (a
                # big one streams through one Kafka transaction); a stop in between aborts it.
                return
            self._begin()
            if pending is not None:
                self._produce_checkpoint(pending.checkpoint())
            try:
                self._producer.commit_transaction(self.options.timeout)
            except KafkaException as exc:
                self._check_errors()
                self._abort()
                raise self._broker_error("cannot commit the Kafka transaction", exc.args[0]) from None
            self._in_transaction = False
            self._check_errors()
        else:
            self._flush()  # every message acknowledged before the checkpoint says so
            if pending is not None:
                self._produce_checkpoint(pending.checkpoint())
                self._flush()
        self._pending = None

    def close(self) -> None:
        if self._in_transaction:
            self._abort()  # uncommitted: a restart delivers it again from the checkpoint
        else:
            self._producer.flush(min(self.options.timeout, 10))

    # -- helpers --------------------------------------------------------------------------------
    def _begin(self) -> None:
        if self.transactional and not self._in_transaction:
            try:
                self._producer.begin_transaction()
            except KafkaException as exc:
                raise self._broker_error("cannot begin a Kafka transaction", exc.args[0]) from None
            self._in_transaction = True

    def _abort(self) -> None:
        self._in_transaction = False
        try:
            self._producer.abort_transaction(min(self.options.timeout, 10))
        except KafkaException as exc:
            log.warning("aborting the Kafka transaction failed (the broker aborts it on timeout, or the next "
                        "run's producer fences it): %s", exc.args[0].str())

    def _topic(self, message: Message) -> str:
        if message.topic is not None and not (message.ddl and self.options.ddl_topic):
            topic = message.topic
        elif message.ddl:
            topic = self.ddl_topic if self._templated or self.options.ddl_topic else self.target.topic
        elif not self._templated:
            topic = self.target.topic
        else:
            topic = self._topics.get((message.db, message.table), "")
            if not topic:
                topic = topic_name(self.target.topic, message.db, message.table)
                self._topics[(message.db, message.table)] = topic
        if topic not in self._created:
            self._ensure_topic(topic)
        return topic

    def _produce_checkpoint(self, checkpoint: Checkpoint) -> None:
        value = orjson.dumps({"format": CHECKPOINT_FORMAT, **asdict(checkpoint)})
        self._producer.produce(self.options.checkpoint_topic, value, self.id.encode())

    def _flush(self) -> None:
        left = self._producer.flush(self.options.timeout)
        self._check_errors()
        if left:
            raise SinkError(f"the Kafka broker at {self.target.bootstrap} did not acknowledge {left} messages "
                            f"within {self.options.timeout:g} s",
                            hint="check the broker; when restarted the stream resumes at its last checkpoint")

    def _delivered(self, error: KafkaError | None, msg: Any) -> None:
        if error is None:
            return
        if error.code() in _TOO_LARGE:
            self._too_large.append(f"{msg.topic()} key {(msg.key() or b'').decode(errors='replace')}")
        else:
            self._errors.append(f"{msg.topic()}: {error.str()}")

    def _check_errors(self) -> None:
        if self._too_large:
            raise MessageTooLarge(
                f"the Kafka broker at {self.target.bootstrap} refused a change as too large: {self._too_large[0]}",
                hint="raise the topic's max.message.bytes (and the broker's), or exclude the big column")
        if self._errors:
            raise SinkError(f"Kafka did not take the stream's messages: {self._errors[0]}"
                            + (f" (and {len(self._errors) - 1} more)" if len(self._errors) > 1 else ""),
                            hint="check the broker at " + self.target.bootstrap +
                                 "; when restarted the stream resumes at its last checkpoint")

    def _too_big(self, topic: str, key: bytes | None, size: int) -> MessageTooLarge:
        return MessageTooLarge(
            f"a change for {topic} (key {(key or b'null').decode(errors='replace')}) is {size} bytes, over the "
            f"Kafka sink's limit of {self.options.max_message_bytes} bytes: the stream stops rather than drop it",
            hint="raise kafka_max_message_bytes (and the topic's max.message.bytes), or exclude the big column")

    def _broker_error(self, what: str, error: KafkaError) -> SinkError:
        return SinkError(f"{what} at {self.target.bootstrap}: {error.str()}",
                         hint="check that the broker is up and reachable; when restarted the stream "
                              "resumes at its last checkpoint")
