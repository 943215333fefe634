"""``rateLimit``: a token bucket per source, with Traefik's arithmetic (``golang.org/x/time/rate``).

A bucket fills at ``average``/``period`` tokens a second (``period`` 0 is one second; ``average`` 0 is no
limit) up to ``burst`` (at least 1), and a new source starts full. A request takes a token; when none is
left it would have to wait until one has filled. Like Traefik, the limiter waits that long when it is short
(at most ``1/(2·rate)``, 0.5 s below one request a second) and then serves the request; a longer wait is
not taken (the token is given back) and the request gets 429 ``Too Many Requests`` with ``Retry-After``
(whole seconds, rounded up) and ``X-Retry-In`` (the wait as Go prints a duration).

Buckets live in a :class:`cachetools.TTLCache`: at most :data:`MAX_SOURCES` of them (the least recently
used goes first), each dropped after ``ttl`` seconds without a request (2 s at one request a second or
more, 1 + 1/rate below), so a flood of distinct clients costs bounded memory, as Traefik's ``ttlmap``.
Only ``redis`` is not supported; the options reader refuses it by name.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

from cachetools import TTLCache

from discover.middlewares.access import RateLimit
from router.exchange import Exchange, Handler, answer
from router.middlewares import Before, BuildContext, MiddlewareError
from router.middlewares.source import source_extractor

__all__ = ["MAX_SOURCES", "Limiter", "build", "go_duration"]

MAX_SOURCES = 65536  # Traefik's bound on the buckets one rate limiter keeps
_SECOND = 1_000_000_000
_TOO_MANY = b"Too Many Requests"


class Bucket:
    """One source's tokens at ``last`` (monotonic seconds); ``tokens`` is below 0 while requests wait."""

    __slots__ = ("tokens", "last", "touched")

    def __init__(self, tokens: float, last: float) -> None:
        self.tokens = tokens
        self.last = last
        self.touched = last  # when its time to live last restarted


class Limiter:
    """The buckets of one built middleware and the arithmetic on them (no I/O: unit-testable with a
    fake ``clock``)."""

    __slots__ = ("rate", "burst", "max_delay", "ttl", "refresh", "buckets", "clock", "hot_source", "hot")

    def __init__(
        self,
        rate: float,
        burst: int,
        max_delay: int,
        ttl: float,
        *,
        max_sources: int = MAX_SOURCES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate  # tokens a second
        self.burst = burst
        self.max_delay = max_delay  # nanoseconds
        self.ttl = ttl
        # Setting an entry costs as much as reading it: the time to live restarts at most every ttl/8, so
        # an idle bucket lives between 7/8·ttl and ttl (Traefik's store counts whole seconds: coarser).
        self.refresh = ttl / 8
        self.clock = clock
        self.buckets: TTLCache[str, Bucket] = TTLCache(maxsize=max_sources, ttl=ttl, timer=clock)
        self.hot_source: str | None = None  # the last source and its bucket (see reserve)
        self.hot: Bucket | None = None

    def reserve(self, source: str) -> int:
        """Take a token for ``source``: the wait in nanoseconds before the request may go (0 at once).
        A wait over ``max_delay`` takes nothing (as Traefik's cancelled reservation) and means 429."""
        now = self.clock()
        bucket = self.hot
        if source != self.hot_source or bucket is None or now - bucket.touched >= self.refresh:
            # The store is looked up only for another source than the last one, or once per ttl/8 for
            # the same one (its time to live restarts then): a busy client costs no cache operation.
            buckets = self.buckets
            bucket = buckets.get(source)
            if bucket is None:
                bucket = buckets[source] = Bucket(float(self.burst), now)
            elif now - bucket.touched >= self.refresh:
                bucket.touched = now
                buckets[source] = bucket  # the entry's time to live restarts
            self.hot_source, self.hot = source, bucket
        elapsed = now - bucket.last
        tokens = bucket.tokens
        if elapsed > 0:
            tokens = min(float(self.burst), tokens + elapsed * self.rate)
        bucket.last = max(now, bucket.last)
        left = tokens - 1.0
        wait = int(_SECOND * (-left / self.rate)) if left < 0 else 0
        bucket.tokens = tokens if wait > self.max_delay else left
        return wait


def build(options: RateLimit, ctx: BuildContext) -> object:
    if options.redis is not None:
        raise MiddlewareError("redis", "not supported: dockroute keeps rate-limit buckets in memory")
    period = round(options.period * _SECOND)
    if period < 0:
        raise MiddlewareError("period", "must not be negative")
    if options.average < 0:
        raise MiddlewareError("average", f"must be at least 0, got {options.average}")
    source = source_extractor(options.source_criterion, False, f"middleware {ctx.name}")
    if options.average == 0:
        return _unlimited
    period = period or _SECOND
    rate = options.average * _SECOND / period
    max_delay = 500_000_000 if rate < 1 else _SECOND // (int(rate) * 2)
    ttl = 2 if rate >= 1 else 1 + int(1 / rate)
    limiter = Limiter(rate, max(options.burst, 1), max_delay, ttl)
    return _wrapper(limiter, source, ctx.name)


def _unlimited(next_handler: Handler) -> Handler:
    """``average`` 0: Traefik's infinite rate; nothing to count."""
    return next_handler


def _wrapper(limiter: Limiter, source: Callable[[Exchange], str], name: str) -> Before:
    def rate_limit(ex: Exchange) -> Awaitable[Any] | None:
        wait = limiter.reserve(source(ex))
        if not wait:
            return None
        if wait > limiter.max_delay:
            headers = (
                ("Retry-After", str(math.ceil(wait / _SECOND))),
                ("X-Retry-In", go_duration(wait)),
            )
            return answer(ex, 429, _TOO_MANY, headers, reason=f"{name}: rate limited")
        return asyncio.sleep(wait / _SECOND, True)  # the short wait Traefik takes before serving

    return Before(rate_limit, limiter=limiter)


def go_duration(ns: int) -> str:
    """``ns`` as Go's ``time.Duration.String`` writes it (``100ms``, ``1.5s``, ``2m0.25s``), returned so
    that the latin-1 head writer emits Go's UTF-8 bytes for ``µ``."""
    if ns == 0:
        return "0s"
    sign, u = ("-", -ns) if ns < 0 else ("", ns)
    if u < 1000:
        text = f"{u}ns"
    elif u < 1_000_000:
        text = _fraction(u, 3) + "µs"
    elif u < _SECOND:
        text = _fraction(u, 6) + "ms"
    else:
        whole, frac = divmod(u, _SECOND)
        hours, rest = divmod(whole, 3600)
        minutes, seconds = divmod(rest, 60)
        text = f"{hours}h" if hours else ""
        if hours or minutes:
            text += f"{minutes}m"
        text += _fraction(seconds * _SECOND + frac, 9) + "s"
    return (sign + text).encode().decode("latin-1")


def _fraction(value: int, digits: int) -> str:
    whole, frac = divmod(value, 10**digits)
    if not frac:
        return str(whole)
    return f"{whole}.{frac:0{digits}d}".rstrip("0")
