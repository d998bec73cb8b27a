"""A 1 GiB transaction streams through ``binhub stream`` in bounded memory.

A real MariaDB transaction of more than 1 GiB of row events (1 M rows of about 1.1 KB, one
INSERT … SELECT) is written on a server of its own (so the shared primary's binlog stays small),
its binlog imported into a store, and streamed to jsonl. The ``binhub stream`` process's peak RSS
(``ru_maxrss`` of that one child, from ``wait4``) must stay under 200 MiB, and every row must be
in the output, in order. Slow (a few minutes on 2 cores): most of it is the server writing 1 GiB.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import MariadbFactory
from tests.integration.relayutil import BINHUB

ROWS = 1_000_000
WIDTH = 1100  # bytes of the text column: 1 M rows make a transaction of > 1 GiB
RSS_LIMIT_MIB = 200
# The peak RSS of a command, measured from a small parent: a child's ru_maxrss also counts the memory
# of the process that forked it (the kernel keeps the old mm's high-water mark across exec), and
# pytest itself grows to hundreds of MiB in a full run.
_PEAK_RSS = """import os, subprocess, sys
child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
_, status, usage = os.wait4(child.pid, 0)
print(usage.ru_maxrss)
sys.exit(os.waitstatus_to_exitcode(status))
"""
FAST = ["--innodb-buffer-pool-size=256M", "--innodb-log-file-size=512M", "--innodb-flush-log-at-trx-commit=0",
        "--innodb-doublewrite=0", "--sync-binlog=0", "--max-binlog-size=1G"]


@pytest.mark.slow
def test_a_1_gib_transaction_streams_in_bounded_memory(mariadb_factory: MariadbFactory, tmp_path: Path) -> None:
    sb = mariadb_factory("bigtxn", server_id=71, extra_args=FAST)
    try:
        conn = sb.connect()
        with conn.cursor() as cur:
            cur.execute("CREATE DATABASE big")
            cur.execute("CREATE TABLE big.t (id INT PRIMARY KEY, v VARCHAR(1200) CHARACTER SET latin1) ENGINE=InnoDB")
            cur.execute("USE big")  # seq_1_to_N (the SEQUENCE engine) needs a current database
            cur.execute(f"INSERT INTO big.t SELECT seq, RPAD(seq, {WIDTH}, 'x') FROM seq_1_to_{ROWS}")
            cur.execute("FLUSH BINARY LOGS")
            cur.execute("SHOW BINARY LOGS")
            logs = [(str(name), int(size)) for name, size, *_ in cur.fetchall()]
        conn.close()
        files = [sb.datadir / name for name, _ in logs[:-1]]  # every complete file
        assert max(size for _, size in logs) > 1 << 30, f"the transaction's file is over 1 GiB: {logs}"
        store, out = tmp_path / "store", tmp_path / "out"
        imported = subprocess.run([*BINHUB, "binlog", "import", "--data-dir", str(store), *map(str, files)],
                                  capture_output=True, text=True, timeout=900)
        assert imported.returncode == 0, imported.stderr
    finally:
        sb.kill()
        shutil.rmtree(sb.datadir, ignore_errors=True)  # 2 GiB of InnoDB and binlog: gone before the stream runs

    proc = subprocess.run([sys.executable, "-c", _PEAK_RSS, *BINHUB, "stream", "--data-dir", str(store), "--to",
                           f"jsonl:{out}", "--until-caught-up", "--include", "big.t"],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    peak_mib = int(proc.stdout.split()[-1]) / 1024
    try:
        seen = 0
        for path in sorted(out.glob("stream-*.jsonl")):
            with path.open("rb") as f:
                for line in f:
                    if line.startswith(b'{"op":"insert"'):
                        seen += 1
                        if seen in (1, ROWS):
                            assert line.startswith(b'{"op":"insert","db":"big","table":"t","pk":{"id":%d}' % seen)
        assert seen == ROWS
    finally:
        shutil.rmtree(out, ignore_errors=True)
        shutil.rmtree(store, ignore_errors=True)
    print(f"binhub stream peak RSS: {peak_mib:.0f} MiB for a transaction of {ROWS:,} rows")
    assert peak_mib < RSS_LIMIT_MIB, f"peak RSS {peak_mib:.0f} MiB"
