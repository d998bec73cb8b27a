"""Debezium's DATETIME and DATE numbers, computed by arithmetic on binhub's text, against the
standard library's calendar (datetime), over the whole range MySQL allows and every fraction width."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta

import pytest

from binhub.stream.formats.columns import FormatColumn, Kind
from binhub.stream.formats.debezium import debezium_value


def column(kind: Kind, fsp: int, nullable: bool = True) -> FormatColumn:
    return FormatColumn("c", kind, "", "", False, 0, 0, fsp, 0, nullable)


def expected_us(moment: datetime) -> int:
    return (moment - datetime(1970, 1, 1)) // timedelta(microseconds=1)


@pytest.mark.parametrize("fsp", range(7))
def test_datetime_numbers_match_the_calendar(fsp: int) -> None:
    rng = random.Random(fsp)
    first, last = datetime(1000, 1, 1).timestamp(), datetime(9999, 12, 31, 23, 59, 59).timestamp()
    moments = [datetime(1000, 1, 1), datetime(9999, 12, 31, 23, 59, 59, 999999), datetime(1970, 1, 1),
               datetime(1969, 12, 31, 23, 59, 59, 999999), datetime(2000, 2, 29, 12, 0, 0, 1)]
    moments += [datetime.fromtimestamp(rng.uniform(first, last), UTC).replace(tzinfo=None) for _ in range(300)]
    for moment in moments:
        moment = moment.replace(microsecond=moment.microsecond // 10 ** (6 - fsp) * 10 ** (6 - fsp))
        text = moment.strftime("%Y-%m-%d %H:%M:%S") + (f".{moment.microsecond:06d}"[:fsp + 1] if fsp else "")
        us = expected_us(moment)
        assert debezium_value(column(Kind.DATETIME, fsp), text) == (us // 1000 if fsp <= 3 else us), text


def test_zero_and_invalid_datetimes() -> None:
    assert debezium_value(column(Kind.DATETIME, 0), "0000-00-00 00:00:00") is None
    assert debezium_value(column(Kind.DATETIME, 6, nullable=False), "2020-00-10 00:00:00.000000") == 0
    with pytest.raises(ValueError):
        debezium_value(column(Kind.DATETIME, 0), "2021-02-29 00:00:00")  # not a day: as datetime refuses it


def test_date_numbers_match_the_calendar() -> None:
    for day in (date(1000, 1, 1), date(1969, 12, 31), date(1970, 1, 1), date(2024, 2, 29), date(9999, 12, 31)):
        assert debezium_value(column(Kind.DATE, 0), day.isoformat()) == (day - date(1970, 1, 1)).days
