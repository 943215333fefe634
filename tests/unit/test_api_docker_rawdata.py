"""Traefik parity shown through ``/api/rawdata``: containers of Traefik's own Docker-provider tests
(``pkg/provider/docker/config_test.go``) go through dockroute's label logic, the merge and the API, and
the routers, services and middlewares ``/api/rawdata`` shows are the JSON of Traefik's expected
``dynamic.Configuration`` for them (transcribed below as Traefik's JSON marshals it), plus what a running
Traefik adds (status, entry points, usedBy, server health, its default observability model)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from discover.docker_labels import build_docker_config
from discover.docker_model import ContainerInfo, DockerSettings, PortBinding
from discover.model import merge
from router.api.handler import api_handler
from router.api.state import ApiState
from router.balancer import build_balancers
from router.settings import ApiSettings, EntryPoint
from tests.api_fakes import TRAEFIK_OBSERVABILITY
from tests.exchange_fakes import fake_exchange

WTF = "Host(`{{ normalize .Name }}.traefik.wtf`)"  # the default rule of Traefik's test cases
# Traefik's loadBalancer for one server as its tests expect it, as JSON (Strategy, PassHostHeader). Its
# ResponseForwarding (FlushInterval 100ms) is left out: dockroute relays each chunk as it comes and has no
# flush interval to report (docs/api.md).
LB_80 = {"servers": [{"url": "http://127.0.0.1:80"}], "strategy": "wrr", "passHostHeader": True}

CASES = [
    {
        "desc": "default rule with no variable",
        "labels": {},
        "default_rule": "Host(`foo.bar`)",
        "routers": {"Test": {"service": "Test", "rule": "Host(`foo.bar`)"}},
        "services": {"Test": {"loadBalancer": LB_80}},
        "middlewares": {},
    },
    {
        "desc": "one container with InFlightReq in label (default value)",
        "labels": {"traefik.http.middlewares.Middleware1.inflightreq.amount": "42"},
        "default_rule": WTF,
        "routers": {"Test": {"service": "Test", "rule": "Host(`Test.traefik.wtf`)"}},
        "services": {"Test": {"loadBalancer": LB_80}},
        "middlewares": {"Middleware1": {"inFlightReq": {"amount": 42}}},
    },
    {
        "desc": "Middlewares used in router",
        "labels": {
            "traefik.http.middlewares.Middleware1.basicauth.users": (
                "test:$apr1$H6uskkkW$IgXLP6ewTrSuBkTrqE8wj/,test2:$apr1$d9hr9HBB$4HxwgUir3HP4EsggP/QNo0"
            ),
            "traefik.http.routers.Test.middlewares": "Middleware1",
        },
        "default_rule": WTF,
        "routers": {
            "Test": {"middlewares": ["Middleware1"], "service": "Test", "rule": "Host(`Test.traefik.wtf`)"}
        },
        "services": {"Test": {"loadBalancer": LB_80}},
        "middlewares": {
            "Middleware1": {
                "basicAuth": {
                    "users": [
                        "test:$apr1$H6uskkkW$IgXLP6ewTrSuBkTrqE8wj/",
                        "test2:$apr1$d9hr9HBB$4HxwgUir3HP4EsggP/QNo0",
                    ]
                }
            }
        },
    },
    {
        "desc": "one container with label port",
        "labels": {
            "traefik.http.services.Service1.LoadBalancer.server.scheme": "h2c",
            "traefik.http.services.Service1.LoadBalancer.server.port": "8080",
        },
        "default_rule": WTF,
        "routers": {"Test": {"service": "Service1", "rule": "Host(`Test.traefik.wtf`)"}},
        # Traefik: h2c://127.0.0.1:8080. dockroute accepts h2c and proxies it as HTTP/1.1 (with a warning),
        # and the API shows the URL it uses
        "services": {"Service1": {"loadBalancer": {**LB_80, "servers": [{"url": "http://127.0.0.1:8080"}]}}},
        "middlewares": {},
    },
    {
        "desc": "one container with rule label and one service",
        "labels": {
            "traefik.http.routers.Router1.rule": "Host(`foo.com`)",
            "traefik.http.services.Service1.loadbalancer.passhostheader": "true",
        },
        "default_rule": WTF,
        "routers": {"Router1": {"service": "Service1", "rule": "Host(`foo.com`)"}},
        "services": {"Service1": {"loadBalancer": LB_80}},
        "middlewares": {},
    },
]


def docker_state(labels: dict[str, str], default_rule: str) -> ApiState:
    """The API state after a container ``Test`` (port 80 on bridge 127.0.0.1, as in Traefik's cases)."""
    container = ContainerInfo(
        id="Test",
        name="Test",
        labels=labels,
        health=None,
        ports=(PortBinding(80, "tcp", None, None),),
        networks={"bridge": "127.0.0.1"},
    )
    cfg, _ = build_docker_config([container], DockerSettings(default_rule=default_rule))
    merged = merge({"docker": cfg})
    routed = {name: ("web",) for name in merged.routers}
    st = ApiState(
        "t",
        ApiSettings(),
        (EntryPoint("web", ":80"),),
        {},
        merged,
        {},
        routed,
        build_balancers(merged.services),
    )
    return st


async def get_rawdata(st: ApiState) -> dict[str, Any]:
    ex = fake_exchange("GET", "/api/rawdata")
    await api_handler(lambda: st)(ex)
    return json.loads(ex.transport.data.partition(b"\r\n\r\n")[2])


# What a running Traefik's runtime view adds to the provider's configuration, with our values here
RUNTIME_ROUTER = {
    "entryPoints": ["web"],  # the default entry points, written into the router by Traefik's aggregator
    "observability": TRAEFIK_OBSERVABILITY,
    "status": "enabled",
    "using": ["web"],
}


@pytest.mark.parametrize("case", CASES, ids=[c["desc"] for c in CASES])
async def test_rawdata_shows_what_traefiks_docker_provider_tests_expect(case):
    raw = await get_rawdata(docker_state(case["labels"], case["default_rule"]))
    routers = {f"{n}@docker": {**r, **RUNTIME_ROUTER} for n, r in case["routers"].items()}
    assert raw["routers"] == routers
    used_by = {}
    for name, r in case["routers"].items():
        used_by.setdefault(f"{r['service']}@docker", []).append(f"{name}@docker")
    services = {}
    for name, s in case["services"].items():
        qualified = f"{name}@docker"
        urls = [srv["url"] for srv in s["loadBalancer"]["servers"]]
        services[qualified] = {
            **s,
            "status": "enabled",
            **({"usedBy": used_by[qualified]} if qualified in used_by else {}),
        }
        services[qualified]["serverStatus"] = dict.fromkeys(urls, "UP")
        services[qualified]["serverStates"] = dict.fromkeys(urls, "UP")  # dockroute's: state and why
    assert raw["services"] == services
    middlewares = {}
    for name, m in case["middlewares"].items():
        users = sorted(
            f"{r}@docker" for r, spec in case["routers"].items() if name in spec.get("middlewares", ())
        )
        middlewares[f"{name}@docker"] = {**m, "status": "enabled", **({"usedBy": users} if users else {})}
    assert raw.get("middlewares", {}) == middlewares
