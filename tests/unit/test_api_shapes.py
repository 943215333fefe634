"""The API (``api@internal``) against Traefik's own expectations: for the configurations of Traefik's
``pkg/api/handler_http_test.go`` (built here from real ``discover.model`` objects), our JSON has the
fields, nesting and values of Traefik's ``pkg/api/testdata/*.json`` (tests/api_fakes.py holds them), and
the internal routers are shown as Traefik's API shows them."""

from __future__ import annotations

import dataclasses

from discover.model import (
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
from router.api.render import go_duration, options_json
from tests.api_fakes import (
    ENTRYPOINT_BAR,
    MIDDLEWARES_JSON,
    RAWDATA_HTTP,
    ROUTER_BAR,
    ROUTER_BAZ_CUSTOM_TLS,
    ROUTER_BAZ_DEFAULT_TLS,
    ROUTERS_JSON,
    SECTION_KEYS,
    SERVICE_BAR,
    SERVICE_CANARY,
    TRAEFIK_OBSERVABILITY,
    check_like_traefik,
    get,
    lb,
    r,
    state,
    traefik_http_conf,
)
from tests.exchange_fakes import read_options


async def test_routers_list_and_detail_as_traefik():
    st = state(traefik_http_conf())
    status, headers, body = await get(st, "/api/http/routers")
    assert (status, headers["X-Next-Page"], headers["Content-Type"]) == (200, "1", "application/json")
    check_like_traefik(body, ROUTERS_JSON)
    status, _, body = await get(st, "/api/http/routers/bar@myprovider")
    check_like_traefik(body, ROUTER_BAR)
    assert list(body)[:4] == ["entryPoints", "middlewares", "service", "rule"]  # Traefik's field order


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
            "service": "api@internal",  # as the internal provider writes it (rawdata-*.json)
            "rule": "PathPrefix(`/api`)",
            "priority": 2147483646,
            "observability": TRAEFIK_OBSERVABILITY,
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


async def test_services_and_middlewares_the_compile_could_not_build_are_disabled_with_why():
    """What the compile keeps about services and middlewares it could not build (ApiState.service_errors,
    middleware_errors) is their ``error``, status ``disabled``, counted by the overview, as Traefik."""
    conf = {
        "p": {
            "routers": {"a": r("a", "Host(`a`)", "t", ("bad",))},
            "services": {"t": lb("http://127.0.0.1", servers_transport="gone"), "ok": lb("http://127.0.0.1")},
            "middlewares": {
                "bad": Middleware(
                    "bad", "replacePathRegex", read_options("replacePathRegex", {"regex": "x"})
                ),
                "fine": Middleware("fine", "addPrefix", read_options("addPrefix", {"prefix": "/x"})),
            },
        }
    }
    st = state(
        conf,
        errors={"a@p": "service t@p uses serversTransport gone@p, which does not exist"},
        service_errors={"t@p": "serversTransport gone@p does not exist"},
        middleware_errors={"bad@p": "option regex: RE2 refuses it"},
    )
    assert "t@p" in st.balancers  # built, yet unusable: the error decides
    _, _, t = await get(st, "/api/http/services/t@p")
    assert (t["status"], t["error"]) == ("disabled", ["serversTransport gone@p does not exist"])
    _, _, bad = await get(st, "/api/http/middlewares/bad@p")
    assert (bad["status"], bad["error"]) == ("disabled", ["option regex: RE2 refuses it"])
    _, _, overview = await get(st, "/api/overview")
    assert overview["http"]["services"] == {"total": 2, "warnings": 0, "errors": 1}
    assert overview["http"]["middlewares"] == {"total": 2, "warnings": 0, "errors": 1}
    _, _, raw = await get(st, "/api/rawdata")
    assert raw["services"]["t@p"]["status"] == raw["middlewares"]["bad@p"]["status"] == "disabled"


async def test_a_router_on_entry_points_with_their_own_model_is_split_as_traefik():
    """Traefik's applyModel (pkg/server/aggregator.go): on an entry point with ``http.middlewares`` or
    ``http.tls`` a router of several entry points gets its own copy ``<ep>-<router>``, with that entry
    point's middlewares first (as the static configuration writes them) and its tls; the entry points
    without one keep the router under its name, without those middlewares."""
    conf = {
        "file": {
            "routers": {
                "r": r("r", "Host(`r`)", "s", ("own",), entry_points=("web", "websecure", "admin")),
                "one": r("one", "Host(`one`)", "s", entry_points=("websecure",)),
            },
            "services": {"s": lb("http://127.0.0.1")},
            "middlewares": {
                name: Middleware(name, "addPrefix", read_options("addPrefix", {"prefix": "/x"}))
                for name in ("own", "auth", "allow")
            },
        }
    }
    st = state(conf, entry_points=("web", "websecure", "admin"))
    eps = {ep.name: ep for ep in st.entry_points}
    eps["websecure"] = dataclasses.replace(
        eps["websecure"], middlewares=("auth@file",), tls=RouterTLS(cert_resolver="le")
    )
    eps["admin"] = dataclasses.replace(eps["admin"], middlewares=("allow",))
    st = dataclasses.replace(st, entry_points=tuple(eps.values()))
    _, _, raw = await get(st, "/api/rawdata")
    routers = raw["routers"]
    assert sorted(routers) == ["admin-r@file", "one@file", "r@file", "websecure-r@file"]
    assert {k: routers["r@file"].get(k) for k in ("entryPoints", "middlewares", "tls", "using")} == {
        "entryPoints": ["web"],
        "middlewares": ["own"],
        "tls": None,
        "using": ["web"],
    }
    secure = routers["websecure-r@file"]
    assert (secure["entryPoints"], secure["middlewares"], secure["using"]) == (
        ["websecure"],
        ["auth@file", "own"],
        ["websecure"],
    )
    assert secure["tls"] == {"certResolver": "le"}
    assert routers["admin-r@file"]["middlewares"] == ["allow", "own"] and "tls" not in routers["admin-r@file"]
    # on one entry point only: the model applies, the name stays
    assert (routers["one@file"]["middlewares"], routers["one@file"]["tls"]) == (
        ["auth@file"],
        {"certResolver": "le"},
    )
    assert raw["middlewares"]["auth@file"]["usedBy"] == ["one@file", "websecure-r@file"]
    assert raw["middlewares"]["allow@file"]["usedBy"] == ["admin-r@file"]
    assert raw["services"]["s@file"]["usedBy"] == ["admin-r@file", "one@file", "r@file", "websecure-r@file"]
