"""``retry``: send a request again when the service could not be reached, or answered one of ``status``,
at most ``attempts`` times in all (Traefik's ``retry``).

How an attempt fails quietly: every attempt but the last runs with ``ex.quiet_failures`` set, so the proxy
(:func:`router.forward.forward_exchange`) reports a server it could not reach in ``ex.failed`` instead of
answering 502/504; and, with ``status``, the answer goes through a sink that swallows a response whose
status is in the ranges. Once anything reached the client, nothing is retried. Each attempt starts from
the request as this middleware got it (path, method, header edits and response sinks of the middlewares
after it are undone), as Traefik clones the request per attempt.

Between attempts it waits as Traefik's exponential backoff does: the first wait is ``initialInterval``
(randomised by ±50%), each next one ``2^(1/(attempts-1))`` times longer, so that the last is about twice
the first; no wait without ``initialInterval``. ``timeout`` bounds the time spent retrying: the first
attempt that starts (or answers) after it has passed is the last, and its answer is the client's.

Only idempotent requests are retried (not POST, PATCH or LOCK, Traefik's list) unless
``retryNonIdempotentMethod`` is set; a request body is replayed from memory: one of at most
``maxRequestBodyBytes`` (2 MiB by default, -1: no limit) with a ``Content-Length`` is read first; a
larger or chunked body is sent once, without retries.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable

from discover.middlewares.resilience import Retry, StatusRanges, status_ranges
from router.exchange import Exchange, Handler, Sink
from router.middlewares import BuildContext, MiddlewareError
from router.middlewares.status_sink import CatchingSink, in_ranges
from router.proxy import RETRIES

__all__ = ["Backoff", "build"]

_NON_IDEMPOTENT = frozenset({"POST", "PATCH", "LOCK"})


class Backoff:
    """The waits between attempts (cenkalti/backoff's exponential backoff as Traefik configures it)."""

    def __init__(self, initial: float, attempts: int, rand: Callable[[], float] = random.random) -> None:
        self.current = initial
        self.multiplier = 2 ** (1 / (attempts - 1)) if attempts > 1 else 1.0
        self.rand = rand

    def next(self) -> float:
        if self.current <= 0:
            return 0.0
        delta = 0.5 * self.current
        wait = self.current - delta + self.rand() * 2 * delta
        self.current = min(self.current * self.multiplier, 60.0)  # the library's MaxInterval
        return wait


class _Attempt(CatchingSink):
    """The answer of one attempt: passed on, unless its status is one to retry on (then swallowed)."""

    def __init__(self, downstream: Sink, ranges: StatusRanges, deadline: float) -> None:
        super().__init__(downstream)
        self.ranges = ranges
        self.deadline = deadline

    def catches(self, status: int) -> bool:
        return bool(self.ranges) and in_ranges(self.ranges, status) and time.monotonic() < self.deadline


class _Snapshot:
    """What the middlewares after this one may change, restored before each attempt."""

    __slots__ = ("method", "path", "raw_query", "edits", "sink", "values", "close")

    def __init__(self, ex: Exchange) -> None:
        self.method, self.path, self.raw_query = ex.method, ex.path, ex.raw_query
        self.edits = dict(ex.header_edits)
        self.sink = ex.sink
        self.values = dict(ex.values)
        self.close = ex.close

    def restore(self, ex: Exchange) -> None:
        ex.method, ex.path, ex.raw_query = self.method, self.path, self.raw_query
        ex.header_edits = dict(self.edits)
        ex.sink = self.sink
        ex.values = dict(self.values)
        ex.failed = None
        ex.upstream = None
        ex.close = self.close  # a failed attempt closes its server connection, not the client's


async def _replayable(ex: Exchange, max_body: int) -> bool:
    """Whether the request can be sent again: no body, or one now read into memory (see the module)."""
    if ex.body is not None:
        return True
    if ex.msg.chunked:
        return False
    length = ex.headers.get("Content-Length")
    if length is None or length.strip() in ("", "0"):
        return True
    try:
        n = int(length)
    except ValueError:
        return False
    if max_body >= 0 and n > max_body:
        return False
    return await ex.read_body(None if max_body < 0 else max_body) is not None


def build(options: Retry, ctx: BuildContext) -> object:
    if options.attempts <= 0:
        raise MiddlewareError("attempts", f"must be at least 1, got {options.attempts}")
    try:
        ranges = status_ranges(options.status)
    except ValueError as exc:
        raise MiddlewareError("status", str(exc)) from None
    attempts = options.attempts
    network = not options.disable_retry_on_network_error
    any_method = options.retry_non_idempotent_method
    timeout = options.timeout

    def wrap(next_handler: Handler) -> Handler:
        if attempts == 1:
            return next_handler  # one attempt is no retry (Traefik passes it straight through)

        async def retry(ex: Exchange) -> None:
            if (not any_method and ex.method in _NON_IDEMPOTENT) or not await _replayable(
                ex, options.max_request_body_bytes
            ):
                await next_handler(ex)
                return
            await _attempts(ex, next_handler, attempts, options.initial_interval, timeout, ranges, network)

        return retry

    return wrap


async def _attempts(
    ex: Exchange,
    next_handler: Handler,
    attempts: int,
    initial: float,
    timeout: float,
    ranges: StatusRanges,
    network: bool,
) -> None:
    """Up to ``attempts`` runs of ``next_handler``; all but the last fail quietly."""
    snap = _Snapshot(ex)
    quiet = ex.quiet_failures
    deadline = time.monotonic() + timeout if timeout > 0 else float("inf")
    backoff = Backoff(initial, attempts)
    for n in range(1, attempts + 1):
        if n > 1:
            snap.restore(ex)
            _count_retry(ex, n - 1)
        if n == attempts or time.monotonic() >= deadline:
            ex.quiet_failures = quiet
            await next_handler(ex)
            return
        sink = _Attempt(snap.sink, ranges, deadline)
        ex.sink = sink
        ex.quiet_failures = network or quiet
        try:
            await next_handler(ex)
        finally:
            ex.quiet_failures = quiet
        if ex.started or (sink.started and not sink.caught):
            return  # answered: the client has (or will have) this attempt's response
        if not sink.caught and not (ex.failed and network):
            return  # nothing to retry on (another middleware answered later, or will)
        wait = backoff.next()
        if wait:
            await asyncio.sleep(wait)


def _count_retry(ex: Exchange, retries: int) -> None:
    """The access log's ``RetryAttempts`` (and its ``retryAttempts`` filter): kept on the request."""
    request = ex.request
    if request is not None and hasattr(request, "__setitem__"):
        request[RETRIES] = retries
