"""What a user sees when a command is given a bad value or interrupted: one line on stderr and a
status, never a traceback (``binhub`` as users run it, a child process)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from binhub.sandbox.process import free_port
from tests.integration.relayutil import BINHUB


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

