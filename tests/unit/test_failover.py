"""``failover`` services: parsing, qualified references, the balancer built for them (Traefik's refusals
included) and how a request is walked down to the main service or the fallback, and the API."""

from __future__ import annotations

import logging

import pytest
from multidict import CIMultiDict

from discover.model import (
    Failover,
    HealthCheck,
    LoadBalancer,
    Mirroring,
    Router,
    Server,
    Service,
    Weighted,
    WeightedRef,
    merge,
)
from discover.parse import check_references, parse_dynamic_with_warnings
from router.balancer import build_balancers
from router.compile import compile_config
from router.failover import FailoverBalancer
from router.forward import _pick
from router.rules import RequestInfo
from router.settings import EntryPoint
from tests.api_fakes import get, state
from tests.unit.test_model import cfg

EPS = (EntryPoint("web", ":80"),)


def _lb(name: str, port: int, checked: bool = True) -> Service:
    lb = LoadBalancer(
        servers=(Server(f"http://127.0.0.1:{port}"),), health_check=HealthCheck() if checked else None
    )
    return Service(name, load_balancer=lb)


def _fo(name: str, main: str, fallback: str, health_check: bool = False) -> Service:
    return Service(name, failover=Failover(main, fallback, health_check))


def test_parsed_and_qualified_and_missing_references_warned():
    parsed, _ = parse_dynamic_with_warnings(
        {
            "http": {
                "services": {"f": {"failover": {"service": "a", "fallback": "b@docker", "healthCheck": {}}}}
            }
        },
        references=False,
    )
    assert parsed.services["f"].failover == Failover("a", "b@docker", True)
    assert check_references(parsed) == ["http.services.f.failover: service 'a' is not defined"]
    assert merge({"file": parsed}).services["f@file"].failover == Failover("a@file", "b@docker", True)


def _walk(balancers: dict, name: str) -> str:
    """The server URL a request to service ``name`` reaches (forward's own descent)."""
    target = type("T", (), {"balancer": balancers[name]})()
    picked = _pick(target, CIMultiDict())
    return "503" if picked is None else picked[1].url


def test_requests_go_to_the_main_service_while_it_is_up_and_to_the_fallback_otherwise():
    services = {
        s.name: s for s in (_fo("f", "main", "backup"), _lb("main", 1), _lb("backup", 2, checked=False))
    }
    balancers = build_balancers(services)
    assert type(balancers["f"]) is FailoverBalancer
    assert _walk(balancers, "f") == "http://127.0.0.1:1"
    main = balancers["main"].servers[0]
    main.healthy = False  # what the active check sets
    assert _walk(balancers, "f") == "http://127.0.0.1:2"
    assert balancers["f"].has_available()
    main.healthy = True
    assert _walk(balancers, "f") == "http://127.0.0.1:1"


def test_with_its_own_health_check_a_down_fallback_is_503_and_parents_see_it_down():
    services = {
        s.name: s
        for s in (
            _fo("f", "main", "backup", health_check=True),
            _lb("main", 1),
            _lb("backup", 2),
            _lb("other", 3),
            Service("w", weighted=Weighted((WeightedRef("f", 1), WeightedRef("other", 1)))),
        )
    }
    balancers = build_balancers(services)
    balancers["main"].servers[0].healthy = False
    balancers["backup"].servers[0].healthy = False
    assert _walk(balancers, "f") == "503"
    assert not balancers["f"].has_available()
    assert {_walk(balancers, "w") for _ in range(4)} == {"http://127.0.0.1:3"}  # a weighted parent skips it
    balancers["backup"].servers[0].healthy = True
    assert {_walk(balancers, "w") for _ in range(4)} == {"http://127.0.0.1:2", "http://127.0.0.1:3"}


@pytest.mark.parametrize(
    ("services", "why"),
    [
        ((_fo("f", "main", "backup"), _lb("main", 1, checked=False)), "its service main has no healthCheck"),
        (
            (_fo("f", "main", "backup", health_check=True), _lb("main", 1), _lb("backup", 2, checked=False)),
            "it has healthCheck but its fallback backup has none",
        ),
        ((_fo("f", "main", "ghost"), _lb("main", 1)), "its child service ghost does not exist"),
        (
            (_fo("f", "m", "backup"), Service("m", mirroring=Mirroring("main")), _lb("main", 1)),
            "its child service m is a mirroring service, which only a router can use",
        ),
        (
            (_fo("f", "g", "backup", True), _fo("g", "f", "backup", True), _lb("main", 1)),
            "its child service g is left out",
        ),
    ],
)
def test_refused_as_traefik_refuses_them_with_one_error_line(caplog, services, why):
    caplog.set_level(logging.ERROR)
    services = {s.name: s for s in (*services, _lb("backup", 2))} | {s.name: s for s in services}
    errors: dict[str, str] = {}
    balancers = build_balancers(services, errors=errors)
    assert "f" not in balancers
    assert errors["f"].startswith(why)
    assert [r.getMessage() for r in caplog.records if "service f is left out" in r.getMessage()] == [
        f"service f is left out: {errors['f']}"
    ]


def test_a_cycle_of_failovers_is_named():
    services = {s.name: s for s in (_fo("f", "g", "b", True), _fo("g", "f", "b", True), _lb("b", 1))}
    errors: dict[str, str] = {}
    build_balancers(services, errors=errors)
    assert errors["g"] == "services form a cycle: f -> g -> f"


def test_a_router_to_a_failover_service_is_compiled():
    routers = [Router("r", "PathPrefix(`/`)", "f")]
    compiled = compile_config(
        merge(
            {
                "file": cfg(
                    routers=routers, services=[_fo("f", "main", "backup"), _lb("main", 1), _lb("backup", 2)]
                )
            }
        ),
        EPS,
    )
    target = compiled.tables["web"].lookup(RequestInfo("GET", "h", "/", "", {}, "127.0.0.1")).target
    assert type(target.balancer) is FailoverBalancer and not compiled.errors


async def test_the_api_shows_a_failover_service_as_traefik_does():
    conf = {
        "myprovider": {
            "services": {
                "f": _fo("", "main", "backup@other", health_check=True),
                "main": _lb("", 1),
            },
            "routers": {"foo": Router("foo", "Path(`/`)", "f")},
        },
        "other": {"services": {"backup": _lb("", 2)}},
    }
    _, _, body = await get(state(conf), "/api/http/services/f@myprovider")
    assert body["type"] == "failover"
    assert body["failover"] == {"service": "main", "fallback": "backup@other", "healthCheck": {}}
    assert body["status"] == "enabled"
    assert "serverStatus" not in body


def test_a_router_to_a_failover_whose_fallback_names_a_missing_servers_transport_is_refused():
    backup = Service(
        "b", load_balancer=LoadBalancer(servers=(Server("http://127.0.0.1:2"),), servers_transport="t")
    )
    routers = [Router("r", "PathPrefix(`/`)", "f")]
    merged = merge({"file": cfg(routers=routers, services=[_fo("f", "main", "b"), _lb("main", 1), backup])})
    compiled = compile_config(merged, EPS)
    assert compiled.errors["r@file"] == "service b@file uses serversTransport t@file, which does not exist"


@pytest.mark.parametrize(("health_check", "reached"), [(False, "http://127.0.0.1:2"), (True, "503")])
def test_a_fallback_known_unreachable_is_tried_unless_the_failover_follows_its_health(health_check, reached):
    """Traefik tracks the fallback's status only with the failover's own ``healthCheck: {}``: without it
    the fallback is tried whatever its state (here its server is known unreachable: the proxy answers 502
    naming why); with it, a fallback that is down too is a 503 at once."""
    backup = Service(
        "backup",
        load_balancer=LoadBalancer(
            servers=(Server("http://127.0.0.1:2", unreachable="on another network"),),
            health_check=HealthCheck(),
        ),
    )
    services = {s.name: s for s in (_fo("f", "main", "backup", health_check), _lb("main", 1), backup)}
    balancers = build_balancers(services)
    balancers["main"].servers[0].healthy = False
    assert _walk(balancers, "f") == reached
