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

DRAWS = 8  # draws from the pool before listing its available servers (two of two: 1 in 128 falls back)


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
        """Two distinct available servers drawn from the pool itself (a draw that hits an unavailable or
        already drawn server is drawn again): no list per request while most servers are available; after
        :data:`DRAWS` draws without two, the available ones are listed and drawn from."""
        pool = self.pool
        draw = self._randrange
        n = len(pool)
        if n == 1:  # a pool of one without the single shortcut (passiveHealthCheck: Policy.without_fallback)
            u = pool[0]
            return u if u.available(now) and u not in exclude else None
        a = None
        for _ in range(DRAWS):
            u = pool[draw(n)]
            if u is not a and u.available(now) and u not in exclude:
                if a is not None:
                    return u if u.inflight < a.inflight else a
                a = u
        ready = [u for u in pool if u.available(now) and u not in exclude]
        n = len(ready)
        if n < 2:
            return ready[0] if ready else None
        i, j = draw(n), draw(n)
        if i == j:
            j = (j + 1) % n
        a, b = ready[i], ready[j]
        return b if b.inflight < a.inflight else a
