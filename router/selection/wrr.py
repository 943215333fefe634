"""``wrr``: nginx's smooth weighted round robin, Traefik's default strategy.

Each pick adds every available server's weight to its running ``current``, takes the largest and takes
the total off it: weights are respected and interleaved (5:1:1 gives a a b a c a a, not a a a a a b c).
One pass over the pool, no allocation, no accounting (``tracks`` is false). ``pick`` is the base one with
the pass inlined: the default strategy pays no call more than before strategies existed.
"""

from __future__ import annotations

from collections.abc import Container, Mapping
from typing import Any

from router.selection.base import Policy


class WeightedRoundRobin(Policy):
    __slots__ = ()

    def pick(
        self,
        cookies: Mapping[str, str] | None = None,
        exclude: Container[Any] = (),
        client: str | None = None,
    ) -> Any | None:
        # Policy.pick with choose's pass inlined, and the same smooth pass as WeightedBalancer.pick_child
        # (router.balancer): kept as copies on purpose, a shared helper would add a call to every request.
        now = self.clock()
        if cookies and self.cookie_name is not None:
            up = self.stuck(cookies, now, exclude)
            if up is not None:
                return up
        single = self.single
        if single is not None:
            if single.healthy and single.weight > 0 and single not in exclude:
                return single
            return None
        best = None
        total = 0
        for u in self.pool:
            if u.healthy and u.down_until <= now and u.weight > 0 and u not in exclude:
                u.current += u.weight
                total += u.weight
                if best is None or u.current > best.current:
                    best = u
        if best is not None:
            best.current -= total
            return best
        return self.soonest(exclude)
