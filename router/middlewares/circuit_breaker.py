"""``circuitBreaker``: stop calling a service that is failing, answer ``responseCode`` instead, and let
traffic back in gradually (Traefik's, which is oxy's ``cbreaker``).

States, as there:

- *standby* (closed): every request goes to the service; its status and latency are recorded in a
  sliding window, and at most every ``checkPeriod`` the ``expression`` is evaluated over that window;
- *tripped* (open): when the expression holds, every request is answered ``responseCode`` for
  ``fallbackDuration`` without calling the service, and the window is cleared;
- *recovering* (half-open): then for ``recoveryDuration`` a growing share of requests goes through (the
  share allowed rises linearly from 0 to one half over the duration, as oxy's ratio controller); the
  expression holding again trips it again; at the end the breaker is back in standby.

The window is oxy's: counters over the last 10 seconds in 1-second slots, latencies over the last minute
in 10-second slots, each slot a handful of integers and a small map, so memory is bounded whatever the
traffic and recording a request costs a few additions. ``NetworkErrorRatio()`` counts 502 and 504 answers
(what the proxy answers when it cannot reach a server) over all; ``ResponseCodeRatio(a, b, c, d)`` is the
count of statuses in [a, b) over the count in [c, d); ``LatencyAtQuantileMS(q)`` the q-th percentile of
the time to the end of the answer, in milliseconds (1% precision); ``RequestThreshold()`` the number of
requests in the window.
"""

from __future__ import annotations

import logging
import math
import operator
import time
from collections.abc import Callable
from http import HTTPStatus

from discover.goexpr import And, Call, Compare, Node, Num, Or
from discover.middlewares.resilience import CircuitBreaker, breaker_expression
from router.exchange import Exchange, Handler, Headers, PassSink, Sink, answer
from router.middlewares import BuildContext, MiddlewareError

__all__ = ["Breaker", "Metrics", "build", "compile_condition"]

log = logging.getLogger("dockroute.router")

Clock = Callable[[], float]
Condition = Callable[["Metrics"], bool]

STANDBY, TRIPPED, RECOVERING = "standby", "tripped", "recovering"

_COUNTER_SLOTS, _COUNTER_SECONDS = 10, 1.0
_HIST_SLOTS, _HIST_SECONDS = 6, 10.0
_BIN_SCALE = 1.0 / math.log(1.01)  # latency bins 1% wide (oxy's histogram keeps 2 significant figures)


class _Counts:
    """One counter slot: requests, network errors and statuses seen during one second."""

    __slots__ = ("index", "total", "net", "codes")

    def __init__(self) -> None:
        self.index = -1
        self.total = 0
        self.net = 0
        self.codes: dict[int, int] = {}

    def reset(self, index: int) -> None:
        self.index = index
        self.total = self.net = 0
        self.codes = {}


class _Latencies:
    """One histogram slot: latency bin → count, for ten seconds."""

    __slots__ = ("index", "bins")

    def __init__(self) -> None:
        self.index = -1
        self.bins: dict[int, int] = {}


class Metrics:
    """The sliding window the expression is evaluated over."""

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self.clock = clock
        self._counts = [_Counts() for _ in range(_COUNTER_SLOTS)]
        self._latencies = [_Latencies() for _ in range(_HIST_SLOTS)]

    def record(self, status: int, seconds: float) -> None:
        now = self.clock()
        i = int(now // _COUNTER_SECONDS)
        c = self._counts[i % _COUNTER_SLOTS]
        if c.index != i:
            c.reset(i)
        c.total += 1
        if status == 502 or status == 504:
            c.net += 1
        c.codes[status] = c.codes.get(status, 0) + 1
        j = int(now // _HIST_SECONDS)
        h = self._latencies[j % _HIST_SLOTS]
        if h.index != j:
            h.index, h.bins = j, {}
        b = int(math.log(max(seconds * 1e6, 1.0)) * _BIN_SCALE)
        h.bins[b] = h.bins.get(b, 0) + 1

    def reset(self) -> None:
        for c in self._counts:
            c.reset(-1)
        for h in self._latencies:
            h.index, h.bins = -1, {}

    def _live_counts(self) -> list[_Counts]:
        i = int(self.clock() // _COUNTER_SECONDS)
        return [c for c in self._counts if i - _COUNTER_SLOTS < c.index <= i]

    def total(self) -> int:
        return sum(c.total for c in self._live_counts())

    def network_error_ratio(self) -> float:
        live = self._live_counts()
        total = sum(c.total for c in live)
        return sum(c.net for c in live) / total if total else 0.0

    def response_code_ratio(self, start_a: int, end_a: int, start_b: int, end_b: int) -> float:
        """Statuses in [start_a, end_a) over statuses in [start_b, end_b); 0 when the latter is 0."""
        a = b = 0
        for c in self._live_counts():
            for code, n in c.codes.items():
                if start_a <= code < end_a:
                    a += n
                if start_b <= code < end_b:
                    b += n
        return a / b if b else 0.0

    def latency_at_quantile_ms(self, quantile: float) -> int:
        """The ``quantile``-th percentile of the recorded latencies, in whole milliseconds (0 if none)."""
        j = int(self.clock() // _HIST_SECONDS)
        merged: dict[int, int] = {}
        for h in self._latencies:
            if j - _HIST_SLOTS < h.index <= j:
                for b, n in h.bins.items():
                    merged[b] = merged.get(b, 0) + n
        count = sum(merged.values())
        if not count:
            return 0
        wanted = max(1, math.ceil(count * quantile / 100.0))
        seen = 0
        for b in sorted(merged):
            seen += merged[b]
            if seen >= wanted:
                return int(math.exp((b + 1) / _BIN_SCALE) / 1000.0)  # the bin's upper bound, µs → ms
        return 0


_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}
_FLIPPED = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}


def _metric(call: Call) -> Callable[[Metrics], float]:
    args = [a.value for a in call.args if isinstance(a, Num)]
    if call.name == "NetworkErrorRatio":
        return Metrics.network_error_ratio
    if call.name == "ResponseCodeRatio":
        a0, a1, b0, b1 = (int(v) for v in args)
        return lambda m: m.response_code_ratio(a0, a1, b0, b1)
    if call.name == "LatencyAtQuantileMS":
        q = args[0]
        return lambda m: m.latency_at_quantile_ms(q)
    return Metrics.total  # RequestThreshold()


def compile_condition(node: Node) -> Condition:
    """The checked expression (:func:`~discover.middlewares.resilience.breaker_expression`) as a function
    of the metrics."""
    if isinstance(node, And | Or):
        parts = [compile_condition(n) for n in node.operands]
        if isinstance(node, And):
            return lambda m: all(p(m) for p in parts)
        return lambda m: any(p(m) for p in parts)
    assert isinstance(node, Compare)
    op = node.op
    if isinstance(node.left, Num):  # 0.5 < NetworkErrorRatio() reads as NetworkErrorRatio() > 0.5
        value, call, op = node.left.value, node.right, _FLIPPED[op]
    else:
        value, call = node.right.value, node.left  # type: ignore[union-attr]
    assert isinstance(call, Call)
    metric, test = _metric(call), _OPS[op]
    return lambda m: test(metric(m), value)


class _Ramp:
    """oxy's ratio controller: lets a request through when doing so keeps the share of requests let
    through under a target that grows linearly from 0 to 0.5 over ``duration``."""

    __slots__ = ("start", "duration", "allowed", "denied")

    def __init__(self, start: float, duration: float) -> None:
        self.start, self.duration = start, duration
        self.allowed = self.denied = 0

    def allow(self, now: float) -> bool:
        target = 0.5 * (now - self.start) / self.duration
        if (self.allowed + 1) / (self.allowed + 1 + self.denied) < target:
            self.allowed += 1
            return True
        self.denied += 1
        return False


class Breaker:
    """The state machine, with an injectable clock (tests drive it by hand)."""

    def __init__(
        self,
        condition: Condition,
        check_period: float,
        fallback: float,
        recovery: float,
        clock: Clock = time.monotonic,
        name: str = "",
    ) -> None:
        self.condition = condition
        self.check_period, self.fallback, self.recovery = check_period, fallback, recovery
        self.clock = clock
        self.name = name
        self.metrics = Metrics(clock)
        self.state = STANDBY
        self.until = 0.0
        self.next_check = 0.0
        self._ramp: _Ramp | None = None

    def allow(self) -> bool:
        """Whether this request may go to the service (False: answer the fallback)."""
        if self.state == STANDBY:
            return True
        now = self.clock()
        if self.state == TRIPPED:
            if now < self.until:
                return False
            self.state, self.until = RECOVERING, now + self.recovery
            self._ramp = _Ramp(now, self.recovery)
            log.info("circuit breaker %s: recovering for %gs", self.name, self.recovery)
        if now > self.until:
            self.state = STANDBY
            log.info("circuit breaker %s: back to standby", self.name)
            return True
        assert self._ramp is not None
        return self._ramp.allow(now)

    def record(self, status: int, seconds: float) -> None:
        """One answer the service gave (through this middleware); then maybe a check."""
        self.metrics.record(status, seconds)
        now = self.clock()
        if now < self.next_check:
            return
        self.next_check = now + self.check_period
        if self.state == TRIPPED or not self.condition(self.metrics):
            return
        self.state, self.until = TRIPPED, now + self.fallback
        self.metrics.reset()
        log.warning("circuit breaker %s: tripped; answering the fallback for %gs", self.name, self.fallback)


class _Status(PassSink):
    """Notes the status of the answer on its way out."""

    __slots__ = ("status",)

    def __init__(self, downstream: Sink) -> None:
        super().__init__(downstream)
        self.status = 0

    async def start(self, status: int, headers: Headers, reason: str = "") -> None:
        self.status = status
        await super().start(status, headers, reason)


def build(options: CircuitBreaker, ctx: BuildContext) -> object:
    try:
        condition = compile_condition(breaker_expression(options.expression))
    except ValueError as exc:
        raise MiddlewareError("expression", str(exc)) from None
    # Traefik uses its defaults for a value that is not positive.
    breaker = Breaker(
        condition,
        options.check_period if options.check_period > 0 else 0.1,
        options.fallback_duration if options.fallback_duration > 0 else 10.0,
        options.recovery_duration if options.recovery_duration > 0 else 10.0,
        name=f"{ctx.name} (router {ctx.router})",
    )
    code = options.response_code
    try:
        text = HTTPStatus(code).phrase
    except ValueError:
        text = ""
    why = f"blocked by circuit-breaker ({options.expression})"
    clock = time.monotonic

    def wrap(next_handler: Handler) -> Handler:
        async def circuit_breaker(ex: Exchange) -> None:
            if not breaker.allow():
                await answer(ex, code, text, reason=why)
                return
            sink = ex.sink = _Status(ex.sink)
            started = clock()
            await next_handler(ex)
            status = sink.status or (502 if ex.failed else 200)
            breaker.record(status, clock() - started)

        circuit_breaker.breaker = breaker  # type: ignore[attr-defined]  # for tests and introspection
        return circuit_breaker

    return wrap
