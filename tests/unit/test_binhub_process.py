"""BinhubProcess, the one way the demo, the integration tests and the benches run a binhub command."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from binhub.errors import SandboxError
from binhub.sandbox.binhub_process import BinhubProcess
from binhub.sandbox.process import free_port
from binhub.store import BinlogStore


def test_start_waits_until_it_listens_and_stop_is_graceful(tmp_path: Path) -> None:
    BinlogStore.open(tmp_path / "store").close()
    port = free_port()
    serve = BinhubProcess(["serve", "--data-dir", str(tmp_path / "store"), "--listen", f"127.0.0.1:{port}",
                           "--user", "u", "--password", "p", "--no-tls"], tmp_path / "serve.log", port=port)
    serve.start()
    try:
        assert serve.running and serve.pid is not None
        with pytest.raises(SandboxError, match="already running"):
            serve.start()
    finally:
        assert serve.stop(signal.SIGTERM) == 0, serve.tail()
    assert not serve.running and serve.returncode == 0


def test_a_command_that_exits_before_listening_fails_with_its_output(tmp_path: Path) -> None:
    bad = BinhubProcess(["serve", "--no-such-flag"], tmp_path / "bad.log", port=free_port())
    with pytest.raises(SandboxError, match=r"exited with 2 before listening(.|\n)*no-such-flag"):
        bad.start()
    assert bad.stop() == 2  # already gone: its exit code, nothing to signal


def test_env_reaches_the_child(tmp_path: Path) -> None:
    config = tmp_path / "binhub.toml"
    config.write_text('[store]\ndata_dir = "store"\n[relay]\nsource = "mysql://u:p@127.0.0.1:1"\n')
    child = BinhubProcess(["run", "--config", str(config)], tmp_path / "run.log",
                          env={"BINHUB_RELAY_SERVER_ID": "-3"}).start()
    assert child.wait(30) == 2
    assert "relay.server_id" in child.tail()
