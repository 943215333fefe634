"""The Helm chart's ``ports``: extra entry points (TCP or UDP) beside web, websecure and traefik, and the
values of Traefik's chart it takes, acts on, or refuses by name.

Rendered by Helm's own engine, as in test_helm_chart.py (whose ``extra-ports`` values are linted and
validated against Kubernetes' schemas there with the others).
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from dockroute.static import load_static
from tests.unit.test_helm_chart import (
    CHART,
    _run,
    config_map,
    container,
    kubeconfig,  # noqa: F401 - a fixture, used by name
    one_service,
    rendered,
)


def _objects(values: dict[str, Any]) -> dict[str, Any]:
    """The objects of a render with ``values``, by kind (the main Service, the workload, the static file)."""
    out = _run(CHART, values)
    assert "error" not in out, out.get("error")
    by_kind = {o["kind"]: o for o in out["objects"] if not o["metadata"]["name"].endswith("-metrics")}
    workload = by_kind.get("Deployment") or by_kind["DaemonSet"]
    return {
        "service": {p["name"]: p for p in by_kind["Service"]["spec"]["ports"]},
        "container": {p["name"]: p for p in workload["spec"]["template"]["spec"]["containers"][0]["ports"]},
        "static": yaml.safe_load(by_kind["ConfigMap"]["data"]["dockroute.yaml"]),
        "notes": out["notes"],
    }


def test_extra_ports_are_entry_points_with_container_and_service_ports(tmp_path, kubeconfig):  # noqa: F811
    """Any ``ports`` name beside web, websecure and traefik is an entry point dockroute listens on (``/udp``
    for UDP), a container port (with its hostPort) and a Service port unless kept out."""
    static = yaml.safe_load(config_map("extra-ports")["dockroute.yaml"])
    eps = static["entryPoints"]
    assert (eps["postgres"], eps["dns"], eps["admin"]) == (
        {"address": ":5432"},
        {"address": ":5353/udp"},
        {"address": ":9000"},
    )
    path = tmp_path / "dockroute.yaml"
    path.write_text(config_map("extra-ports")["dockroute.yaml"])
    loaded = {ep.name: ep for ep in load_static([], {}, config_file=str(path), search_dirs=[]).entry_points}
    assert loaded["dns"].udp and loaded["dns"].address == ":5353" and not loaded["postgres"].udp
    ports = {p["name"]: p for p in container("extra-ports")["ports"]}
    assert ports["postgres"] == {
        "name": "postgres",
        "containerPort": 5432,
        "protocol": "TCP",
        "hostPort": 5432,
    }
    assert ports["dns"] == {"name": "dns", "containerPort": 5353, "protocol": "UDP"}  # no hostPort asked
    assert ports["admin"] == {"name": "admin", "containerPort": 9000, "protocol": "TCP"}
    service = {p["name"]: p for p in one_service("extra-ports")["spec"]["ports"]}
    assert service["postgres"] == {
        "name": "postgres",
        "port": 5432,
        "targetPort": "postgres",
        "protocol": "TCP",
        "nodePort": 30432,
    }
    assert service["dns"] == {"name": "dns", "port": 53, "targetPort": "dns", "protocol": "UDP"}
    assert "admin" not in service  # expose: {default: false}
    assert set(service) == {"web", "websecure", "postgres", "dns"}
    said = "admin (TCP, not in the Service), dns (UDP, Service port 53), postgres (TCP, Service port 5432)."
    assert f"Extra entry points (for tcp.routers / udp.routers): {said}" in rendered("extra-ports")["notes"]


def test_traefik_chart_values_that_say_what_the_chart_does_are_taken():
    """Values as Traefik's chart writes its defaults render as they would without them; the ones that
    ask for something (allowACMEByPass, websecure's TLS options and domains, an extra port's hostPort on a
    Deployment, web out of the Service) are acted on."""
    got = _objects(
        {
            "ports": {
                "web": {"expose": {"default": False}, "protocol": "TCP", "allowACMEByPass": True},
                "websecure": {
                    "expose": {"default": True},
                    "tls": {"enabled": True, "options": "modern", "domains": [{"main": "example.com"}]},
                },
                "traefik": {
                    "expose": {"default": False},
                    "exposedPort": 8080,
                    "protocol": "TCP",
                    "hostPort": None,
                },
                "mqtt": {"port": 1883, "hostPort": 1883},
            },
        }
    )
    eps = got["static"]["entryPoints"]
    assert eps["web"]["allowACMEByPass"] is True and "allowACMEByPass" not in eps["websecure"]
    assert eps["websecure"]["http"]["tls"] == {"options": "modern", "domains": [{"main": "example.com"}]}
    assert set(got["service"]) == {"websecure", "mqtt"}  # web kept out, as asked
    assert got["container"]["mqtt"]["hostPort"] == 1883  # on a Deployment too, as Traefik's chart
    assert "hostPort" not in got["container"]["web"]  # the built-in ones: DaemonSet only (values' 80/443)


@pytest.mark.parametrize(
    ("values", "said"),
    [
        ({"ports": {"websecure": {"http3": {"enabled": True}}}}, "ports.websecure.http3 is not supported"),
        ({"ports": {"web": {"forwardedHeaders": {"insecure": True}}}}, "ports.web.forwardedHeaders is not"),
        ({"ports": {"websecure": {"tls": {"passthrough": True}}}}, "ports.websecure.tls.passthrough is not"),
        ({"ports": {"traefik": {"expose": {"default": True}}}}, "the traefik entry point (ping, metrics"),
        ({"ports": {"web": {"expose": {"default": True, "internal": True}}}}, "ports.web.expose.internal"),
        ({"ports": {"pg": {"port": 5432, "expose": "no"}}}, "ports.pg.expose must be true or false"),
        ({"ports": {"web": {"protocol": "UDP"}}}, "ports.web.protocol must be TCP (it serves HTTP)"),
        ({"ports": {"pg": {"port": 5432, "proxyProtocol": {}}}}, "ports.pg.proxyProtocol is not supported"),
        ({"ports": {"pg": {"exposedPort": 5432}}}, "ports.pg.port is required"),
        (
            {"ports": {"pg": {"port": 5432, "protocol": "SCTP"}}},
            "ports.pg.protocol must be TCP or UDP, not SCTP",
        ),
        ({"ports": {"Postgres_DB": {"port": 5432}}}, "ports.Postgres_DB: the name must be lowercase"),
        ({"ports": {"5432": {"port": 5432}}}, "with at least one letter"),
        ({"ports": {"pg--db": {"port": 5432}}}, "single '-'"),
        ({"ports": {"postgres-primary-db": {"port": 5432}}}, "a Kubernetes port name has at most 15"),
        ({"ports": {"pg": 5432}}, "ports.pg must be a map"),
        ({"ports": {"alt": {"port": 8000}}}, "ports.alt and ports.web both listen on 8000/TCP in the pod"),
        ({"ports": {"alt": {"port": 8081, "exposedPort": 80}}}, "are both the Service's port 80/TCP"),
        (
            {"service": {"type": "ClusterIP"}, "ports": {"pg": {"port": 5432, "nodePort": 30432}}},
            "ports.pg.nodePort is set but service.type is ClusterIP",
        ),
        (
            {"ports": {"web": {"expose": False}, "websecure": {"expose": False}}},
            "no entry point is in the Service",
        ),
    ],
    ids=[
        "http3",
        "forwardedHeaders",
        "tls-passthrough",
        "traefik-exposed",
        "expose-internal",
        "expose-string",
        "web-udp",
        "proxyProtocol",
        "no-port",
        "sctp",
        "name",
        "digits-only",
        "double-dash",
        "long-name",
        "not-a-map",
        "same-pod-port",
        "same-service-port",
        "clusterip-nodeport",
        "empty-service",
    ],
)
def test_a_ports_value_the_chart_would_not_act_on_stops_the_render(values, said):
    """Traefik's chart has more per-port keys than this one acts on: each is refused by name (where to set
    it instead is said), never rendered into nothing or into objects Kubernetes refuses."""
    out = _run(CHART, values)
    assert said in out.get("error", ""), out.get("error")
