"""Where a stream's changes go: one module per destination behind one small interface
(:class:`~binhub.sinks.base.Sink`), each keeping the stream's checkpoint with its output."""

from binhub.sinks.base import ChangeSink, Checkpoint, CheckpointSource, KeyedSink, Message, Sink
from binhub.sinks.jsonl import DEFAULT_ROTATE_BYTES, JsonlSink
from binhub.sinks.kafka_config import KafkaOptions
from binhub.sinks.stdout import StdoutSink
from binhub.sinks.target import open_sink

__all__ = ["DEFAULT_ROTATE_BYTES", "ChangeSink", "Checkpoint", "CheckpointSource", "JsonlSink", "KafkaOptions", "KeyedSink", "Message",
           "Sink", "StdoutSink", "open_sink"]
