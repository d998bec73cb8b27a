"""Faster construction for the frozen, slotted dataclasses made once per event.

A frozen dataclass's generated ``__init__`` stores each field through ``object.__setattr__`` (its
own ``__setattr__`` refuses): ~1.4 µs for six fields, against ~0.2 µs for a plain class. Made for
every rows event (its :class:`~binhub.binlog.header.EventHeader`, the
:class:`~binhub.binlog.events.RowsEvent`, the :class:`~binhub.sinks.Message` it becomes), that
was a tenth of a stream's CPU on single-row transactions. :func:`fast_init` gives such a class an
``__init__`` that stores through the slots' own descriptors instead: the same signature and
defaults, still immutable (assignment still raises ``FrozenInstanceError``), equality, hash and
repr untouched.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

__all__ = ["fast_init"]

T = TypeVar("T")


def fast_init(cls: type[T]) -> type[T]:
    """Replace the ``__init__`` of a ``@dataclass(frozen=True, slots=True)`` class (apply it above
    the ``@dataclass``). Refuses what it does not reproduce: ``__post_init__``, factories,
    ``init=False`` and keyword-only fields."""
    params = getattr(cls, "__dataclass_params__", None)
    if params is None or not params.frozen or "__slots__" not in cls.__dict__:
        raise TypeError(f"fast_init: {cls.__qualname__} is not a frozen, slotted dataclass")
    if hasattr(cls, "__post_init__"):
        raise TypeError(f"fast_init: {cls.__qualname__} has a __post_init__")
    namespace: dict[str, Any] = {}
    params_src, body = [], []
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.default_factory is not dataclasses.MISSING or not f.init or f.kw_only:
            raise TypeError(f"fast_init: {cls.__qualname__}.{f.name} has a factory, init=False or kw_only")
        namespace[f"_set_{f.name}"] = getattr(cls, f.name).__set__  # the slot's member descriptor
        if f.default is dataclasses.MISSING:
            params_src.append(f.name)
        else:
            namespace[f"_default_{f.name}"] = f.default
            params_src.append(f"{f.name}=_default_{f.name}")
        body.append(f"    _set_{f.name}(self, {f.name})")
    source = f"def __init__(self, {', '.join(params_src)}):\n" + "\n".join(body or ["    pass"]) + "\n"
    exec(source, namespace)  # as dataclasses itself builds __init__
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    cls.__init__ = init  # type: ignore[method-assign]
    return cls
