"""Shared by the API's unit tests (tests/unit/test_api_*.py): Traefik's own expectations for its API
(``pkg/api/testdata/*.json``, copied below), a comparison that allows only the fields a running Traefik
adds to them, a fake :class:`ApiState` built from real ``discover.model`` objects, and a request helper."""

from __future__ import annotations

import json
from typing import Any

from discover.model import DynamicConfig, LoadBalancer, Middleware, Router, Server, Service, merge
from router.api.handler import api_handler
from router.api.state import ApiState
from router.balancer import build_balancers
from router.settings import ApiSettings, EntryPoint
from tests.exchange_fakes import fake_exchange, read_options

# What a running Traefik writes into every router without observability settings of its own (its default
# observability model, pkg/server/aggregator.go), as its integration/testdata/rawdata-*.json show it.
TRAEFIK_OBSERVABILITY = {"accessLogs": True, "metrics": True, "tracing": True, "traceVerbosity": "minimal"}

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


ROUTER_TEST = {  # as routers.json writes it: bar's fields but these
    **ROUTER_BAR,
    "middlewares": ["addPrefixTest", "auth"],
    "name": "test@myprovider",
    "rule": "Host(`foo.bar.other`)",
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
# - observability: a running Traefik's default model writes it into every router (aggregator.go);
# - serverStates: dockroute's own, beside serverStatus: each server's state and why (UP, DOWN: why).
EXTRA_KEYS = frozenset({"using", "strategy", "serverStatus", "serverStates", "observability"})


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
