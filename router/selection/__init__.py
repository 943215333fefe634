"""``loadBalancer.strategy``: how a load balancer chooses among its available servers.

One small interface (:class:`~router.selection.base.Policy`), one module per strategy, as Caddy's
selection policies: ``wrr`` (smooth weighted round robin, the default), ``p2c`` (power of two choices on
in-flight requests), ``hrw`` (rendezvous hashing on the client IP) and ``leasttime`` (lowest response time
with fewest in-flight requests), Traefik v3.4-3.7's four. Sticky cookies, health and the fallback to a
passively-down server are the balancer's (:mod:`router.balancer`), the same for every strategy.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from router.selection.base import Policy
from router.selection.hrw import RendezvousHash
from router.selection.leasttime import LeastTime
from router.selection.p2c import PowerOfTwo
from router.selection.wrr import WeightedRoundRobin

__all__ = ["POLICIES", "Policy", "policy_for"]

POLICIES: dict[str, type[Policy]] = {
    "wrr": WeightedRoundRobin,
    "p2c": PowerOfTwo,
    "hrw": RendezvousHash,
    "leasttime": LeastTime,
}


def policy_for(strategy: str, pool: Sequence[Any], clock: Callable[[], float] = time.monotonic) -> Policy:
    """The policy of ``strategy`` (a name the parser accepted) over ``pool``; ``""`` is ``wrr``, as in
    Traefik, where providers that apply no defaults leave it empty."""
    return POLICIES[strategy or "wrr"](tuple(pool), clock)
