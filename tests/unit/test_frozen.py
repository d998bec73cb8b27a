"""fast_init: the same constructor as the dataclass's own (defaults, errors), still frozen, and faster."""

from __future__ import annotations

import dataclasses

import pytest

from binhub.binlog.events import RowsEvent
from binhub.binlog.header import EventHeader
from binhub.frozen import fast_init
from binhub.sinks import Message


@dataclasses.dataclass(frozen=True, slots=True)
class _Plain:
    a: int
    b: str = "x"
    c: tuple[int, ...] = ()


_Fast = fast_init(dataclasses.dataclass(frozen=True, slots=True)(type("_Fast", (), {
    "__annotations__": {"a": "int", "b": "str", "c": "tuple[int, ...]"}, "b": "x", "c": ()})))


def test_same_values_defaults_and_errors_as_the_generated_init() -> None:
    for args, kwargs in (((1,), {}), ((1, "y"), {}), ((1,), {"c": (2,)}), ((), {"a": 3, "b": "z"})):
        plain, fast = _Plain(*args, **kwargs), _Fast(*args, **kwargs)
        assert dataclasses.astuple(plain) == dataclasses.astuple(fast)
        assert fast == _Fast(*args, **kwargs) and hash(fast) == hash(_Fast(*args, **kwargs))
    with pytest.raises(TypeError):
        _Fast()
    with pytest.raises(TypeError):
        _Fast(1, "y", (), 4)
    with pytest.raises(TypeError):
        _Fast(1, d=2)
    fast = _Fast(1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.a = 2  # type: ignore[misc]
    assert dataclasses.replace(fast, b="q") == _Fast(1, "q")


def test_the_per_event_classes_keep_their_fields() -> None:
    header = EventHeader(1, 30, 2, 50, 60, 0)
    assert header.pack() == EventHeader.unpack(header.pack()).pack()
    event = RowsEvent(header, b"raw", 7, 1, b"", 3, b"body")
    assert (event.header, event.raw, event.table_id, event.column_count, event.body) == (header, b"raw", 7, 3, b"body")
    message = Message("db", "t", None, b"{}\n")
    assert (message.ddl, message.topic, message.rows, message.keys) == (False, None, None, None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.flags = 2  # type: ignore[misc]


def test_refuses_what_it_would_not_reproduce() -> None:
    @dataclasses.dataclass(frozen=True, slots=True)
    class WithPost:
        a: int

        def __post_init__(self) -> None:
            pass

    @dataclasses.dataclass(frozen=True, slots=True)
    class WithFactory:
        a: list[int] = dataclasses.field(default_factory=list)

    @dataclasses.dataclass(frozen=True)
    class NoSlots:
        a: int

    for cls in (WithPost, WithFactory, NoSlots):
        with pytest.raises(TypeError):
            fast_init(cls)
