"""Range bounds: which transaction heads they reach, and the options' errors."""

from __future__ import annotations

import pytest

from binhub.errors import ConfigError
from binhub.flashback.bounds import RangeBounds, TransactionHead
from binhub.flashback.statements import invert


def head(file: str = "mysql-bin.000002", pos: int = 400, gtid: str | None = "0-1-7", time: int = 1_700_000_000,
         ) -> TransactionHead:
    return TransactionHead(file, pos, gtid, time)


def test_gtid_time_and_position_bounds() -> None:
    bounds = RangeBounds.from_options(start_gtid=" 0-1-07 ", stop_datetime="2023-11-14 22:13:21", tz="UTC")
    assert bounds.start is not None and bounds.start.reached_by(head()) and not bounds.start.reached_by(head(gtid="0-1-8"))
    assert bounds.stop is not None and bounds.stop.time == 1_700_000_001
    assert not bounds.stop.reached_by(head()) and bounds.stop.reached_by(head(time=1_700_000_001))
    by_pos = RangeBounds.from_options(start_file="mysql-bin.000002", start_pos=400).start
    assert by_pos is not None and by_pos.reached_by(head()) and by_pos.reached_by(head("mysql-bin.000010", 4))
    assert not by_pos.reached_by(head(pos=399)) and not by_pos.reached_by(head("mysql-bin.000001", 9000))


def test_times_are_wall_clock_times_in_the_zone() -> None:
    paris = RangeBounds.from_options(start_datetime="2023-11-14 23:13:20", tz="Europe/Paris").start
    assert paris is not None and paris.time == 1_700_000_000


@pytest.mark.parametrize(("options", "words"), [
    ({"start_gtid": "0-1-5", "start_datetime": "2024-01-01"}, "give only one of"),
    ({"stop_pos": 10}, "--stop-pos needs --stop-file"),
    ({"start_gtid": "0-1-5,0-2-6"}, "is not one GTID"),
    ({"start_gtid": "five"}, "is not a GTID"),
    ({"start_datetime": "2024-01-01T00:00:00+02:00"}, "carries its own offset"),
    ({"start_datetime": "2024-01-01", "tz": "Nowhere/Else"}, "is not a time zone"),
])
def test_bad_options(options: dict[str, object], words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        RangeBounds.from_options(**options)  # type: ignore[arg-type]


def test_inverse_of_each_operation() -> None:
    row = {"db": "d", "table": "t", "pk": {"id": 1}, "file": "f", "pos": 4, "gtid": "0-1-1"}
    assert invert({**row, "op": "insert", "before": None, "after": {"id": 1}})["op"] == "delete"
    assert invert({**row, "op": "delete", "before": {"id": 1}, "after": None}) == \
        {**row, "op": "insert", "before": None, "after": {"id": 1}}
    assert invert({**row, "op": "update", "before": {"id": 1, "v": 1}, "after": {"id": 1, "v": 2}}) == \
        {**row, "op": "update", "before": {"id": 1, "v": 2}, "after": {"id": 1, "v": 1}}
