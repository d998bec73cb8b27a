"""``[[stream]]`` sections of ``binhub run``: each becomes a StreamConfig, or a ConfigError naming
the section and the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from binhub.errors import ConfigError
from binhub.ops.config import load_config
from binhub.sinks import KafkaOptions
from binhub.sinks.mysql.options import ApplyOptions
from binhub.stream import StreamConfig, StreamStart

STORE = '[store]\ndata_dir = "/srv/binhub"\n'


def load(tmp_path: Path, text: str) -> tuple[StreamConfig, ...]:
    path = tmp_path / "binhub.toml"
    path.write_text(STORE + text)
    return load_config(path, env={"OUT": "/data/out"}).streams


def load_config_text(tmp_path: Path, text: str) -> Any:
    path = tmp_path / "binhub.toml"
    path.write_text(STORE + text)
    return load_config(path, env={})


def refused(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    assert info.value.key in str(info.value)
    return str(info.value)


def test_streams_in_file_order(tmp_path: Path) -> None:
    streams = load(tmp_path, """
[[stream]]
name = "orders"
to = "jsonl:out/orders"
include = ["shop.orders*"]
exclude = "shop.orders_tmp"
rotate_size = "1MiB"
start_gtid = "0-1-100"

[[stream]]
name = "all"
to = "jsonl:${OUT}/all"
from_now = true
""")
    assert streams == (
        StreamConfig(name="orders", to=f"jsonl:{tmp_path / 'out/orders'}", rotate_bytes=1 << 20,
                     include=("shop.orders*",), exclude=("shop.orders_tmp",), start=StreamStart(gtid="0-1-100")),
        StreamConfig(name="all", to="jsonl:/data/out/all", start=StreamStart(from_now=True)),
    )
    assert load(tmp_path, "") == ()


def test_a_kafka_stream(tmp_path: Path) -> None:
    (stream,) = load(tmp_path, """
[[stream]]
name = "cdc"
to = "kafka://127.0.0.1:9092/cdc.{db}.{table}"
format = "debezium"
kafka_id = "binhub.eu.cdc"
kafka_ddl_topic = "cdc.ddl"
kafka_checkpoint_topic = "binhub.offsets"
kafka_transactions = "off"
kafka_max_message_size = "4MiB"
kafka_timeout = "2m"
kafka_partitions = 12
""")
    assert stream.to == "kafka://127.0.0.1:9092/cdc.{db}.{table}" and stream.format == "debezium"
    assert stream.kafka == KafkaOptions(id="binhub.eu.cdc", ddl_topic="cdc.ddl", checkpoint_topic="binhub.offsets",
                                        transactions="off", max_message_bytes=4 << 20, timeout=120.0, partitions=12)


@pytest.mark.parametrize(("text", "words"), [
    ('[[stream]]\nto = "-"', "stream[1].name: is required"),
    ('[[stream]]\nname = "a"\nto = "-"\n[[stream]]\nname = "a"\nto = "-"', "stream[2].name: 'a' names two streams"),
    ('[[stream]]\nname = "../a"\nto = "-"', "stream[1].name"),
    ('[[stream]]\nname = "a"\nto = "kafkaa://h/t"', "stream[1].to: 'kafkaa://h/t' is not a sink"),
    ('[[stream]]\nname = "a"\nto = "kafka://h:9092"', "stream[1].to: 'kafka://h:9092': a Kafka sink is"),
    ('[[stream]]\nname = "a"\nto = "kafka://h:9092/t"\nformat = "avro"', "stream[1].format: 'avro' is not one of"),
    ('[[stream]]\nname = "a"\nto = "kafka://h:9092/t"\nkafka_transactions = "maybe"', "stream[1].kafka_transactions"),
    ('[[stream]]\nname = "a"\nto = "-"\ntopic = "x"', "stream[1].topic"),
    ('[[stream]]\nname = "a"\nto = "-"\nstart_gtid = "0-1-1"\nfrom_now = true', "stream[1].from_now: conflicts"),
    ('[[stream]]\nname = "a"\nto = "-"\nstart_pos = 4', "stream[1].start_pos: needs stream[1].start_file"),
    ('[[stream]]\nname = "a"\nto = "-"\ninclude = [1]', "stream[1].include: must be a list"),
    ('[stream]\nname = "a"', "stream: must be an array of tables"),
])
def test_bad_streams_are_named(tmp_path: Path, text: str, words: str) -> None:
    assert words in refused(tmp_path, text)


def test_streams_seed_from_the_relays_upstream_unless_told_otherwise(tmp_path: Path) -> None:
    streams = load(tmp_path, """
[relay]
source = "mysql://repl@db1:3307"
password = "p@ss:w"

[[stream]]
name = "a"
to = "-"

[[stream]]
name = "b"
to = "-"
seed_from = "mariadb://reader:x@db2"
""")
    from binhub.relay.config import parse_source_dsn
    seeded = parse_source_dsn(streams[0].seed_from or "")
    assert (seeded.host, seeded.port, seeded.user, seeded.password) == ("db1", 3307, "repl", "p@ss:w")
    assert streams[1].seed_from == "mariadb://reader:x@db2"
    assert "p@ss" not in repr(streams[0]), "the DSN (with its password) stays out of logs"
    message = refused(tmp_path, '[[stream]]\nname = "c"\nto = "-"\nseed_from = "db3:3306"\n')
    assert "stream[1].seed_from" in message


def test_transaction_metadata_is_debeziums(tmp_path: Path) -> None:
    section = '[[stream]]\nname = "a"\nto = "-"\nformat = "{}"\ntransaction_metadata = true\n'
    assert load(tmp_path, section.format("debezium"))[0].transaction_metadata
    assert not load(tmp_path, '[[stream]]\nname = "a"\nto = "-"\n')[0].transaction_metadata
    assert "needs --format debezium, not canal" in refused(tmp_path, section.format("canal"))
def load_applies(tmp_path: Path, text: str) -> tuple[Any, ...]:
    path = tmp_path / "binhub.toml"
    path.write_text(STORE + text)
    return load_config(path, env={"PW": "s3cret"}).applies


def test_apply_sections_become_kafka_apply_configs(tmp_path: Path) -> None:
    (first, second) = load_applies(tmp_path, """
[[apply]]
name = "cdc"
from = "kafka://k1:9092,k2:9092/cdc.{db}.{table}"
to = "mysql://binhub:${PW}@db3:3306"
format = "debezium"
workers = 4
include = ["shop.*"]
until_caught_up = true

[[apply]]
name = "orders"
from = "kafka://k1:9092/orders,^audit-.*"
to = "mysql://root@db4"
""")
    assert (first.name, first.format, first.source.bootstrap, first.source.topics) == \
        ("cdc", "debezium", "k1:9092,k2:9092", ("cdc.{db}.{table}",))
    assert first.to == "mysql://binhub:s3cret@db3:3306" and first.apply.workers == 4 and first.until_caught_up
    assert first.include == ("shop.*",) and first.producer_id == "binhub.cdc"
    assert second.source.topics == ("orders", "^audit-.*") and second.format == "binhub"


@pytest.mark.parametrize(("text", "key"), [
    ('[[apply]]\nname = "a"\nto = "mysql://root@db"\n', "apply[1].from"),
    ('[[apply]]\nname = "a"\nfrom = "kafka://k/t"\nto = "jsonl:x"\n', "apply[1].to"),
    ('[[apply]]\nname = "a"\nfrom = "http://k/t"\nto = "mysql://root@db"\n', "apply[1].from"),
    ('[[apply]]\nname = "a"\nfrom = "kafka://k/t"\nto = "mysql://root@db"\nformat = "canal"\n', "apply[1].format"),
    ('[[apply]]\nname = "a"\nfrom = "kafka://k/t"\nto = "mysql://root@db"\ntopic = "t"\n', "apply[1].topic"),
])
def test_a_bad_apply_section_is_refused_naming_its_key(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_applies(tmp_path, text)
    assert info.value.key == key, str(info.value)


def test_a_refused_transaction_is_skipped_with_the_config_key_under_run(tmp_path: Path) -> None:
    """A [[stream]]/[[apply]] MySQL sink runs under `binhub run`, where --skip-gtid does not exist."""
    (stream,) = load(tmp_path, '[[stream]]\nname = "a"\nto = "mysql://root@db"\nskip_gtids = ["0-1-4"]\n')
    assert stream.apply.restart_skipping("0-1-7") == "add '0-1-7' to stream[1].skip_gtids and restart"
    (apply,) = load_applies(tmp_path, '[[apply]]\nname = "a"\nfrom = "kafka://k/t"\nto = "mysql://root@db"\n')
    assert apply.apply.restart_skipping("0-1-7") == "add '0-1-7' to apply[1].skip_gtids and restart"
    assert ApplyOptions().restart_skipping("0-1-7") == "restart with --skip-gtid 0-1-7"  # the command line's


@pytest.mark.parametrize(("section", "key"), [
    ('[[stream]]\nname = "a"\nto = "-"\n', "stream[1].include"),
    ('[[apply]]\nname = "a"\nfrom = "kafka://k/t"\nto = "mysql://root@db"\n', "apply[1].include"),
])
def test_a_table_pattern_without_a_dot_is_refused_in_the_config(tmp_path: Path, section: str, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config_text(tmp_path, section + 'include = ["shop.orders", "shop"]\n')
    assert info.value.key == key and "'shop.*'" in str(info.value), str(info.value)
