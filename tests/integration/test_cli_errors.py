"""What a user sees when a command is given a bad value or interrupted: one line on stderr and a
status, never a traceback (``binhub`` as users run it, a child process)."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from binhub.sandbox.process import free_port
from tests.integration.conftest import PrimaryDb
from tests.integration.relayutil import BINHUB
from tests.integration.test_flashback import relay
from tests.integration.workload import wait_until


def binhub(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*BINHUB, *args], capture_output=True, text=True, timeout=timeout)


def assert_one_line_error(proc: subprocess.CompletedProcess[str], status: int, *words: str) -> None:
    assert proc.returncode == status, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    for word in words:
        assert word in last, proc.stderr


@pytest.mark.parametrize(("args", "flag", "word"), [
    (["flashback", "--data-dir", "{store}", "--start-gtid", "0-1-1", "--memory", "lots", "--sql"], "--memory", "size"),
    (["stream", "--data-dir", "{store}", "--to", "-", "--rotate-size", "big"], "--rotate-size", "size"),
    (["stream", "--data-dir", "{store}", "--to", "-", "--kafka-max-message-size", "1M"], "--kafka-max-message-size",
     "size"),
    (["binlog", "purge", "--data-dir", "{store}", "--max-size", "lots"], "--max-size", "size"),
    (["binlog", "purge", "--data-dir", "{store}", "--max-age", "forever"], "--max-age", "duration"),
    (["backup", "prune", "{store}", "--older-than", "never"], "--older-than", "duration"),
])
def test_a_bad_size_or_duration_names_the_flag(args: list[str], flag: str, word: str, tmp_path: Path) -> None:
    proc = binhub(*(a.format(store=tmp_path) for a in args))
    assert_one_line_error(proc, 2, flag, word)


def test_a_store_that_cannot_be_created_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory\n")
    proc = binhub("relay", "--source", f"mysql://u:p@127.0.0.1:{free_port()}", "--data-dir",
                  str(tmp_path / "file" / "store"), "--until-caught-up")
    assert_one_line_error(proc, 1, "cannot create the store", str(tmp_path / "file" / "store"), "Not a directory")


def test_ctrl_c_stops_a_replay_waiting_for_an_unreachable_target(primary_db: PrimaryDb, tmp_path: Path) -> None:
    """The sink retries an unreachable target for minutes; Ctrl-C must end that at once (status 130)."""
    primary_db.conn.cursor().execute("CREATE TABLE t (id INT PRIMARY KEY)")
    relay(primary_db, tmp_path / "store")
    log = tmp_path / "replay.log"
    with log.open("w") as out:
        # a shell's foreground job: SIGINT at its default, as when a user presses Ctrl-C
        proc = subprocess.Popen([*BINHUB, "replay", str(tmp_path / "store"), "--to",
                                 f"mysql://root@127.0.0.1:{free_port()}"], stdout=out, stderr=subprocess.STDOUT,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        try:
            wait_until(lambda: "unreachable" in log.read_text(), timeout=60, message="replay never tried the target")
            os.kill(proc.pid, signal.SIGINT)
            status = proc.wait(timeout=15)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    text = log.read_text()
    assert status == 130, text
    assert "Traceback" not in text and text.strip().endswith("binhub: interrupted"), text


def test_history_refuses_a_key_column_the_table_does_not_have(primary_db: PrimaryDb, tmp_path: Path) -> None:
    with primary_db.conn.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY, v INT)")
        cur.execute("INSERT INTO t VALUES (1, 10), (2, 20)")
    relay(primary_db, tmp_path / "store")
    table = f"{primary_db.name}.t"
    found = binhub("history", table, "--pk", "id=2", "--data-dir", str(tmp_path / "store"), "--format", "json")
    assert found.returncode == 0 and '"v":20' in found.stdout, found.stderr
    typo = binhub("history", table, "--pk", "idd=2", "--data-dir", str(tmp_path / "store"))
    assert_one_line_error(typo, 2, "no column idd", "its key: id")


def test_a_point_in_time_restore_without_the_store_is_refused_before_reading_the_backup(tmp_path: Path) -> None:
    (tmp_path / "backup").mkdir()
    proc = binhub("restore", str(tmp_path / "backup"), "--to", str(tmp_path / "datadir"), "--until-gtid", "0-1-5")
    assert_one_line_error(proc, 2, "--data-dir")
    proc = binhub("restore", str(tmp_path / "backup"), "--to", str(tmp_path / "datadir"), "--data-dir",
                  str(tmp_path / "store"), "--until", "tomorrow")
    assert_one_line_error(proc, 1, "--until", "'tomorrow' is not a time")
    assert not (tmp_path / "datadir").exists()


def test_a_bad_position_is_named_as_such(primary_db: PrimaryDb, tmp_path: Path) -> None:
    """Neither a GTID nor FILE:POS is a usage error (it was 'GTID garbage is not in the store'); a start
    past the store's end is one line with one 'Error:' (the message quotes the server's own text)."""
    primary_db.conn.cursor().execute("CREATE TABLE t (id INT PRIMARY KEY)")
    relay(primary_db, tmp_path / "store")
    store = str(tmp_path / "store")
    proc = binhub("schema", "show", f"{primary_db.name}.t", "--data-dir", store, "--at", "garbage")
    assert_one_line_error(proc, 2, "--at", "'garbage' is neither a GTID", "nor FILE:POS")
    proc = binhub("stream", "--data-dir", store, "--to", "-", "--start-gtid", "0-1-999999999", "--until-caught-up")
    assert_one_line_error(proc, 1, "0-1-999999999")
    assert proc.stderr.count("Error:") == 1, proc.stderr


def test_listing_the_users_of_a_missing_file_says_so(tmp_path: Path) -> None:
    proc = binhub("user", "list", "--users", str(tmp_path / "users.toml"))
    assert_one_line_error(proc, 1, "users.toml does not exist", "binhub user add")
