"""The jsonl sink's contract: what a checkpoint says is on disk is exactly what the files hold
after a restart, whatever a crash left behind; and the stream's table filter."""

from __future__ import annotations

import json
import logging
import socket
import time
from pathlib import Path

import pytest

from binhub.errors import ConfigError, DiskFull, SinkError, StorageError
from binhub.sinks import Checkpoint, JsonlSink, KafkaOptions, StdoutSink, kafka, open_sink
from binhub.stream import TableFilter


def output(directory: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(directory.glob("s-*.jsonl")))


def write_txn(sink: JsonlSink, n: int, pos: int) -> None:
    sink.write(b'{"n":%d}\n' % n)
    sink.write(b'{"n":%d,"second":true}\n' % n)
    sink.transaction_end(Checkpoint("mariadb-bin.000001", pos, f"0-1-{n}"))


def test_a_restart_cuts_what_follows_the_checkpoint(tmp_path: Path) -> None:
    sink = JsonlSink(tmp_path, "s")
    assert sink.resume_point() is None
    write_txn(sink, 1, 100)
    sink.commit()
    committed = output(tmp_path)
    write_txn(sink, 2, 200)  # ended but not committed: a crash before the fsync loses it
    sink.write(b'{"n":3,"half')  # a line cut by kill -9
    sink._flush()
    sink.close()
    assert output(tmp_path) != committed

    again = JsonlSink(tmp_path, "s")
    assert again.resume_point() == Checkpoint("mariadb-bin.000001", 100, "0-1-1", "s-000001.jsonl", len(committed))
    assert output(tmp_path) == committed
    write_txn(again, 2, 200)
    again.commit()
    assert output(tmp_path).splitlines() == [b'{"n":1}', b'{"n":1,"second":true}', b'{"n":2}',
                                             b'{"n":2,"second":true}']


def test_rotation_happens_at_transaction_ends_and_later_files_are_dropped_on_restart(tmp_path: Path) -> None:
    sink = JsonlSink(tmp_path, "s", rotate_bytes=40)
    for n in range(1, 6):
        write_txn(sink, n, n * 100)
    sink.commit()
    files = sorted(p.name for p in tmp_path.glob("s-*.jsonl"))
    assert len(files) >= 3
    for path in tmp_path.glob("s-*.jsonl"):  # every file holds whole transactions
        assert path.read_bytes().count(b"\n") % 2 == 0
    write_txn(sink, 6, 600)  # a full file commits and rotates: 7 goes to a new file, uncommitted
    write_txn(sink, 7, 700)
    sink._flush()
    sink.close()
    assert b'{"n":7}' in (tmp_path / sorted(p.name for p in tmp_path.glob("s-*.jsonl"))[-1]).read_bytes()
    again = JsonlSink(tmp_path, "s", rotate_bytes=40)
    cp = again.resume_point()
    assert cp is not None and (cp.pos, cp.gtid_set) == (600, "0-1-6")
    assert sorted(p.name for p in tmp_path.glob("s-*.jsonl"))[-1] == cp.out_file, "the file begun after it is gone"
    assert output(tmp_path).splitlines()[-2:] == [b'{"n":6}', b'{"n":6,"second":true}']


def test_an_output_shorter_than_its_checkpoint_is_refused(tmp_path: Path) -> None:
    sink = JsonlSink(tmp_path, "s")
    write_txn(sink, 1, 100)
    sink.commit()
    sink.close()
    (tmp_path / "s-000001.jsonl").write_bytes(b"")
    with pytest.raises(StorageError, match="the checkpoint says"):
        JsonlSink(tmp_path, "s")


def test_a_damaged_checkpoint_is_named(tmp_path: Path) -> None:
    (tmp_path / "s.checkpoint.json").write_text("{not json")
    with pytest.raises(StorageError, match="s.checkpoint.json cannot be read"):
        JsonlSink(tmp_path, "s")
    (tmp_path / "s.checkpoint.json").write_text(json.dumps({"format": 99}))
    with pytest.raises(StorageError, match="not in a format"):
        JsonlSink(tmp_path, "s")


def test_sink_names_and_targets(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--name"):
        JsonlSink(tmp_path, "../x")
    with pytest.raises(ConfigError, match="is not a sink binhub knows"):
        open_sink("nats://127.0.0.1:4222/t", "s")
    with pytest.raises(ConfigError, match="kafka://HOST:PORT/TOPIC"):
        open_sink("kafkaa://127.0.0.1:9092/t", "s")
    with pytest.raises(ConfigError, match="kafka://HOST:PORT/TOPIC"):
        open_sink("kafka://127.0.0.1:9092/", "s")  # no topic
    with pytest.raises(ConfigError, match="only use {db} and {table}"):
        open_sink("kafka://127.0.0.1:9092/cdc.{schema}", "s")
    assert isinstance(open_sink(f"jsonl:{tmp_path}", "s"), JsonlSink)


def test_table_filter() -> None:
    everything = TableFilter()
    assert everything("shop", "orders") and everything("x", "")
    f = TableFilter(include=["shop.*", "*.audit"], exclude=["shop.tmp_*"])
    assert f("shop", "orders") and f("crm", "audit") and f("shop", "")
    assert not f("shop", "tmp_1") and not f("crm", "users")


def test_a_full_disk_under_the_output_is_named_with_what_to_do(tmp_path: Path) -> None:
    with open("/dev/full", "wb", buffering=0) as full:
        sink = StdoutSink(full)
        with pytest.raises(DiskFull, match="no space left.*start the stream again"):
            sink.write(b'{"n":1}\n')


def test_commands_that_do_not_stream_to_kafka_do_not_load_librdkafka() -> None:
    """confluent_kafka costs every command a fifth of a second to import (more under load): only a
    Kafka sink loads it, not the config reader every service uses."""
    import subprocess
    import sys

    code = ("import sys, binhub.ops.config, binhub.cli.stream, binhub.stream; "
            "print('confluent_kafka' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"



def test_a_kafka_broker_that_does_not_answer_is_reported_while_the_sink_waits(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Without the notice, the sink is silent for the whole kafka_timeout (a minute by default)."""
    monkeypatch.setattr(kafka, "_SLOW_BROKER_NOTICE", 0.5, raising=False)
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    caplog.set_level(logging.WARNING, logger="binhub.sinks.kafka")
    started = time.monotonic()
    with pytest.raises(SinkError):
        open_sink(f"kafka://127.0.0.1:{port}/t", "s", kafka=KafkaOptions(timeout=3))
    notices = [r.getMessage() for r in caplog.records if "has not answered" in r.getMessage()]
    assert notices == [f"the Kafka broker at 127.0.0.1:{port} has not answered for 0.5 s; still trying "
                       f"(for up to kafka_timeout, 3 s)"]
    assert time.monotonic() - started >= 2.5  # it still waited for kafka_timeout
