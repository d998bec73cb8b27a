"""The dump over TLS, as stock clients take it: concurrent ``mariadb-binlog --ssl`` readers.

binhub encrypts and sends TLS connections' writes in worker threads (binhub.net.tls), the spans
shared by several replicas straight from the shared bytes: every client must still get every byte,
in order, whatever the interleaving of jobs, partial sends and the loop's own writes.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from binhub.serve.session import default_dump_handler
from binhub.store import BinlogStore
from binhub.store.catalog import identity_from_file
from tests.integration.conftest import PrimaryDb
from tests.integration.serveutil import PASSWORD, USER, ServerThread
from tests.integration.workload import run_workload

pytestmark = pytest.mark.skipif(shutil.which("mariadb-binlog") is None, reason="mariadb-binlog is not installed")
CLIENTS = 6


@pytest.fixture
def tls_server(primary_db: PrimaryDb, tmp_path: Path) -> Iterator[tuple[ServerThread, list[Path]]]:
    """binhub serve over TLS on a store holding the primary's closed files of a mixed workload (> 16 MiB event)."""
    run_workload(primary_db.conn, primary_db.name, tables=2, rows=300, many_tables=5)
    primary_db.conn.cursor().execute("FLUSH BINARY LOGS")
    names = [p.name for p in primary_db.sandbox.binlog_files()]
    files = primary_db.sandbox.binlog_files()[names.index(primary_db.start_file):-1]
    store = BinlogStore.open(tmp_path / "store")
    store.set_identity(identity_from_file(files[0]))
    for f in files:
        store.import_file(f)
    st = ServerThread(store, tls=True, key_dir=tmp_path / "keys", dump_handler=default_dump_handler)
    yield st, files
    st.stop()
    store.close()


def test_concurrent_mariadb_binlog_ssl_clients_get_every_byte(tls_server: tuple[ServerThread, list[Path]],
                                                              tmp_path: Path) -> None:
    st, files = tls_server
    procs = []
    for i in range(CLIENTS):
        out = tmp_path / f"c{i}"
        out.mkdir()
        procs.append(subprocess.Popen(
            ["mariadb-binlog", "--no-defaults", "--read-from-remote-server", "--raw", "--ssl",
             "--skip-ssl-verify-server-cert", "--default-auth=mysql_native_password", "-h127.0.0.1",
             f"-P{st.port}", f"-u{USER}", f"-p{PASSWORD}", f"--result-file={out}/", "--to-last-log", files[0].name],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for i, p in enumerate(procs):
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        for f in files:
            got = (tmp_path / f"c{i}" / f.name).read_bytes()
            # The active-file flag of the FDE (offset 21) is the only byte a primary's copy may differ in.
            want = f.read_bytes()
            assert len(got) == len(want) and got[:21] + got[22:] == want[:21] + want[22:], (i, f.name)
    assert sum(f.stat().st_size for f in files) > 16 << 20
