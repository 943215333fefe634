"""``hrw``: highest random weight (rendezvous hashing) on the client IP, as Traefik's
(pkg/server/service/loadbalancer/hrw).

Every server gets a score for the client, Traefik's formula: ``weight / -ln(h / 2**64)`` where ``h`` is a
64-bit hash of the client IP followed by the server URL; the available server with the highest score
wins. A client keeps its server as long as that server is available; when a server is added only the
clients whose new score beats their old server's move (about 1/n of them, all to the new server), and
when one goes, only its own clients move. Shares follow the weights.

The hash is BLAKE2b's first 64 bits where Traefik uses FNV-1a: FNV-1a mixes the last bytes of its input
poorly, and server URLs differ mostly in their last bytes (the port), so with it shares come out skewed
(one of three equal servers got twice the others' clients in a test) and adding a server moved almost
half the clients instead of a quarter. The formula, the weights and the choice are Traefik's.

The per-server part of the scores depends on the client only, so it is worked out once per client IP
(a bounded memo) and a pick is a pass over the pool. Unlike Traefik's hrw, which has no sticky cookies, a
sticky cookie naming an available server still wins (:mod:`router.balancer` checks it first).
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Container
from typing import Any

from router.headers import Memo
from router.selection.base import Policy

_TWO_64 = float(2**64)


def hash64(data: bytes) -> int:
    """The 64-bit hash of a (client, server) pair: well mixed in every input byte."""
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


def node_score(client: str, url: str) -> float:
    """Traefik's ``getNodeScore`` before the weight: ``1 / -ln(hash(client + url) / 2**64)``."""
    x = hash64((client + url).encode()) / _TWO_64
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return math.inf
    return 1.0 / -math.log(x)


class RendezvousHash(Policy):
    __slots__ = ("_scores",)

    def __init__(self, pool: tuple[Any, ...], clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(pool, clock)
        self._scores = Memo(4096)  # client IP → the pool's unweighted scores, in pool order

    def scores(self, client: str) -> tuple[float, ...]:
        got = self._scores.get(client)
        if got is None:
            got = self._scores.keep(client, tuple(node_score(client, u.url) for u in self.pool))
        return got  # type: ignore[no-any-return]

    def choose(self, now: float, exclude: Container[Any], client: str | None) -> Any | None:
        best = None
        top = 0.0
        for u, s in zip(self.pool, self.scores(client or ""), strict=True):
            if u.available(now) and u not in exclude:
                s *= u.weight
                if best is None or s > top:
                    best, top = u, s
        return best
