"""retry, circuitBreaker, buffering, errors: their options (files and labels), the circuit breaker's
expression (the rule grammar plus numbers and comparisons), its window and its state machine on a fake
clock, and retry's backoff."""

from __future__ import annotations

import pytest

from discover.docker_labels import build_docker_config
from discover.docker_model import ContainerInfo, DockerSettings, PortBinding
from discover.goexpr import Arg, Call, Compare, GoExprError, Num, Or, parse_expr
from discover.middlewares.resilience import (
    ALL_HEADERS,
    Buffering,
    CircuitBreaker,
    ErrorPage,
    Retry,
    breaker_expression,
    status_ranges,
)
from discover.parse import parse_dynamic
from router.middlewares import BuildContext, MiddlewareError
from router.middlewares.circuit_breaker import (
    RECOVERING,
    STANDBY,
    TRIPPED,
    Breaker,
    Metrics,
    compile_condition,
)
from router.middlewares.retry import Backoff
from router.rules import RuleError, parse_rule

T = "traefik.http.middlewares."


def _file(mws):
    return parse_dynamic({"http": {"middlewares": mws}}).middlewares


def _labels(labels):
    box = ContainerInfo(
        id="app-id", name="app", labels=labels, ports=(PortBinding(80),), networks={"net": "10.0.0.2"}
    )
    cfg, _ = build_docker_config([box], DockerSettings(), frozenset())
    return cfg.middlewares


# -- options ----------------------------------------------------------------------------------------------


def test_options_from_a_file_and_from_labels_are_the_same():
    file = _file(
        {
            "r": {"retry": {"attempts": 4, "initialInterval": "100ms", "status": ["500-599", "404"]}},
            "cb": {"circuitBreaker": {"expression": "NetworkErrorRatio() > 0.30", "fallbackDuration": "3s"}},
            "buf": {"buffering": {"maxRequestBodyBytes": 2000000, "maxResponseBodyBytes": 1000}},
            "err": {"errors": {"status": ["500-599"], "service": "pages", "query": "/{status}.html"}},
        }
    )
    labels = _labels(
        {
            T + "r.retry.attempts": "4",
            T + "r.retry.initialinterval": "100ms",
            T + "r.retry.status": "500-599,404",
            T + "cb.circuitbreaker.expression": "NetworkErrorRatio() > 0.30",
            T + "cb.circuitbreaker.fallbackduration": "3s",
            T + "buf.buffering.maxrequestbodybytes": "2000000",
            T + "buf.buffering.maxresponsebodybytes": "1000",
            T + "err.errors.status": "500-599",
            T + "err.errors.service": "pages",
            T + "err.errors.query": "/{status}.html",
        }
    )
    for name, value in file.items():
        got = labels[name.replace("@file", "")] if name not in labels else labels[name]
        assert not value.error and not got.error, (value.error, got.error)
        if name != "err":  # the service reference is qualified by provider (pages@file / pages@docker)
            assert got.options == value.options
    r = file["r"].options
    assert isinstance(r, Retry)
    assert (r.attempts, r.initial_interval, r.status) == (4, 0.1, ("500-599", "404"))
    assert r.max_request_body_bytes == 2 * 1024 * 1024  # Traefik's default
    cb = file["cb"].options
    assert isinstance(cb, CircuitBreaker)
    assert (cb.check_period, cb.fallback_duration, cb.recovery_duration, cb.response_code) == (
        0.1,
        3,
        10,
        503,
    )
    buf = file["buf"].options
    assert isinstance(buf, Buffering) and buf.mem_request_body_bytes == 1024 * 1024
    err = file["err"].options
    assert isinstance(err, ErrorPage) and err.error_request_headers == ALL_HEADERS
    assert (
        _file({"e": {"errors": {"status": "404", "service": "p", "errorRequestHeaders": []}}})[
            "e"
        ].options.error_request_headers
        == ()
    )


@pytest.mark.parametrize(
    ("mw", "words"),
    [
        ({"retry": {}}, "attempts: must be at least 1"),
        ({"retry": {"attempts": 2, "disableRetryOnNetworkError": True}}, "disableRetryOnNetworkError"),
        ({"retry": {"attempts": 2, "status": ["5xx"]}}, "status: '5xx' is not a status code"),
        ({"retry": {"attempts": 2, "bogus": 1}}, "unknown key 'bogus'"),
        ({"circuitBreaker": {}}, "expression: must be set"),
        ({"circuitBreaker": {"expression": "Foo() > 1"}}, "unknown function Foo"),
        ({"circuitBreaker": {"expression": "NetworkErrorRatio()"}}, "compare it"),
        ({"circuitBreaker": {"expression": "NetworkErrorRatio() >"}}, "column 22: unexpected end"),
        ({"circuitBreaker": {"expression": "!(NetworkErrorRatio() > 0.5)"}}, "'!' is not supported"),
        ({"circuitBreaker": {"expression": "ResponseCodeRatio(500, 600) > 0.5"}}, "takes 4 number"),
        ({"circuitBreaker": {"expression": "LatencyAtQuantileMS(150.0) > 5"}}, "the quantile"),
        ({"circuitBreaker": {"expression": "NetworkErrorRatio() > 0.5", "responseCode": 42}}, "responseCode"),
        ({"buffering": {"retryExpression": "IsNetworkError() && Attempts() < 2"}}, "retryExpression: not"),
        ({"errors": {"status": ["500-599"]}}, "service: must name"),
        ({"errors": {"service": "p", "status": ["600-500"]}}, "the lower first"),
        ({"errors": {"service": "p", "status": "404", "statusRewrites": {"418": "x"}}}, "statusRewrites.418"),
    ],
)
def test_bad_options_are_refused_by_name(mw, words):
    (got,) = _file({"m": mw}).values()
    assert words in got.error, got.error


def test_status_ranges():
    assert status_ranges(["500-599", "404", "401,403"]) == ((500, 599), (404, 404), (401, 401), (403, 403))
    with pytest.raises(ValueError, match="between 100 and 999"):
        status_ranges(["99"])


def _ctx(handler=None):
    return BuildContext("m@file", "r@file", None, lambda name: handler)  # type: ignore[arg-type]


def test_errors_refuses_a_service_that_cannot_serve_at_build_time():
    from router.middlewares import errors

    with pytest.raises(MiddlewareError) as info:
        errors.build(ErrorPage(status=("404",), service="nope@file"), _ctx(None))
    assert info.value.option == "service" and "nope@file" in info.value.message


# -- the expression: one grammar, numbers and comparisons added ------------------------------------------


def test_numbers_and_comparisons_parse_only_when_asked():
    node = parse_expr("NetworkErrorRatio() > 0.5 || LatencyAtQuantileMS(50.0) >= 100", numbers=True)
    assert node == Or(
        (
            Compare(">", Call("NetworkErrorRatio", 1, ()), Num(0.5, "0.5", 23), 21),
            Compare(">=", Call("LatencyAtQuantileMS", 30, (Num(50.0, "50.0", 50),)), Num(100, "100", 59), 56),
        )
    )
    # a rule is the same grammar as before: no numbers, no comparisons
    for rule in ("Host(`a`) > 1", "Host(5)"):
        with pytest.raises(GoExprError, match="unexpected character"):
            parse_expr(rule)
        with pytest.raises(RuleError):
            parse_rule(rule)
    assert parse_expr("F(`a`) && !G()", numbers=True) == parse_expr("F(`a`) && !G()")
    assert parse_expr("F(`x`, 2)", numbers=True) == Call("F", 1, (Arg("x", 3), Num(2, "2", 8)))


@pytest.mark.parametrize(
    ("src", "column", "words"),
    [
        ("A() > 1 > 2", 9, "do not chain"),
        ("A() = 1", 5, "did you mean '=='"),
        ("0.5", 4, "expected a comparison after the number 0.5"),
        ("A(1x)", 4, "in a number"),
        ("A() >", 6, "unexpected end of expression"),
    ],
)
def test_expression_errors_name_the_column(src, column, words):
    with pytest.raises(GoExprError) as info:
        parse_expr(src, numbers=True)
    assert info.value.column == column and words in info.value.message, str(info.value)


class Clock:
    def __init__(self, t=1000.0):
        self.t = t

    def __call__(self):
        return self.t


def test_metrics_over_a_sliding_window():
    clock = Clock()
    m = Metrics(clock)
    for status in (200, 200, 502, 504, 500):
        m.record(status, 0.010)
    assert m.total() == 5
    assert m.network_error_ratio() == pytest.approx(2 / 5)
    assert m.response_code_ratio(500, 600, 0, 600) == pytest.approx(3 / 5)
    assert m.response_code_ratio(500, 502, 200, 201) == pytest.approx(1 / 2)  # [a, b): 502 is not in 500-502
    for _ in range(90):
        m.record(200, 0.002)
    m.record(200, 0.900)
    assert m.latency_at_quantile_ms(50) in (2, 3)  # 1% bins: 2 ms reads as 2 (its bin's upper bound)
    assert m.latency_at_quantile_ms(100) in range(900, 912)
    clock.t += 11  # the counters cover 10 seconds
    assert m.total() == 0 and m.network_error_ratio() == 0.0
    assert m.latency_at_quantile_ms(50) in (2, 3)  # latencies cover a minute
    clock.t += 60
    assert m.latency_at_quantile_ms(50) == 0


def test_condition_compiles_both_ways_round():
    m = Metrics(Clock())
    m.record(502, 0.001)
    m.record(200, 0.001)
    assert compile_condition(breaker_expression("NetworkErrorRatio() >= 0.5"))(m)
    assert compile_condition(breaker_expression("0.4 < NetworkErrorRatio()"))(m)
    assert not compile_condition(breaker_expression("NetworkErrorRatio() > 0.5 && RequestThreshold() > 1"))(m)
    assert compile_condition(breaker_expression("NetworkErrorRatio() > 0.9 || RequestThreshold() == 2"))(m)


def test_breaker_trips_falls_back_recovers_and_returns_to_standby():
    clock = Clock()
    cond = compile_condition(breaker_expression("NetworkErrorRatio() > 0.5"))
    b = Breaker(cond, check_period=0.1, fallback=10, recovery=10, clock=clock)
    assert b.allow()
    b.record(200, 0.001)
    assert b.state == STANDBY
    clock.t += 0.2
    b.record(502, 0.001)
    b.record(502, 0.001)  # within the check period: not evaluated yet
    assert b.state == STANDBY
    clock.t += 0.2
    b.record(502, 0.001)
    assert b.state == TRIPPED and b.metrics.total() == 0  # the window is cleared on tripping
    clock.t += 9.9
    assert not any(b.allow() for _ in range(100))  # the whole fallback duration
    clock.t += 0.2
    # recovering: the share let through grows from 0 towards one half over the recovery duration
    early = sum(b.allow() for _ in range(100))
    assert b.state == RECOVERING and early == 0
    clock.t += 5
    mid = sum(b.allow() for _ in range(100))
    # halfway, a quarter of all the requests since recovery began have been let through
    assert mid / 200 == pytest.approx(0.25, abs=0.01), mid
    clock.t += 5.1
    assert b.allow() and b.state == STANDBY
    assert all(b.allow() for _ in range(10))


def test_breaker_trips_again_while_recovering():
    clock = Clock()
    cond = compile_condition(breaker_expression("ResponseCodeRatio(500, 600, 0, 600) > 0.5"))
    b = Breaker(cond, check_period=0.1, fallback=1, recovery=10, clock=clock)
    clock.t += 0.2
    b.record(500, 0.001)
    assert b.state == TRIPPED
    clock.t += 1.1
    b.allow()
    assert b.state == RECOVERING
    clock.t += 0.2
    b.record(503, 0.001)
    assert b.state == TRIPPED and not b.allow()


def test_backoff_grows_to_twice_the_first_wait():
    b = Backoff(0.1, 5, rand=lambda: 0.5)  # the middle of the ±50% randomisation
    waits = [b.next() for _ in range(4)]
    assert waits[0] == pytest.approx(0.1)
    assert waits[-1] == pytest.approx(0.1 * 2 ** (3 / 4))
    assert all(b < a * 1.2 and b > a for a, b in zip(waits, waits[1:], strict=False))
    assert Backoff(0, 5).next() == 0
    low, high = Backoff(1, 3, rand=lambda: 0.0).next(), Backoff(1, 3, rand=lambda: 0.999).next()
    assert low == pytest.approx(0.5) and high == pytest.approx(1.5, abs=0.01)


def test_retry_counts_its_retries_on_the_request_for_the_access_log():
    """Traefik's RetryAttempts (and accessLog.filters.retryAttempts) reads how many times retry tried
    again: kept on the request, 2 after two failed attempts and a third that answered."""
    import asyncio
    from types import SimpleNamespace

    from router.exchange import answer
    from router.middlewares import retry
    from router.proxy import RETRIES
    from tests.exchange_fakes import ctx, fake_exchange, read_options

    wrap = retry.build(read_options("retry", {"attempts": 3, "initialInterval": "0s"}), ctx())
    calls = []

    async def service(ex):
        calls.append(1)
        if len(calls) < 3:
            ex.failed = "connection refused"  # a network failure, answered by nobody: retried
            return
        await answer(ex, 200, "ok")

    class Request(dict):  # aiohttp's request is a mapping too; its body is read already here
        content = SimpleNamespace(is_eof=lambda: True)

    ex = fake_exchange()
    ex.request = Request()
    ex.msg.chunked = False
    ex.body = b""  # nothing to replay
    asyncio.run(wrap(service)(ex))
    assert len(calls) == 3 and ex.request[RETRIES] == 2
    assert ex.transport.data.startswith(b"HTTP/1.1 200 ")
