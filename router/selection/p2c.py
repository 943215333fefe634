"""``p2c``: power of two choices, as Traefik's (pkg/server/service/loadbalancer/p2c).

Two distinct available servers are drawn at random; the one with fewer requests in flight wins (the first
drawn on a tie). Like Traefik's, weights do not bias the draw (a weight of 0 still takes the server out,
as everywhere in dockroute). In-flight requests are counted by the request path (``tracks``).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Container
from typing import Any

from router.selection.base import Policy


class PowerOfTwo(Policy):
    __slots__ = ("_randrange",)

    tracks = True

    def __init__(
        self,
        pool: tuple[Any, ...],
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(pool, clock)
        self._randrange = (rng or random.Random()).randrange

    def choose(self, now: float, exclude: Container[Any], client: str | None) -> Any | None:
        ready = [
            u for u in self.pool if u.healthy and u.down_until <= now and u.weight > 0 and u not in exclude
        ]
        n = len(ready)
        if n < 2:
            return ready[0] if ready else None
        i, j = self._randrange(n), self._randrange(n)
        if i == j:
            j = (j + 1) % n
        a, b = ready[i], ready[j]
        return b if b.inflight < a.inflight else a
