"""loadBalancer.passiveHealthCheck (router.passive_health) and strategy/passiveHealthCheck parsing from
files and Docker labels; the API's state-and-why of each server."""

import math
import time

import pytest

from discover.docker_labels import build_docker_config
from discover.docker_model import ContainerInfo, DockerSettings, PortBinding
from discover.model import HealthCheck, LoadBalancer, PassiveHealthCheck, Server
from discover.parse import parse_dynamic
from discover.readers import ConfigError
from router.api.render import _load_balancer_json
from router.api.server_state import server_state
from router.balancer import PASSIVE_COOLDOWN, ServiceBalancer
from router.passive_health import UNTIL_CHECK


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def bal(passive=None, health_check=None, clock=None):
    spec = LoadBalancer(
        servers=(Server("http://a:1"), Server("http://b:1")),
        passive_health_check=passive,
        health_check=health_check,
    )
    return ServiceBalancer("s", spec, clock=clock or Clock())


# -- passive health --------------------------------------------------------------------------------------


def test_max_failed_attempts_within_the_window_take_a_server_out_for_the_window():
    clock = Clock()
    b = bal(PassiveHealthCheck(failure_window=10.0, max_failed_attempts=3), clock=clock)
    a = b.servers[0]
    b.mark_status(a, 500)
    clock.now += 4
    b.mark_failed(a, "connection refused")
    assert a.available(clock.now)  # two failures: still in
    clock.now += 4
    b.mark_status(a, 503)  # the third within 10 s
    assert not a.available(clock.now) and b.has_available()
    assert {b.pick() for _ in range(10)} == {b.servers[1]}
    clock.now += 9.9
    assert not a.available(clock.now)
    clock.now += 0.2
    assert a.available(clock.now)  # back after failureWindow (no active check)


def test_failures_outside_the_window_do_not_count_and_an_answer_clears_them():
    clock = Clock()
    b = bal(PassiveHealthCheck(failure_window=10.0, max_failed_attempts=2), clock=clock)
    a = b.servers[0]
    b.mark_status(a, 502)
    clock.now += 11
    b.mark_status(a, 502)  # the first is out of the window
    assert a.available(clock.now)
    b.mark_status(a, 200)  # an answer below 500 forgets the failures
    b.mark_status(a, 502)
    assert a.available(clock.now)
    b.mark_status(a, 502)
    assert not a.available(clock.now)


def test_with_an_active_check_a_passively_failed_server_waits_for_it():
    clock = Clock()
    b = bal(PassiveHealthCheck(max_failed_attempts=1), HealthCheck(path="/h"), clock=clock)
    a = b.servers[0]
    b.mark_status(a, 500)
    assert a.down_until == UNTIL_CHECK
    clock.now += 3600
    assert not a.available(clock.now)
    assert server_state(a, clock.now) == "DOWN: passive: 1 failures in 10s, last: status 500, " + (
        "back when the active check passes"
    )


def test_without_the_key_only_failed_connections_count_for_the_old_cooldown():
    clock = Clock()
    b = bal(clock=clock)
    a = b.servers[0]
    for _ in range(5):
        b.mark_status(a, 500)
    assert a.available(clock.now)  # answers never take it out without passiveHealthCheck
    b.mark_failed(a, "connection refused")
    assert not a.available(clock.now)
    clock.now += PASSIVE_COOLDOWN + 0.1
    assert a.available(clock.now)


def test_server_state_says_why():
    clock = Clock()
    b = bal(PassiveHealthCheck(failure_window=10.0, max_failed_attempts=1), clock=clock)
    a, c = b.servers
    assert server_state(a, clock.now) == "UP"
    b.mark_status(a, 502)
    state = server_state(a, clock.now, wall=1_700_000_000.0)
    assert state == "DOWN: passive: 1 failures in 10s, last: status 502, back at 2023-11-14T22:13:30Z"
    c.healthy, c.why = False, "status 500"
    assert server_state(c, clock.now) == "DOWN: active check failed: status 500"


def test_a_reload_without_active_check_does_not_keep_a_server_out_until_a_check():
    clock = Clock()
    b = bal(PassiveHealthCheck(), HealthCheck(path="/h"), clock=clock)
    b.mark_status(b.servers[0], 500)
    spec = LoadBalancer(
        servers=(Server("http://a:1"), Server("http://b:1")), passive_health_check=PassiveHealthCheck()
    )
    again = ServiceBalancer("s", spec, clock=clock, previous=b)
    assert again.servers[0].down_until != math.inf and again.servers[0].available(clock.now)


def test_a_good_answer_while_out_clears_only_the_failures_with_the_key():
    """Traefik resets the failure list on a good answer, nothing more: a server that is out stays out for
    its window (or until the active check passes), even when an answer comes back (a request in flight
    when it went out). Without the key, an answer brings it back (the rule before the key)."""
    for active in (None, HealthCheck(path="/h")):
        clock = Clock()
        b = bal(PassiveHealthCheck(failure_window=10.0, max_failed_attempts=1), active, clock=clock)
        a = b.servers[0]
        b.mark_status(a, 500)
        out_until = a.down_until
        clock.now += 1
        b.mark_status(a, 200)
        assert a.down_until == out_until and not a.available(clock.now), active
        assert a.failures is None
    clock = Clock()
    legacy = bal(clock=clock)
    a = legacy.servers[0]
    legacy.mark_failed(a, "connection refused")
    legacy.mark_status(a, 200)
    assert a.available(clock.now)


@pytest.mark.parametrize("strategy", ["wrr", "p2c", "hrw", "leasttime"])
def test_with_the_key_a_passively_down_server_takes_no_request_even_as_the_last_one(strategy):
    """Traefik answers 503 while passive health keeps every server out: no fallback to a down server,
    neither among several nor as the only one. Without the key the one back first is still tried."""
    clock = Clock()
    passive = PassiveHealthCheck(failure_window=10.0, max_failed_attempts=1)
    two = ServiceBalancer(
        "s",
        LoadBalancer(
            servers=(Server("http://a:1"), Server("http://b:1")),
            strategy=strategy,
            passive_health_check=passive,
        ),
        clock=clock,
    )
    one = ServiceBalancer(
        "s",
        LoadBalancer(servers=(Server("http://a:1"),), strategy=strategy, passive_health_check=passive),
        clock=clock,
    )
    for b in (two, one):
        for u in b.servers:
            b.mark_status(u, 502)
        assert b.pick(client="10.0.0.1") is None, b.servers
        assert b.has_healthy() and not b.has_available()
        clock.now += 10.1
        assert b.pick(client="10.0.0.1") is not None  # back after the window
    legacy = bal(clock=clock)
    for u in legacy.servers:
        legacy.mark_failed(u, "connection refused")
    assert legacy.pick() is not None


# -- parsing ---------------------------------------------------------------------------------------------


def lb_of(lb: dict) -> LoadBalancer:
    doc = {"http": {"services": {"s": {"loadBalancer": {"servers": [{"url": "http://a:1"}], **lb}}}}}
    return parse_dynamic(doc).services["s"].load_balancer


@pytest.mark.parametrize("name", ["wrr", "p2c", "hrw", "leasttime"])
def test_strategies_parse(name):
    assert lb_of({"strategy": name}).strategy == name


def test_default_and_empty_strategy_is_wrr():
    assert lb_of({}).strategy == "wrr" and lb_of({"strategy": ""}).strategy == "wrr"


@pytest.mark.parametrize("name", ["P2C", "random", "leastconn"])
def test_unknown_strategy_is_refused_naming_it(name):
    with pytest.raises(ConfigError) as err:
        lb_of({"strategy": name})
    assert name in str(err.value) and "strategy" in str(err.value)


def test_passive_health_check_keys_and_defaults():
    assert lb_of({"passiveHealthCheck": {}}).passive_health_check == PassiveHealthCheck(10.0, 1)
    got = lb_of({"passiveHealthCheck": {"failureWindow": "30s", "maxFailedAttempts": 3}})
    assert got.passive_health_check == PassiveHealthCheck(30.0, 3)
    assert lb_of({}).passive_health_check is None
    for bad in ({"failureWindow": "0s"}, {"maxFailedAttempts": "x"}, {"window": "1s"}):
        with pytest.raises(ConfigError):
            lb_of({"passiveHealthCheck": bad})


def test_labels_set_strategy_and_passive_health_check():
    labels = {
        "traefik.http.routers.r.rule": "Host(`a`)",
        "traefik.http.services.x.loadbalancer.strategy": "p2c",
        "traefik.http.services.x.loadbalancer.passivehealthcheck.maxfailedattempts": "3",
        "traefik.http.services.x.loadbalancer.passiveHealthCheck.failureWindow": "20s",
    }
    box = ContainerInfo(
        id="i", name="app", labels=labels, ports=(PortBinding(80),), networks={"n": "10.0.0.2"}
    )
    cfg, records = build_docker_config([box], DockerSettings(), frozenset())
    lb = cfg.services["x"].load_balancer
    assert lb.strategy == "p2c" and lb.passive_health_check == PassiveHealthCheck(20.0, 3)
    assert not any("strategy" in w for w in records["app"].warnings)


def test_labels_refuse_an_unknown_strategy():
    labels = {"traefik.http.services.x.loadbalancer.strategy": "fastest"}
    box = ContainerInfo(
        id="i", name="app", labels=labels, ports=(PortBinding(80),), networks={"n": "10.0.0.2"}
    )
    cfg, records = build_docker_config([box], DockerSettings(), frozenset())
    assert "x" not in cfg.services
    assert "fastest" in str(records["app"])


def test_metrics_server_up_follows_passive_health():
    from router.metrics_sources import server_up_rows

    b = bal(PassiveHealthCheck(max_failed_attempts=1), clock=time.monotonic)
    b.mark_status(b.servers[0], 500)
    assert server_up_rows({"s@file": b}) == [("s@file", "http://a:1", False), ("s@file", "http://b:1", True)]


def test_the_api_leaves_out_max_failed_attempts_of_0_as_traefiks_omitempty():
    def shown(phc):
        lb = LoadBalancer(servers=(Server("http://a:1"),), passive_health_check=phc)
        return _load_balancer_json(lb, "file")["passiveHealthCheck"]

    assert shown(PassiveHealthCheck(10.0, 0)) == {"failureWindow": "10s"}
    assert shown(PassiveHealthCheck(2.5, 3)) == {"failureWindow": "2.5s", "maxFailedAttempts": 3}
