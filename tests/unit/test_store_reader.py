"""The store's reader view: the same answers whether the store is read in its writer's process or not.

``StoreReader.open`` (another process's view: files, marker and state on disk) is checked against
``store.reader`` (the writer's own, from memory), with the store missing, empty, and filled.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from binhub.binlog.gtid import MariadbGtidList, MysqlGtidSet
from binhub.errors import StorageError
from binhub.store import BinlogStore, StoreReader
from tests.unit.test_serve_dump import U1, append_txns, mariadb_files, mysql_files


def test_a_missing_store_is_an_empty_view_when_asked_for(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="no store at"):
        StoreReader.open(tmp_path / "nothing")
    reader = StoreReader.open(tmp_path / "nothing", must_exist=False)
    assert (reader.files, reader.durable_files(), reader.durable_position) == ([], [], None)
    assert (reader.executed_gtids(), reader.mariadb_state(), reader.has_writer()) == (None, MariadbGtidList(), False)
    assert reader.state.upstream is None and not (tmp_path / "nothing").exists(), "a reader creates nothing"


@pytest.mark.parametrize("flavour", ["mariadb", "mysql"])
def test_both_views_agree_and_follow_the_writer(tmp_path: Path, flavour: str) -> None:
    src = tmp_path / "src"
    src.mkdir()
    paths = mariadb_files(src) if flavour == "mariadb" else mysql_files(src)
    data_dir = tmp_path / "store"
    other = StoreReader.open(data_dir, must_exist=False)  # opened before the writer created anything
    store = BinlogStore.open(data_dir)
    try:
        mine = store.reader
        assert mine is store.reader and mine.has_writer() and other.has_writer()
        store.import_file(paths[0])
        for view in (mine, other):
            assert view.files == [paths[0].name]
            assert view.durable_files() == [(paths[0].name, paths[0].stat().st_size)]
        store.import_file(paths[1])
        expected = "0-1-20" if flavour == "mariadb" else f"{U1}:1-20"
        for view in (mine, other):
            assert view.files == [p.name for p in paths] and view.durable_position == store.durable_position
            assert str(view.executed_gtids()).replace("\n", "") == expected
            assert view.file_head(paths[1].name).is_mariadb == (flavour == "mariadb")
        if flavour == "mysql":
            assert isinstance(other.executed_gtids(), MysqlGtidSet)
            return
        # A transaction made durable after state.json was written: the other process's view
        # reads it from the file itself, live, as the writer's view has it in memory.
        state = json.loads(store.state_path.read_bytes())
        append_txns(store, 21, 2)
        store.state_path.write_text(json.dumps(state))
        assert str(mine.executed_gtids()) == str(other.executed_gtids()) == "0-1-22"
    finally:
        store.close()
    assert not other.has_writer()


def test_the_other_process_view_wakes_when_the_writer_publishes(tmp_path: Path) -> None:
    """``wait`` returns at the publish (inotify on the durable marker), not at its timeout; it also
    attaches once a missing store is created."""
    data_dir = tmp_path / "store"
    reader = StoreReader.open(data_dir, must_exist=False)
    src = tmp_path / "src"
    src.mkdir()
    paths = mariadb_files(src)

    async def go() -> float:
        loop = asyncio.get_running_loop()
        await reader.wait(0.01)  # the store does not exist: a slow poll, no inotify yet
        store = BinlogStore.open(data_dir)
        try:
            store.import_file(paths[0])
            await reader.wait(1.0)  # looks again soon after the directory appears
            assert reader.files == [paths[0].name]
            t0 = loop.time()
            waiter = asyncio.create_task(reader.wait(10.0))
            await asyncio.sleep(0.1)
            append_txns(store, 11, 1)
            await waiter
            return loop.time() - t0  # without the wake-up: INOTIFY_SAFETY_POLL (0.25 s)
        finally:
            store.close()
            reader.close()
    assert asyncio.run(go()) < 0.2
