"""The API (``api@internal``) against Traefik's own expectations: for the configurations of Traefik's
``pkg/api/handler_http_test.go`` (built here from real ``discover.model`` objects), our JSON has the
fields, nesting and values of Traefik's ``pkg/api/testdata/*.json`` (copied below); query parameters,
pagination, health, errors and dockroute's own endpoints as documented in docs/api.md."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from typing import Any
from urllib.parse import quote

import pytest

from discover.model import (
    Discovered,
    DynamicConfig,
    HealthCheck,
    LoadBalancer,
    Middleware,
    Router,
    RouterTLS,
    Server,
    Service,
    StickyCookie,
    Weighted,
    WeightedRef,
    merge,
)
from router.api.handler import api_handler
from router.api.render import go_duration, options_json
from router.api.state import ApiState, CertificateReport
from router.balancer import build_balancers
from router.settings import ApiSettings, EntryPoint
from tests.exchange_fakes import fake_exchange, read_options

# --- Traefik's testdata (pkg/api/testdata), as Traefik's tests expect it ----------------------------------

ROUTER_BAR = {
    "entryPoints": ["web"],
    "middlewares": ["auth", "addPrefixTest@anotherprovider"],
    "name": "bar@myprovider",
    "provider": "myprovider",
    "priorityStr": "0",
    "rule": "Host(`foo.bar`)",
    "service": "foo-service@myprovider",
    "status": "enabled",
    "using": ["web"],
}
ROUTER_TEST = {
    "entryPoints": ["web"],
    "middlewares": ["addPrefixTest", "auth"],
    "name": "test@myprovider",
    "provider": "myprovider",
    "priorityStr": "0",
    "rule": "Host(`foo.bar.other`)",
    "service": "foo-service@myprovider",
    "status": "enabled",
    "using": ["web"],
}
ROUTERS_JSON = [ROUTER_BAR, ROUTER_TEST]  # routers.json
ROUTER_BAZ_CUSTOM_TLS = {
    **ROUTER_BAR,
    "name": "baz@myprovider",
    "rule": "Host(`foo.baz`)",
    "tls": {"options": "myTLS"},
}
ROUTER_BAZ_DEFAULT_TLS = {**ROUTER_BAZ_CUSTOM_TLS, "tls": {"options": "default"}}
SERVICE_BAR = {  # service-bar.json
    "loadBalancer": {"passHostHeader": True, "servers": [{"url": "http://127.0.0.1"}]},
    "name": "bar@myprovider",
    "provider": "myprovider",
    "serverStatus": {"http://127.0.0.1": "UP"},
    "status": "enabled",
    "type": "loadbalancer",
    "usedBy": ["foo@myprovider", "test@myprovider"],
}
SERVICE_CANARY = {  # from services.json
    "name": "canary@myprovider",
    "provider": "myprovider",
    "status": "enabled",
    "type": "weighted",
    "usedBy": ["foo@myprovider"],
    "weighted": {"sticky": {"cookie": {"httpOnly": True, "name": "chocolat", "secure": True}}},
}
MIDDLEWARES_JSON = [  # middlewares.json
    {
        "addPrefix": {"prefix": "/toto"},
        "name": "addPrefixTest@anotherprovider",
        "provider": "anotherprovider",
        "status": "enabled",
        "type": "addprefix",
        "usedBy": ["bar@myprovider"],
    },
    {
        "addPrefix": {"prefix": "/titi"},
        "name": "addPrefixTest@myprovider",
        "provider": "myprovider",
        "status": "enabled",
        "type": "addprefix",
        "usedBy": ["test@myprovider"],
    },
    {
        "basicAuth": {"users": ["admin:admin"]},
        "name": "auth@myprovider",
        "provider": "myprovider",
        "status": "enabled",
        "type": "basicauth",
        "usedBy": ["bar@myprovider", "test@myprovider"],
    },
]
RAWDATA_HTTP = {  # getrawdata.json without its TCP part
    "routers": {
        "bar@myprovider": {
            k: ROUTER_BAR[k] for k in ("entryPoints", "middlewares", "service", "rule", "status")
        },
        "test@myprovider": {
            k: ROUTER_TEST[k] for k in ("entryPoints", "middlewares", "service", "rule", "status")
        },
    },
    "middlewares": {
        m["name"]: {k: v for k, v in m.items() if k not in ("name", "provider", "type")}
        for m in MIDDLEWARES_JSON
    },
    "services": {
        "foo-service@myprovider": {
            "loadBalancer": {"servers": [{"url": "http://127.0.0.1"}], "passHostHeader": True},
            "status": "enabled",
            "usedBy": ["bar@myprovider", "test@myprovider"],
        }
    },
}
ENTRYPOINT_BAR = {"address": ":81", "http": {}, "name": "bar"}  # entrypoint-bar.json
SECTION_KEYS = {"errors", "total", "warnings"}

# What dockroute writes beyond Traefik's test fixtures, and why:
# - using: Traefik's tests leave it out of rawdata because they never compile; a running Traefik has it;
# - strategy: Traefik's loadBalancer defaults (SetDefaults) write "wrr", a running Traefik shows it;
# - serverStatus in rawdata: the fixture sets none; a running Traefik's health check writes it;
# - observability: a running Traefik's default model writes it into every router (aggregator.go).
EXTRA_KEYS = frozenset({"using", "strategy", "serverStatus", "observability"})


def check_like_traefik(ours: Any, traefik: Any, at: str = "$", bare_service: bool = True) -> None:
    """``ours`` has Traefik's fields at every level with Traefik's values, and no other field than the
    EXTRA_KEYS. ``service`` references are compared as their provider wrote them: Traefik's fixtures
    write ``foo-service@myprovider`` where a provider writes ``foo-service`` (the qualified name is
    shown bare inside its own provider, as a running Traefik shows it)."""
    if isinstance(traefik, dict):
        assert isinstance(ours, dict), at
        missing = set(traefik) - set(ours)
        extra = set(ours) - set(traefik) - EXTRA_KEYS
        assert not missing and not extra, f"{at}: missing {missing}, extra {extra}"
        for key, value in traefik.items():
            if key == "service" and bare_service and isinstance(value, str):
                value = value.replace("@myprovider", "")
            check_like_traefik(ours[key], value, f"{at}.{key}", bare_service)
    elif isinstance(traefik, list):
        assert isinstance(ours, list) and len(ours) == len(traefik), f"{at}: {ours!r} vs {traefik!r}"
        for i, (a, b) in enumerate(zip(ours, traefik, strict=True)):
            check_like_traefik(a, b, f"{at}[{i}]", bare_service)
    else:
        assert ours == traefik, f"{at}: {ours!r} != {traefik!r}"


# --- a fake ApiState from real model objects -----------------------------------------------------------


def r(
    name: str, rule: str, service: str = "foo-service@myprovider", mws: tuple[str, ...] = (), **kw: Any
) -> Router:
    return Router(name, rule, service, kw.pop("entry_points", ("web",)), mws, **kw)


def lb(*urls: str, **kw: Any) -> Service:
    return Service("", load_balancer=LoadBalancer(tuple(Server(u) for u in urls), **kw))


def state(
    conf: dict[str, dict[str, dict[str, Any]]],
    errors: dict[str, str] | None = None,
    entry_points: tuple[str, ...] = ("web",),
    **kw: Any,
) -> ApiState:
    """An ApiState over ``merge`` of the providers' configs (provider → {"routers": ..., ...}); routers
    are routed on those of their entry points that exist unless ``errors`` names them."""
    cfg = merge({p: DynamicConfig(**parts) for p, parts in conf.items()})
    eps = tuple(EntryPoint(n, f":{80 + i}") for i, n in enumerate(entry_points))
    errors = errors or {}
    routed = {
        n: tuple(e for e in rt.entry_points if e in entry_points)
        for n, rt in cfg.routers.items()
        if n not in errors
    }
    kw.setdefault("balancers", build_balancers(cfg.services))
    return ApiState("3.0.0-test", kw.pop("settings", ApiSettings()), eps, {}, cfg, errors, routed, **kw)


def traefik_http_conf() -> dict[str, dict[str, dict[str, Any]]]:
    """handler_http_test.go's "all routers" and "all middlewares" configurations in one."""
    return {
        "myprovider": {
            "routers": {
                "test": r("test", "Host(`foo.bar.other`)", mws=("addPrefixTest", "auth")),
                "bar": r("bar", "Host(`foo.bar`)", mws=("auth", "addPrefixTest@anotherprovider")),
            },
            "services": {"foo-service": lb("http://127.0.0.1")},
            "middlewares": {
                "auth": Middleware(
                    "auth", "basicAuth", read_options("basicAuth", {"users": ["admin:admin"]})
                ),
                "addPrefixTest": Middleware(
                    "addPrefixTest", "addPrefix", read_options("addPrefix", {"prefix": "/titi"})
                ),
            },
        },
        "anotherprovider": {
            "middlewares": {
                "addPrefixTest": Middleware(
                    "addPrefixTest", "addPrefix", read_options("addPrefix", {"prefix": "/toto"})
                )
            }
        },
    }


async def get(
    st: ApiState | None, target: str, method: str = "GET", **kw: Any
) -> tuple[int, dict[str, str], Any]:
    """Ask the API handler over ``st``: (status, headers, decoded JSON body or the raw bytes)."""
    handler = kw.pop("handler", None) or api_handler(lambda: st, **kw)
    ex = fake_exchange(method, target)
    await handler(ex)
    head, _, body = ex.transport.data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    status = int(lines[0].split()[1])
    if headers.get("Content-Type") == "application/json":
        assert body.endswith(b"\n")
        return status, headers, json.loads(body)
    return status, headers, body


# --- Traefik's shapes ----------------------------------------------------------------------------------


async def test_routers_list_and_detail_as_traefik():
    st = state(traefik_http_conf())
    status, headers, body = await get(st, "/api/http/routers")
    assert (status, headers["X-Next-Page"], headers["Content-Type"]) == (200, "1", "application/json")
    check_like_traefik(body, ROUTERS_JSON)
    status, _, body = await get(st, "/api/http/routers/bar@myprovider")
    check_like_traefik(body, ROUTER_BAR)
    assert list(body)[:4] == ["entryPoints", "middlewares", "service", "rule"]  # Traefik's field order


async def test_router_names_with_a_slash_are_escaped_in_the_path():
    conf = traefik_http_conf()
    conf["myprovider"]["routers"] = {"foo / bar": r("foo / bar", "Host(`foo.bar`)", mws=("auth",))}
    st = state(conf)
    status, _, body = await get(st, "/api/http/routers/" + quote("foo / bar@myprovider", safe="@"))
    assert status == 200 and body["name"] == "foo / bar@myprovider"
    status, _, body = await get(st, "/api/http/routers/nope@myprovider")
    assert (status, body) == (404, {"message": "router not found: nope@myprovider"})
    for path in ("/api/http/routers/", "/api/http/routers/a/b", "/api/entrypoints/"):
        status, _, body = await get(st, path)
        assert (status, body) == (404, {"message": "404 page not found"}), path


async def test_router_tls_options_default_and_custom():
    conf = traefik_http_conf()
    mws = ("auth", "addPrefixTest@anotherprovider")
    conf["myprovider"]["routers"] = {
        "baz": r("baz", "Host(`foo.baz`)", mws=mws, tls=RouterTLS()),
        "qux": r("qux", "Host(`foo.baz`)", mws=mws, tls=RouterTLS(options="myTLS")),
    }
    st = state(conf)
    _, _, body = await get(st, "/api/http/routers/baz@myprovider")
    check_like_traefik(body, ROUTER_BAZ_DEFAULT_TLS)
    _, _, body = await get(st, "/api/http/routers/qux@myprovider")
    check_like_traefik(body, {**ROUTER_BAZ_CUSTOM_TLS, "name": "qux@myprovider"})


async def test_services_as_traefik_with_server_status():
    conf = {
        "myprovider": {
            "routers": {
                "foo": r("foo", "Host(`a`)", "bar"),
                "test": r("test", "Host(`b`)", "bar"),
                "foo2": r("foo2", "Host(`c`)", "canary"),
            },
            "services": {
                "bar": lb("http://127.0.0.1"),
                "canary": Service(
                    "",
                    weighted=Weighted(
                        (WeightedRef("bar", 1),), StickyCookie(name="chocolat", secure=True, http_only=True)
                    ),
                ),
            },
        }
    }
    st = state(conf)
    _, _, body = await get(st, "/api/http/services/bar@myprovider")
    check_like_traefik(body, SERVICE_BAR)
    _, _, body = await get(st, "/api/http/services/canary@myprovider")
    # the weighted service lists its children (Traefik's fixture has none) and its cookie's path,
    # which Traefik's cookie defaults set
    assert body["weighted"]["services"] == [{"name": "bar", "weight": 1}]
    assert body["weighted"]["sticky"]["cookie"].pop("path") == "/"
    del body["weighted"]["services"]
    check_like_traefik(body, {**SERVICE_CANARY, "usedBy": ["foo2@myprovider"]})
    assert "serverStatus" not in body  # as Traefik: only load balancers have server statuses


async def test_middlewares_as_traefik():
    _, headers, body = await get(state(traefik_http_conf()), "/api/http/middlewares")
    assert headers["X-Next-Page"] == "1"
    check_like_traefik(body, MIDDLEWARES_JSON)


async def test_rawdata_as_traefik():
    conf = traefik_http_conf()
    _, _, body = await get(state(conf), "/api/rawdata")
    check_like_traefik(body, RAWDATA_HTTP)
    assert body["services"]["foo-service@myprovider"]["serverStatus"] == {"http://127.0.0.1": "UP"}


async def test_entrypoints_as_traefik():
    st = state(traefik_http_conf(), entry_points=("web", "bar"))
    status, headers, body = await get(st, "/api/entrypoints")
    assert status == 200 and [e["name"] for e in body] == ["bar", "web"] and headers["X-Next-Page"] == "1"
    _, _, bar = await get(st, "/api/entrypoints/bar")
    # Traefik's fixture builds an entry point without its defaults; a running one shows its timeouts
    assert bar["transport"]["respondingTimeouts"] == {"readTimeout": "1m0s", "idleTimeout": "3m0s"}
    assert bar["transport"]["lifeCycle"] == {"graceTimeOut": "10s"}
    assert {k: bar[k] for k in ENTRYPOINT_BAR} == {**ENTRYPOINT_BAR, "address": ":81"}
    status, _, body = await get(st, "/api/entrypoints/nope")
    assert (status, body) == (404, {"message": "entry point not found: nope"})


async def test_overview_counts_statuses_as_traefik():
    conf = {
        "myprovider": {
            "routers": {
                "ok": r("ok", "Host(`a`)", "ok"),
                "warn": r("warn", "Host(`b`)", "ok", entry_points=("web", "gone")),
                "broken": r("broken", "Host(`c`)", "missing"),
            },
            "services": {
                "ok": lb("http://127.0.0.1"),
                "far": Service("", LoadBalancer((Server("http://10.9.9.9", unreachable="on network x"),))),
                "bad": lb("http://127.0.0.1:notaport"),
            },
            "middlewares": {
                "good": Middleware("good", "addPrefix", read_options("addPrefix", {"prefix": "/x"})),
                "broken": Middleware("broken", "addPrefix", error="addPrefix.prefix: must start with /"),
                "plugin": Middleware("plugin", "plugin", {"x": {}}),
            },
        }
    }
    st = state(
        conf,
        errors={"broken@myprovider": "service missing@myprovider does not exist"},
        providers=("docker", "file", "internal"),
    )
    _, _, body = await get(
        st, "/api/overview", features={"tracing": "", "metrics": "Prometheus", "accessLog": True}
    )
    assert set(body) == {"http", "tcp", "udp", "certificates", "features", "providers"}
    assert body["http"]["routers"] == {"total": 3, "warnings": 1, "errors": 1}
    assert body["http"]["services"] == {"total": 3, "warnings": 1, "errors": 1}
    assert body["http"]["middlewares"] == {"total": 3, "warnings": 0, "errors": 2}
    assert set(body["tcp"]) == {"routers", "services", "middlewares"} and set(body["udp"]) == {
        "routers",
        "services",
    }
    assert all(set(s) == SECTION_KEYS for part in ("tcp", "udp") for s in body[part].values())
    assert body["features"] == {"tracing": "", "metrics": "Prometheus", "accessLog": True}
    assert body["providers"] == ["Docker", "File"]
    _, _, warn = await get(st, "/api/http/routers/warn@myprovider")
    assert (warn["status"], warn["error"], warn["using"]) == (
        "warning",
        ['entryPoint "gone" doesn\'t exist'],
        ["web"],
    )
    _, _, broken = await get(st, "/api/http/routers/broken@myprovider")
    assert (broken["status"], broken["error"]) == ("disabled", ["service missing@myprovider does not exist"])
    assert "using" not in broken
    _, _, far = await get(st, "/api/http/services/far@myprovider")
    assert (far["status"], far["serverStatus"]) == ("warning", {"http://10.9.9.9": "DOWN"})
    assert far["error"] == ["server http://10.9.9.9: on network x"]


async def test_internal_services_listed_with_provider_internal():
    conf = {
        "internal": {
            "routers": {
                "api": Router("api", "PathPrefix(`/api`)", "api@internal", ("traefik",), priority=2**31 - 2)
            }
        }
    }
    # an internal service the internal provider also declares (Traefik's empty Service{}) is the same one
    conf["internal"]["services"] = {"api": Service("api")}
    st = state(conf, entry_points=("traefik",), internal_services=("api@internal", "noop@internal"))
    _, _, routers = await get(st, "/api/http/routers")
    assert routers == [
        {
            "entryPoints": ["traefik"],
            "service": "api",
            "rule": "PathPrefix(`/api`)",
            "priority": 2147483646,
            "observability": {
                "accessLogs": True,
                "metrics": True,
                "tracing": True,
                "traceVerbosity": "minimal",
            },
            "status": "enabled",
            "using": ["traefik"],
            "name": "api@internal",
            "provider": "internal",
            "priorityStr": "2147483646",
        }
    ]
    _, _, services = await get(st, "/api/http/services")
    assert services == [
        {"status": "enabled", "usedBy": ["api@internal"], "name": "api@internal", "provider": "internal"},
        {"status": "enabled", "name": "noop@internal", "provider": "internal"},
    ]


# --- query parameters and pagination -------------------------------------------------------------------


def many_routers(n: int) -> ApiState:
    routers = {f"bar{i:2d}": r(f"bar{i:2d}", f"Host(`foo.bar{i}`)") for i in range(n)}
    return state({"myprovider": {"routers": routers, "services": {"foo-service": lb("http://127.0.0.1")}}})


async def test_pagination_as_traefik():
    _, headers, body = await get(many_routers(19), "/api/http/routers?page=3&per_page=7")
    assert headers["X-Next-Page"] == "1" and [b["name"] for b in body] == [
        f"bar{i}@myprovider" for i in range(14, 19)
    ]
    _, headers, body = await get(many_routers(3), "/api/http/routers?page=2&per_page=1")
    assert headers["X-Next-Page"] == "3" and [b["name"] for b in body] == ["bar 1@myprovider"]
    for n in (5, 10):
        status, _, body = await get(many_routers(n), "/api/http/routers?page=2&per_page=10")
        assert (status, body) == (400, {"message": "invalid request: page: 2, per_page: 10"})
    status, _, body = await get(many_routers(3), "/api/http/routers?per_page=abc")
    assert (status, body) == (400, {"message": "invalid request: per_page: 0"})
    status, _, body = await get(many_routers(3), "/api/http/routers?page=-1")
    assert (status, body) == (400, {"message": "invalid request: page: -1"})
    status, headers, body = await get(state({}), "/api/http/routers")
    assert (status, headers["X-Next-Page"], body) == (200, "1", [])  # routers-empty.json
    status, _, body = await get(many_routers(3), "/api/http/services?page=2&per_page=1")
    assert (status, body) == (400, {"message": "invalid request: page: 2, per_page: 1"})
    _, headers, body = await get(
        state(traefik_http_conf(), entry_points=("a", "b", "c")), "/api/entrypoints?per_page=2"
    )
    assert headers["X-Next-Page"] == "2" and [e["name"] for e in body] == ["a", "b"]


def filter_conf(bar_broken: bool = True) -> tuple[dict[str, Any], dict[str, str]]:
    """handler_http_test.go's "routers filtered by ..." configuration: bar@myprovider is disabled."""
    conf = traefik_http_conf()
    conf["myprovider"]["routers"] = {
        "test": r("test", "Host(`fii.bar.other`)", "fii-service", ("addPrefixTest", "auth")),
        "bar": r("bar", "Host(`foo.bar`)", "foo-service", ("auth", "addPrefixTest@anotherprovider")),
    }
    conf["myprovider"]["services"]["fii-service"] = lb("http://127.0.0.2")
    conf["otherprovider"] = {"routers": {"foo": r("foo", "Host(`fii.foo.other`)", "fii-service")}}
    conf["otherprovider"]["services"] = {"fii-service": lb("http://127.0.0.3")}
    return conf, ({"bar@myprovider": "refused"} if bar_broken else {})


async def test_router_filters_as_traefik():
    conf, errors = filter_conf()
    st = state(conf, errors=errors)

    async def names(q: str) -> list[str]:
        status, _, body = await get(st, "/api/http/routers?" + q)
        assert status == 200
        return [b["name"] for b in body]

    assert await names("status=enabled") == ["foo@otherprovider", "test@myprovider"]
    assert await names("status=DISABLED") == ["bar@myprovider"]
    assert await names("search=fii") == ["foo@otherprovider", "test@myprovider"]  # rule or name
    assert await names("search=BAR@my") == ["bar@myprovider"]
    # routers-filtered-serviceName.json: the same two, whichever provider the bare name is in
    assert await names("serviceName=fii-service@myprovider") == ["foo@otherprovider", "test@myprovider"]
    # routers-filtered-middlewareName.json: the name as the router wrote it
    assert await names("middlewareName=auth") == ["bar@myprovider", "test@myprovider"]
    assert await names("middlewareName=auth&status=enabled") == ["test@myprovider"]
    assert await names("provider=otherprovider") == ["foo@otherprovider"]  # dockroute's own filter
    assert await names("provider=myprovider&status=enabled") == ["test@myprovider"]
    assert await names("sortBy=rule") == ["test@myprovider", "foo@otherprovider", "bar@myprovider"]
    assert await names("sortBy=name&direction=desc") == [
        "test@myprovider",
        "foo@otherprovider",
        "bar@myprovider",
    ]


async def test_service_and_middleware_filters():
    conf, errors = filter_conf()
    conf["myprovider"]["services"]["bad"] = lb("http://x:bad")
    st = state(conf, errors=errors)
    _, _, body = await get(st, "/api/http/services?search=fii")
    assert [b["name"] for b in body] == ["fii-service@myprovider", "fii-service@otherprovider"]
    _, _, body = await get(st, "/api/http/services?provider=otherprovider")
    assert [b["name"] for b in body] == ["fii-service@otherprovider"]
    _, _, body = await get(st, "/api/http/services?status=disabled")
    assert [b["name"] for b in body] == ["bad@myprovider"]
    _, _, body = await get(st, "/api/http/middlewares?search=addprefix")
    assert [b["name"] for b in body] == ["addPrefixTest@anotherprovider", "addPrefixTest@myprovider"]
    _, _, body = await get(st, "/api/http/middlewares?sortBy=type&direction=desc")
    assert [b["type"] for b in body] == ["basicauth", "addprefix", "addprefix"]


# --- health, errors, paths -----------------------------------------------------------------------------


async def test_server_status_reads_active_and_passive_health_live():
    conf = {"p": {"services": {"s": lb("http://127.0.0.1:1", "http://127.0.0.1:2", "http://127.0.0.1:3")}}}
    st = state(conf)
    handler = api_handler(lambda: st)
    _, _, body = await get(st, "/api/http/services/s@p", handler=handler)
    assert set(body["serverStatus"].values()) == {"UP"}
    one, two, _ = st.balancers["s@p"].servers
    one.healthy = False  # the active check failed
    two.down_until = time.monotonic() + 60  # passively down for a minute
    _, _, body = await get(st, "/api/http/services/s@p", handler=handler)
    assert body["serverStatus"] == {
        "http://127.0.0.1:1": "DOWN",
        "http://127.0.0.1:2": "DOWN",
        "http://127.0.0.1:3": "UP",
    }
    two.down_until = time.monotonic() - 1
    _, _, body = await get(st, "/api/rawdata", handler=handler)
    assert body["services"]["s@p"]["serverStatus"]["http://127.0.0.1:2"] == "UP"


async def test_paths_methods_base_path_and_dashboard():
    st = state(traefik_http_conf(), settings=ApiSettings(base_path="/traefik/"))
    seen: list[str] = []

    async def dashboard(ex):
        seen.append(ex.path)
        from router.exchange import answer

        await answer(ex, 200, "page")

    handler = api_handler(lambda: st, dashboard)
    status, _, body = await get(st, "/traefik/api/http/routers", handler=handler)
    assert status == 200 and len(body) == 2
    status, _, body = await get(st, "/api/http/routers", handler=handler)
    assert (status, body) == (404, {"message": "404 page not found"})
    status, _, body = await get(st, "/traefik/api/nothing", handler=handler)
    assert (status, body) == (404, {"message": "404 page not found"})
    status, _, body = await get(st, "/traefik/dashboard/app.js", handler=handler)
    assert (status, body, seen) == (200, b"page", ["/traefik/dashboard/app.js"])
    status, _, _ = await get(st, "/traefik/api/http/routers", "POST", handler=handler)
    assert status == 405
    status, _, body = await get(st, "/traefik/dashboard/", handler=api_handler(lambda: st))
    assert status == 404  # no dashboard handler given: api.dashboard is off
    status, _, body = await get(None, "/api/overview")
    assert status == 503  # before the first configuration


async def test_version_and_debug_vars():
    _, _, body = await get(state({}), "/api/version")
    assert set(body) == {"Version", "Codename", "startDate"} and body["Version"] == "3.0.0-test"
    assert body["startDate"].endswith("Z")
    status, _, _ = await get(state({}), "/debug/vars")
    assert status == 404  # api.debug off
    status, _, body = await get(state({}, settings=ApiSettings(debug=True)), "/debug/vars")
    assert status == 200 and "cmdline" in body


# --- middleware options ----------------------------------------------------------------------------------


def test_middleware_options_under_traefik_names():
    rl = read_options(
        "rateLimit", {"average": 100, "period": "1m", "sourceCriterion": {"ipStrategy": {"depth": 2}}}
    )
    assert options_json(rl, "file") == {
        "average": 100,
        "period": "1m0s",
        "burst": 1,  # Traefik's SetDefaults writes it, so its API shows it
        "sourceCriterion": {"ipStrategy": {"depth": 2}},
    }
    chain = read_options("chain", {"middlewares": ["a", "b@docker"]})
    qualified = merge({"file": DynamicConfig(middlewares={"c": Middleware("c", "chain", chain)})})
    assert options_json(qualified.middlewares["c@file"].options, "file") == {"middlewares": ["a", "b@docker"]}
    headers = read_options(
        "headers", {"customRequestHeaders": {"X-A": "1"}, "frameDeny": True, "stsSeconds": 0}
    )
    assert options_json(headers, "file") == {"customRequestHeaders": {"X-A": "1"}, "frameDeny": True}
    cb = read_options("circuitBreaker", {"expression": "NetworkErrorRatio() > 0.5"})
    assert options_json(cb, "file") == {
        "expression": "NetworkErrorRatio() > 0.5",
        "checkPeriod": "100ms",
        "fallbackDuration": "10s",
        "recoveryDuration": "10s",
        "responseCode": 503,
    }


def test_go_durations():
    cases = {
        0: "0s",
        0.1: "100ms",
        1: "1s",
        1.5: "1.5s",
        60: "1m0s",
        90: "1m30s",
        3600: "1h0m0s",
        2e-9: "2ns",
    }
    assert {s: go_duration(s) for s in cases} == cases


async def test_load_balancer_options_as_traefik():
    svc = Service(
        "",
        LoadBalancer(
            (Server("http://a:80", weight=3),),
            pass_host_header=False,
            health_check=HealthCheck(path="/health", interval=10),
            sticky=StickyCookie(name="c", same_site="lax"),
            servers_transport="tr",
        ),
    )
    _, _, body = await get(state({"p": {"services": {"s": svc}}}), "/api/http/services/s@p")
    assert body["loadBalancer"] == {
        "sticky": {"cookie": {"name": "c", "sameSite": "lax", "path": "/"}},
        "servers": [{"url": "http://a:80", "weight": 3}],
        "strategy": "wrr",
        "healthCheck": {
            "mode": "http",
            "path": "/health",
            "interval": "10s",
            "timeout": "5s",
            "followRedirects": True,
        },
        "passHostHeader": False,
        "serversTransport": "tr",
    }


# --- dockroute's own endpoints ---------------------------------------------------------------------------


async def test_discovery_lists_containers_and_routers_left_out():
    seen = (
        Discovered(
            "docker", "container", "web-1", "abc", routed=True, routers=("web@docker",), networks=("n",)
        ),
        Discovered(
            "docker",
            "container",
            "far-1",
            "def",
            reason="unreachable-network",
            detail="on network other only",
            fix="docker network connect other dockroute",
            networks=("other",),
        ),
    )
    conf = {
        "docker": {
            "routers": {"web": r("web", "Host(`w`)", "web")},
            "services": {"web": lb("http://1.2.3.4")},
            "discovered": seen,
        },
        "file": {"routers": {"left": r("left", "Host(`l`)", "nope")}},
    }
    st = state(conf, errors={"left@file": "service nope@file does not exist"})
    status, _, body = await get(st, "/api/discovery")
    assert status == 200 and set(body) == {"containers", "routers"}
    assert [c["name"] for c in body["containers"]] == ["far-1", "web-1"]
    far = body["containers"][0]
    assert far == {
        "provider": "docker",
        "name": "far-1",
        "id": "def",
        "routed": False,
        "reason": "unreachable-network",
        "detail": "on network other only",
        "fix": "docker network connect other dockroute",
        "routers": [],
        "services": [],
        "networks": ["other"],
    }
    assert body["routers"] == [
        {
            "name": "left@file",
            "provider": "file",
            "status": "disabled",
            "error": ["service nope@file does not exist"],
        }
    ]


async def test_certificates():
    now = time.time()
    reports = (
        CertificateReport(
            ("b.test", "www.b.test"), "le", "acme", "Pebble", now + 10 * 86400, now - 86400, now + 86400
        ),
        CertificateReport(("a.test",), "", "file", "Self", now - 60, last_error="boom", last_error_at=now),
    )
    st = state({}, certificates=lambda: reports)
    _, headers, body = await get(st, "/api/certificates")
    assert headers["X-Next-Page"] == "1"
    assert [c["commonName"] for c in body] == ["a.test", "b.test"]
    b = body[1]
    assert set(b) >= {
        "domains",
        "resolver",
        "source",
        "issuer",
        "notAfter",
        "notBefore",
        "daysLeft",
        "nextRenewal",
    }
    assert (b["daysLeft"], b["status"], b["resolver"], b["sans"]) == (
        9,
        "warning",
        "le",
        ["b.test", "www.b.test"],
    )
    assert b["notAfter"].endswith("Z") and b["lastError"] == "" and b["lastErrorAt"] is None
    assert (body[0]["status"], body[0]["lastError"], body[0]["nextRenewal"]) == ("expired", "boom", None)
    _, _, body = await get(st, "/api/certificates?status=expired")
    assert [c["commonName"] for c in body] == ["a.test"]
    _, _, overview = await get(st, "/api/overview")
    assert overview["certificates"] == {"total": 2, "warnings": 1, "errors": 1}


# --- cost ---------------------------------------------------------------------------------------------------


async def test_cost_of_1000_routers_and_services(capsys):
    """Measured, printed (run with -s), and bounded loosely: the view is built once per configuration in
    a worker thread; a request afterwards only filters, pages, reads health and joins cached bytes."""
    routers = {f"r{i}": r(f"r{i}", f"Host(`h{i}.test`)", f"s{i}", ("auth",)) for i in range(1000)}
    services = {
        f"s{i}": lb(f"http://10.0.{i // 250}.{i % 250}:80", "http://10.1.0.1:80") for i in range(1000)
    }
    mws = {"auth": Middleware("auth", "basicAuth", read_options("basicAuth", {"users": ["a:b"]}))}
    st = state({"file": {"routers": routers, "services": services, "middlewares": mws}})
    handler = api_handler(lambda: st)
    timings = {}
    for label, target in (
        ("first /api/http/routers (builds the view, in a thread)", "/api/http/routers"),
        ("/api/http/routers (default page of 100)", "/api/http/routers"),
        ("/api/http/routers?per_page=1000", "/api/http/routers?per_page=1000"),
        ("/api/http/services?per_page=1000 (2000 servers' health)", "/api/http/services?per_page=1000"),
        ("/api/rawdata", "/api/rawdata"),
        ("/api/overview", "/api/overview"),
    ):
        ex = fake_exchange("GET", target)
        t0 = time.perf_counter()
        await handler(ex)
        timings[label] = (time.perf_counter() - t0) * 1000
        assert ex.transport.data.startswith(b"HTTP/1.1 200 ")
    with capsys.disabled():
        for label, ms in timings.items():
            print(f"\n  api, 1000 routers + 1000 services: {label}: {ms:.2f} ms", end="")
    assert timings["first /api/http/routers (builds the view, in a thread)"] < 1000
    assert timings["/api/http/routers (default page of 100)"] < 50
    assert timings["/api/rawdata"] < 200


@pytest.mark.parametrize("kind", ["routers", "services", "middlewares"])
async def test_view_is_rebuilt_for_a_new_state_only(kind):
    conf = traefik_http_conf()
    current = [state(conf)]
    handler = api_handler(lambda: current[0])
    _, _, first = await get(None, f"/api/http/{kind}", handler=handler)
    runtime = handler._last[1]
    await get(None, f"/api/http/{kind}", handler=handler)
    assert handler._last[1] is runtime  # the same state: the same view
    conf["myprovider"][kind] = {}
    current[0] = state(conf)
    _, _, second = await get(None, f"/api/http/{kind}", handler=handler)
    assert handler._last[1] is not runtime and len(second) < len(first)


async def test_a_request_gone_away_does_not_cancel_the_build_others_wait_for():
    st = state(traefik_http_conf())
    handler = api_handler(lambda: st)
    first = asyncio.ensure_future(get(None, "/api/http/routers", handler=handler))
    await asyncio.sleep(0)  # the first request started the build and waits for it
    second = asyncio.ensure_future(get(None, "/api/http/routers", handler=handler))
    await asyncio.sleep(0)
    first.cancel()  # its client went away
    status, _, body = await second
    assert status == 200 and len(body) == 2


async def test_a_failed_build_is_tried_again():
    st = state(traefik_http_conf())
    broken = dataclasses.replace(st, routed_on=None)  # a state the view cannot be built from
    current = [broken]
    handler = api_handler(lambda: current[0])
    with pytest.raises(AttributeError):
        await get(None, "/api/http/routers", handler=handler)
    current[0] = st
    status, _, _ = await get(None, "/api/http/routers", handler=handler)
    assert status == 200
