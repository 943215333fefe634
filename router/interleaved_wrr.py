"""Traefik's weighted round robin for layer-4 services (``pkg/udp`` and ``pkg/tcp``
``WRRLoadBalancer``): interleaved by the weights' greatest common divisor.

It is not the HTTP balancer's smooth weighted round robin: Traefik's UDP (and TCP) services pick with this
older algorithm, once per session, and matching it keeps the order in which sessions land on servers the
same as Traefik's. Nothing here knows UDP: the items are whatever the caller balances (servers, or the
services of a ``weighted`` service), for :mod:`router.udp.table` and :mod:`router.tcp.service` alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from math import gcd
from typing import Generic, TypeVar

__all__ = ["InterleavedWRR"]

T = TypeVar("T")


class InterleavedWRR(Generic[T]):
    """Items with integer weights, picked in Traefik's interleaved order: with weights 3 and 1, a a a b
    (by rounds: every item whose weight reaches the current level, the level dropping by the gcd each
    round). Weight 0 items are never picked; :meth:`next` is None when nothing can be."""

    __slots__ = ("_items", "_weights", "_max", "_gcd", "_index", "_current")

    def __init__(self, items: Sequence[tuple[T, int]]) -> None:
        self._items = tuple(item for item, _ in items)
        self._weights = tuple(max(0, w) for _, w in items)
        self._max = max(self._weights, default=0)
        self._gcd = 0
        for w in self._weights:
            self._gcd = gcd(self._gcd, w)
        self._index = -1
        self._current = 0

    def __len__(self) -> int:
        return len(self._items)

    @property
    def items(self) -> tuple[T, ...]:
        return self._items

    def next(self) -> T | None:
        """The next item; None with no items or only zero weights (Traefik: "no servers in the pool",
        "all servers have 0 weight")."""
        if self._max <= 0:
            return None
        n = len(self._items)
        while True:
            self._index = (self._index + 1) % n
            if self._index == 0:
                self._current -= self._gcd
                if self._current <= 0:
                    self._current = self._max
            if self._weights[self._index] >= self._current:
                return self._items[self._index]
