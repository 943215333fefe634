"""``leasttime``: the server answering fastest, weighed by its load, as Traefik 3.7's
(pkg/server/service/loadbalancer/leasttime).

Each server keeps its last 100 times to first response byte (from the start of the attempt to the
response head). A pick scores each available server ``average time x (1 + in-flight requests) / weight``
and takes the lowest; servers tied on it (at first every server: no samples yet) are taken in weighted
turns by earliest deadline first (each pick moves the chosen server's deadline on by ``1 / weight``).
Times are kept in fractional milliseconds (Traefik truncates to whole ones, which ties every server
faster than a millisecond); otherwise the formula and the tie-break are Traefik's.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Container
from typing import Any

from router.selection.base import Policy

SAMPLES = 100


class ResponseTimes:
    """A ring of the last :data:`SAMPLES` response times of one server (milliseconds) and their sum."""

    __slots__ = ("ring", "index", "total")

    def __init__(self) -> None:
        self.ring: list[float] = []
        self.index = 0
        self.total = 0.0

    def add(self, ms: float) -> None:
        ring = self.ring
        if len(ring) < SAMPLES:
            ring.append(ms)
        else:
            self.total -= ring[self.index]
            ring[self.index] = ms
            self.index = (self.index + 1) % SAMPLES
        self.total += ms

    def average(self) -> float:
        return self.total / len(self.ring) if self.ring else 0.0


class LeastTime(Policy):
    __slots__ = ()

    tracks = True

    def __init__(self, pool: tuple[Any, ...], clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(pool, clock)
        turn = 0.0
        for u in pool:
            if u.times is None:
                u.times = ResponseTimes()
            if u.weight > 0:
                turn += 1 / u.weight
                u.deadline = turn

    def acquire(self, up: Any) -> float:
        up.inflight += 1
        return time.perf_counter()

    def answered(self, up: Any, start: float) -> None:
        up.times.add((time.perf_counter() - start) * 1000.0)

    def choose(self, now: float, exclude: Container[Any], client: str | None) -> Any | None:
        best: list[Any] = []
        low = 0.0
        for u in self.pool:
            if u.available(now) and u not in exclude:
                score = u.times.average() * (1 + u.inflight) / u.weight
                if not best or score < low:
                    best, low = [u], score
                elif score == low:
                    best.append(u)
        if len(best) < 2:
            return best[0] if best else None
        chosen = min(best, key=_deadline)
        chosen.deadline += 1 / chosen.weight
        return chosen


def _deadline(u: Any) -> float:
    return u.deadline  # type: ignore[no-any-return]
