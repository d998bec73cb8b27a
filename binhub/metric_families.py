"""Labelled Prometheus metric families, registered once per registry.

Several instances of one kind (streams, applies, MySQL sinks) may run in one daemon and share its
registry, and prometheus-client refuses a name registered twice: each kind makes its families
once per registry (:class:`PerRegistry`) and binds its own label values to them. prometheus-client
itself is not imported here, so that what needs no metrics does not load it.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

__all__ = ["Discard", "PerRegistry"]

F = TypeVar("F")


class PerRegistry(Generic[F]):
    """``families(registry)``: the families ``make`` registered on ``registry``, made on first use."""

    def __init__(self, make: Callable[[CollectorRegistry], F]) -> None:
        self._make = make
        self._made: weakref.WeakKeyDictionary[CollectorRegistry, F] = weakref.WeakKeyDictionary()

    def __call__(self, registry: CollectorRegistry) -> F:
        families = self._made.get(registry)
        if families is None:
            families = self._made[registry] = self._make(registry)
        return families


class Discard:
    """Takes a Counter's, Gauge's or Info's updates and keeps nothing: the metrics of a process
    nobody scrapes (no admin API), which then never imports prometheus-client."""

    __slots__ = ()

    def inc(self, amount: float = 1) -> None:
        pass

    def set(self, value: float) -> None:
        pass

    def info(self, val: dict[str, str]) -> None:
        pass
