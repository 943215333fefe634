"""The interface every selection strategy implements.

A policy sees the balancer's pool (servers it may pick, in configuration order) and chooses one that is
available now: it passes its active check, is not passively down (``down_until <= now``), has a positive
weight and is not in ``exclude`` (the servers this request already failed on).

:meth:`Policy.pick` is what the balancer's ``pick`` is (the balancer hands out the policy's bound method,
so a request pays one call): a sticky cookie naming an available server wins, whatever the strategy; a
pool of one takes no choosing; otherwise :meth:`Policy.choose`, the strategy proper. Without
``passiveHealthCheck`` (``fallback``, dockroute's rule before the key), when every remaining healthy server
is only passively down, the one that recovers first is tried rather than failing (the only server too);
with the key, as Traefik, a passively-down server takes no request: none available is a 503.

Accounting (in-flight requests, response times) costs nothing for a strategy that does not read it:
:mod:`router.forward` calls :meth:`Policy.acquire`, :meth:`Policy.answered` and :meth:`Policy.release`
only when ``tracks`` is true, for every attempt it makes and on every exit path.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Container, Mapping
from typing import Any


class Policy:
    """Chooses a server among ``pool`` (Upstream objects of :mod:`router.balancer`)."""

    __slots__ = ("pool", "single", "clock", "cookie_name", "by_cookie", "fallback")

    tracks = False  # True: the request path counts in-flight requests (and times answers) for it

    def __init__(self, pool: tuple[Any, ...], clock: Callable[[], float] = time.monotonic) -> None:
        self.pool = pool
        self.single = pool[0] if len(pool) == 1 else None
        self.clock = clock
        self.cookie_name: str | None = None  # set by the balancer for a sticky service
        self.by_cookie: Mapping[str, Any] = {}
        self.fallback = True  # a passively-down server is tried when nothing else is: see without_fallback

    def without_fallback(self) -> None:
        """As Traefik with ``passiveHealthCheck``: a passively-down server is never tried, even the only
        one (no ``single`` shortcut, which would skip the test: the pool of one goes through
        :meth:`choose`), so with none available the balancer answers 503."""
        self.fallback = False
        self.single = None

    def pick(
        self,
        cookies: Mapping[str, str] | None = None,
        exclude: Container[Any] = (),
        client: str | None = None,
    ) -> Any | None:
        """The server for this request, or ``None`` when no server passes its active health check."""
        now = self.clock()
        if cookies and self.cookie_name is not None:
            up = self.stuck(cookies, now, exclude)
            if up is not None:
                return up
        single = self.single
        if single is not None:
            if single.healthy and single.weight > 0 and single not in exclude:
                return single  # passively down or not: the only choice beats a certain 503
            return None
        best = self.choose(now, exclude, client)
        return best if best is not None else self.soonest(exclude)

    def stuck(self, cookies: Mapping[str, str], now: float, exclude: Container[Any]) -> Any | None:
        """The available server the sticky cookie names, if any."""
        value = cookies.get(self.cookie_name)  # type: ignore[arg-type]
        if value is not None:
            up = self.by_cookie.get(value)
            if up is not None and up.available(now) and up not in exclude:
                return up
        return None

    def soonest(self, exclude: Container[Any]) -> Any | None:
        """Nothing available: the healthy server not in ``exclude`` whose passive time out ends first
        (``fallback`` only; else None)."""
        if not self.fallback:
            return None
        best = None
        for u in self.pool:
            if (
                u.healthy
                and u.weight > 0
                and u not in exclude
                and (best is None or u.down_until < best.down_until)
            ):
                best = u
        return best

    def choose(self, now: float, exclude: Container[Any], client: str | None) -> Any | None:
        """An available server of the pool not in ``exclude``, or ``None`` when there is none.
        ``client`` is the client's IP address (``hrw`` hashes it; the others ignore it). A strategy
        implements this, or overrides :meth:`pick` whole (``wrr``, to inline its pass)."""
        raise NotImplementedError

    def acquire(self, up: Any) -> float:
        """A request starts on ``up``: count it in flight. Returns its start (for :meth:`answered`)."""
        up.inflight += 1
        return 0.0

    def answered(self, up: Any, start: float) -> None:
        """``up`` sent its response head for the request started at ``start``."""

    def release(self, up: Any) -> None:
        """The request on ``up`` is over (answered, failed, cancelled, tunnel closed). Never below 0: a
        count made negative (a way out releasing twice) would make the server look idler than idle to p2c
        and leasttime for good."""
        if up.inflight > 0:
            up.inflight -= 1
