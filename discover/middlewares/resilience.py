"""Options of the resilience middlewares (``retry``, ``circuitBreaker``, ``buffering``, ``errors``), declared
as :mod:`discover.middlewares.fields` says, and the two small languages they carry: status-code ranges
(``"500-599"``, ``"404"``) and the circuit breaker's ``expression``.

Both are checked here, when the configuration is read, so that a typo disables the routers using the
middleware with a message naming the option instead of failing at request time; the router builds from
what these functions return (:func:`status_ranges`, :func:`breaker_expression`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from discover.goexpr import And, Call, GoExprError, Node, Not, Num, Or, parse_expr
from discover.middlewares.fields import BOOL, DURATION, INT, LIST, MAP, STR, option

__all__ = [
    "ALL_HEADERS",
    "BREAKER_FUNCTIONS",
    "Buffering",
    "CircuitBreaker",
    "ErrorPage",
    "Retry",
    "TYPES",
    "breaker_expression",
    "status_ranges",
]

StatusRanges = tuple[tuple[int, int], ...]


def status_ranges(items: Iterable[str]) -> StatusRanges:
    """``("500-599", "404", "401,403")`` → ``((500, 599), (404, 404), (401, 401), (403, 403))``, as
    Traefik's HTTP code ranges; ValueError naming the bad entry."""
    out: list[tuple[int, int]] = []
    for item in items:
        for part in str(item).split(","):
            part = part.strip()
            if not part:
                continue
            low, _, high = part.partition("-")
            try:
                lo, hi = int(low), int(high or low)
            except ValueError:
                raise ValueError(f"{part!r} is not a status code or a range like 500-599") from None
            if not (100 <= lo <= hi <= 999):
                raise ValueError(f"{part!r}: expected codes between 100 and 999, the lower first")
            out.append((lo, hi))
    return tuple(out)


def _ranges_problem(key: str, items: Iterable[str]) -> Iterator[tuple[str, str]]:
    try:
        status_ranges(items)
    except ValueError as exc:
        yield key, str(exc)


# ---------------------------------------------------------------------------------------------------------
# retry
# ---------------------------------------------------------------------------------------------------------

RETRY_MAX_BODY_DEFAULT = 2 * 1024 * 1024  # Traefik's default maxRequestBodyBytes for retry


@dataclass(frozen=True, slots=True)
class Retry:
    """``retry``: send the request again when the service could not be reached (or answered one of
    ``status``), at most ``attempts`` times in all, with exponential backoff from ``initialInterval``."""

    attempts: int = option("attempts", INT, 0)
    timeout: float = option("timeout", DURATION, 0.0, minimum=0)
    initial_interval: float = option("initialInterval", DURATION, 0.0, minimum=0)
    max_request_body_bytes: int = option("maxRequestBodyBytes", INT, RETRY_MAX_BODY_DEFAULT, minimum=-1)
    status: tuple[str, ...] = option("status", LIST)
    disable_retry_on_network_error: bool = option("disableRetryOnNetworkError", BOOL, False)
    retry_non_idempotent_method: bool = option("retryNonIdempotentMethod", BOOL, False)

    def problems(self) -> Iterator[tuple[str, str]]:
        if self.attempts <= 0:
            yield "attempts", f"must be at least 1 (how many times the request is sent), got {self.attempts}"
        if self.disable_retry_on_network_error and not self.status:
            yield "disableRetryOnNetworkError", "with no status to retry on, nothing would ever be retried"
        yield from _ranges_problem("status", self.status)


# ---------------------------------------------------------------------------------------------------------
# circuitBreaker
# ---------------------------------------------------------------------------------------------------------

# Traefik's (oxy's) metric functions → how many numeric arguments each takes.
BREAKER_FUNCTIONS = {
    "NetworkErrorRatio": 0,
    "ResponseCodeRatio": 4,
    "LatencyAtQuantileMS": 1,
    "RequestThreshold": 0,
}


def breaker_expression(text: str) -> Node:
    """The circuit breaker's ``expression`` parsed and checked: comparisons of one metric function with a
    number, joined by ``&&`` and ``||`` (what Traefik accepts). Raises ValueError with the column."""
    try:
        node = parse_expr(text, noun="expression", callee=f"one of {_FUNCTIONS}", numbers=True)
    except GoExprError as exc:
        raise ValueError(str(exc)) from None
    _check_condition(node)
    return node


_FUNCTIONS = ", ".join(BREAKER_FUNCTIONS)


def _check_condition(node: Node) -> None:
    if isinstance(node, And | Or):
        for operand in node.operands:
            _check_condition(operand)
    elif isinstance(node, Not):
        raise ValueError(f"column {node.column}: '!' is not supported in a circuit breaker expression")
    elif isinstance(node, Call):
        raise ValueError(
            f"column {node.column}: {node.name}() is a number: compare it, e.g. {node.name}() > 0.5"
        )
    else:
        metric, value = (node.left, node.right) if isinstance(node.right, Num) else (node.right, node.left)
        if not isinstance(value, Num) or not isinstance(metric, Call):
            raise ValueError(f"column {node.column}: {node.op!r} compares a metric function with a number")
        _check_metric(metric)


def _check_metric(call: Call) -> None:
    want = BREAKER_FUNCTIONS.get(call.name)
    if want is None:
        raise ValueError(f"column {call.column}: unknown function {call.name}; expected one of {_FUNCTIONS}")
    if len(call.args) != want or not all(isinstance(a, Num) for a in call.args):
        raise ValueError(f"column {call.column}: {call.name} takes {want} number argument(s)")
    nums = [a.value for a in call.args if isinstance(a, Num)]
    if call.name == "ResponseCodeRatio" and not all(isinstance(a, Num) and a.is_int for a in call.args):
        raise ValueError(f"column {call.column}: ResponseCodeRatio takes status codes (integers)")
    if call.name == "LatencyAtQuantileMS" and not 0 < nums[0] <= 100:
        raise ValueError(f"column {call.column}: the quantile is a percentage, above 0 and at most 100")


@dataclass(frozen=True, slots=True)
class CircuitBreaker:
    """``circuitBreaker``: while ``expression`` holds over the recent requests, answer ``responseCode``
    without calling the service for ``fallbackDuration``, then let traffic back in over
    ``recoveryDuration``."""

    expression: str = option("expression", STR, "")
    check_period: float = option("checkPeriod", DURATION, 0.1, minimum=0)
    fallback_duration: float = option("fallbackDuration", DURATION, 10.0, minimum=0)
    recovery_duration: float = option("recoveryDuration", DURATION, 10.0, minimum=0)
    response_code: int = option("responseCode", INT, 503)

    def problems(self) -> Iterator[tuple[str, str]]:
        if not self.expression.strip():
            yield "expression", "must be set (e.g. NetworkErrorRatio() > 0.5)"
        else:
            try:
                breaker_expression(self.expression)
            except ValueError as exc:
                yield "expression", str(exc)
        if not 100 <= self.response_code <= 599:
            yield "responseCode", f"must be an HTTP status between 100 and 599, got {self.response_code}"


# ---------------------------------------------------------------------------------------------------------
# buffering
# ---------------------------------------------------------------------------------------------------------

MEM_BODY_DEFAULT = 1024 * 1024  # Traefik's (oxy's) memRequestBodyBytes / memResponseBodyBytes


@dataclass(frozen=True, slots=True)
class Buffering:
    """``buffering``: the request read whole before the service is called (413 above
    ``maxRequestBodyBytes``), the response held whole before the client gets it (500 above
    ``maxResponseBodyBytes``). 0 means no maximum, as in Traefik."""

    max_request_body_bytes: int = option("maxRequestBodyBytes", INT, 0, minimum=-1)
    mem_request_body_bytes: int = option("memRequestBodyBytes", INT, MEM_BODY_DEFAULT, minimum=0)
    max_response_body_bytes: int = option("maxResponseBodyBytes", INT, 0, minimum=-1)
    mem_response_body_bytes: int = option("memResponseBodyBytes", INT, MEM_BODY_DEFAULT, minimum=0)
    retry_expression: str = option("retryExpression", STR, "")

    def problems(self) -> Iterator[tuple[str, str]]:
        if self.retry_expression.strip():
            yield "retryExpression", "not supported by dockroute; use a retry middleware instead"


# ---------------------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------------------

# errorRequestHeaders left unset: every request header goes to the error page's service (Traefik's nil);
# set to an empty list, none does.
ALL_HEADERS = ("*",)


@dataclass(frozen=True, slots=True)
class ErrorPage:
    """``errors``: a response whose status is in ``status`` is replaced by the page ``query`` of
    ``service``, keeping the status (or its ``statusRewrites`` value)."""

    status: tuple[str, ...] = option("status", LIST)
    status_rewrites: Mapping[str, str] = option("statusRewrites", MAP)
    service: str = option("service", STR, "", reference="service")
    query: str = option("query", STR, "")
    error_request_headers: tuple[str, ...] = option("errorRequestHeaders", LIST, ALL_HEADERS)

    def problems(self) -> Iterator[tuple[str, str]]:
        if not self.service:
            yield "service", "must name the service serving the error pages"
        if not self.status:
            yield "status", "must list the statuses to replace (e.g. 500-599)"
        yield from _ranges_problem("status", self.status)
        for key, value in self.status_rewrites.items():
            yield from _ranges_problem(f"statusRewrites.{key}", (key,))
            if not (value.strip().isdigit() and 100 <= int(value) <= 599):
                yield f"statusRewrites.{key}", f"must be an HTTP status between 100 and 599, got {value!r}"


# Traefik's type name → its options dataclass; collected by discover.middlewares.
TYPES: dict[str, type] = {
    "retry": Retry,
    "circuitBreaker": CircuitBreaker,
    "buffering": Buffering,
    "errors": ErrorPage,
}
