"""Shared test settings: where the real binlog files of ../shared live."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_BINLOGS = REPO_ROOT.parent / "shared" / "testdata" / "binlogs"
TEST_DATA = REPO_ROOT / "tests" / "data"


@pytest.fixture(scope="session")
def shared_binlogs() -> Path:
    """The folder of real MySQL/MariaDB binlog files; skips the test when ../shared is absent."""
    if not SHARED_BINLOGS.is_dir():
        pytest.skip(f"real binlog files not found: {SHARED_BINLOGS} (check out ../shared beside the repo)")
    return SHARED_BINLOGS
