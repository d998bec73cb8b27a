"""Usage errors speak the command line the user typed."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from binhub.cli.main import cli


def _usage_error(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args), prog_name="binhub")
    assert result.exit_code == 2, result.output
    return result.output


def test_backup_usage_errors_name_binhub_backup_not_its_hidden_subcommand() -> None:
    out = _usage_error("backup", "--to", "somewhere")
    assert "Usage: binhub backup [OPTIONS]" in out and "Try 'binhub backup --help'" in out
    assert "take" not in out


def test_backup_refuses_both_kinds() -> None:
    out = _usage_error("backup", "--logical", "--physical", "--source", "mysql://u@127.0.0.1:1", "--to", "x")
    assert "choose one of --physical, --logical" in out


@pytest.mark.parametrize("command", [
    ("stream", "--to", "-"), ("apply", "--from", "kafka://127.0.0.1:1/t", "--to", "mysql://u@127.0.0.1:1"),
    ("flashback",), ("replay",), ("backup", "--logical", "--source", "mysql://u@127.0.0.1:1", "--to", "x"),
])
@pytest.mark.parametrize("option", ["--include", "--exclude"])
def test_a_table_pattern_without_a_dot_is_refused_with_the_one_meant(command: tuple[str, ...], option: str) -> None:
    """``shop`` matches no db.table, silently: every command taking the globs refuses it."""
    out = _usage_error(*command, option, "shop")
    assert f"Invalid value for '{option}'" in out and "'shop.*'" in out, out
