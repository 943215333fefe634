"""Swarm services and tasks (the engine's API dicts, shaped as Docker 20.10 returns them) → routes.

The dicts are trimmed copies of a real single-node swarm's ``GET /services``, ``GET /tasks`` and
``GET /networks?filters={"scope":["swarm"]}``: only the fields the provider reads, the rest left out.
"""

from __future__ import annotations

from typing import Any

import pytest

from discover.docker_labels import build_docker_config
from discover.docker_model import Reach
from discover.swarm_model import SwarmSettings
from discover.swarm_tasks import NO_TASK, swarm_containers

NET = {"Name": "app-net", "Id": "9gxttvwf2q2n9mqsqp3p3prhl", "Scope": "swarm", "Driver": "overlay"}
OTHER = {"Name": "db-net", "Id": "7hq0l1b1ymd1d9rl2yq8x4qzc", "Scope": "swarm", "Driver": "overlay"}
INGRESS = {
    "Name": "ingress",
    "Id": "5fsvjix1xq2o6wyzq6m7q8s0a",
    "Scope": "swarm",
    "Driver": "overlay",
    "Ingress": True,
}
NETWORKS = [INGRESS, NET, OTHER]
PORT = "traefik.http.services.web.loadbalancer.server.port"


def service(name: str, labels: dict[str, str], sid: str | None = None, **spec: Any) -> dict[str, Any]:
    sid = sid or f"svc{name}"
    out: dict[str, Any] = {
        "ID": sid,
        "Spec": {
            "Name": name,
            "Labels": labels,
            "Mode": spec.pop("mode", {"Replicated": {"Replicas": 1}}),
            "EndpointSpec": {"Mode": spec.pop("endpoint_mode", "vip")},
        },
        "Endpoint": {"Spec": {"Mode": "vip"}, "VirtualIPs": spec.pop("vips", [])},
    }
    return out


def task(sid: str, slot: int, ip: str | None, state: str = "running", net: dict = NET, **kw: Any) -> dict:
    attachments = (
        []
        if ip is None
        else [{"Network": {"ID": net["Id"], "Spec": {"Name": net["Name"]}}, "Addresses": [f"{ip}/24"]}]
    )
    return {
        "ID": kw.get("tid", f"task{sid}{slot}"),
        "ServiceID": sid,
        "Slot": slot,
        "NodeID": "5isap0uqr23j8b81wxhwxsfw6",
        "Status": {"State": state, "Message": state},
        "DesiredState": kw.get("desired", "running"),
        "NetworksAttachments": attachments,
    }


def build(services, tasks, settings=None, reach=None, networks=NETWORKS):
    settings = settings or SwarmSettings()
    view = swarm_containers(services, tasks, networks, settings)
    cfg, records = build_docker_config(view.containers, settings, reach=reach)
    return view, cfg, records


def urls(cfg, name):
    return sorted(s.url for s in cfg.services[name].load_balancer.servers)


def test_every_running_task_is_a_server_of_one_service_named_after_the_swarm_service():
    svc = service("shop_web", {PORT: "80", "traefik.http.routers.web.rule": "Host(`shop.test`)"})
    tasks = [
        task("svcshop_web", 1, "10.0.1.7"),
        task("svcshop_web", 2, "10.0.1.8"),
        task("svcshop_web", 3, "10.0.1.9"),
    ]
    view, cfg, records = build([svc], tasks)
    assert [c.name for c in view.containers] == ["shop_web.1", "shop_web.2", "shop_web.3"]
    assert {c.kind for c in view.containers} == {"task"}
    assert urls(cfg, "web") == ["http://10.0.1.7:80", "http://10.0.1.8:80", "http://10.0.1.9:80"]
    assert cfg.routers["web"].rule == "Host(`shop.test`)"
    assert all(r.routed for r in records.values())
    assert {d.provider for d in cfg.discovered} == {"swarm"}
    assert cfg.discovered[0].kind == "task"


def test_implicit_names_and_default_rule_come_from_the_service_name():
    # Traefik: ServiceName = the service spec's name (normalized), Name in the default rule template too
    svc = service("shop_api", {"traefik.http.services.shop-api.loadbalancer.server.port": "8080"})
    _, cfg, _ = build([svc], [task("svcshop_api", 1, "10.0.1.4"), task("svcshop_api", 2, "10.0.1.5")])
    assert list(cfg.routers) == ["shop-api"]
    assert cfg.routers["shop-api"].rule == "Host(`shop-api`)"
    assert urls(cfg, "shop-api") == ["http://10.0.1.4:8080", "http://10.0.1.5:8080"]


@pytest.mark.parametrize(
    ("state", "desired", "routed"),
    [
        ("running", "running", True),
        ("starting", "running", False),
        ("preparing", "running", False),
        ("pending", "running", False),
        ("running", "shutdown", False),  # being stopped by a scale-down or an update
        ("shutdown", "shutdown", False),
        ("failed", "running", False),
    ],
)
def test_only_running_tasks_meant_to_run_are_servers(state, desired, routed):
    svc = service("web", {PORT: "80"})
    tasks = [task("svcweb", 1, "10.0.1.2"), task("svcweb", 2, "10.0.1.3", state=state, desired=desired)]
    _, cfg, _ = build([svc], tasks)
    expected = ["http://10.0.1.2:80", "http://10.0.1.3:80"] if routed else ["http://10.0.1.2:80"]
    assert urls(cfg, "web") == expected


def test_no_port_label_is_refused_with_the_docker_providers_message():
    # a swarm task exposes no port to detect: Traefik requires loadbalancer.server.port
    _, cfg, records = build([service("web", {})], [task("svcweb", 1, "10.0.1.2")])
    rec = records["web.1"]
    assert not rec.routed and rec.reason == "no-port"
    assert "set traefik.http.services.web.loadbalancer.server.port" in rec.reasons[0]
    assert not cfg.routers


@pytest.mark.parametrize(
    ("labels", "settings", "expected"),
    [
        ({}, SwarmSettings(), "10.0.1.2"),  # only one network besides ingress
        ({"traefik.swarm.network": "db-net"}, SwarmSettings(), "10.0.2.2"),
        ({"traefik.docker.network": "db-net"}, SwarmSettings(), "10.0.2.2"),  # deprecated spelling
        ({}, SwarmSettings(network="db-net"), "10.0.2.2"),
        ({"traefik.swarm.network": "app-net"}, SwarmSettings(network="db-net"), "10.0.1.2"),  # label wins
    ],
)
def test_network_choice(labels, settings, expected):
    t = task("svcweb", 1, "10.0.1.2")
    t["NetworksAttachments"] += [
        {"Network": {"ID": OTHER["Id"]}, "Addresses": ["10.0.2.2/24"]},
        {"Network": {"ID": INGRESS["Id"]}, "Addresses": ["10.0.0.9/24"]},
    ]
    if not labels and settings.network is None:
        t["NetworksAttachments"].pop(1)  # app-net and ingress: ingress is never picked unasked
    _, cfg, _ = build([service("web", {PORT: "80", **labels})], [t], settings)
    assert urls(cfg, "web") == [f"http://{expected}:80"]


ZZ = {"Name": "zz-net", "Id": "3zzq8d0vbz1n4k2m5p7r9t1w", "Scope": "swarm", "Driver": "overlay"}


def test_the_ingress_network_is_never_picked_unasked_even_when_it_sorts_first():
    # ingress sorts before zz-net: only the ingress rule keeps the routing mesh's address out
    t = task("svcweb", 1, "10.0.9.2", net=ZZ)
    t["NetworksAttachments"].append({"Network": {"ID": INGRESS["Id"]}, "Addresses": ["10.0.0.9/24"]})
    _, cfg, _ = build([service("web", {PORT: "80"})], [t], networks=[INGRESS, ZZ])
    assert urls(cfg, "web") == ["http://10.0.9.2:80"]


def test_an_ingress_only_task_is_not_routed_unless_the_label_asks_for_ingress():
    only = task("svcweb", 1, "10.0.0.9", net=INGRESS)
    view, cfg, _ = build([service("web", {PORT: "80"})], [only], networks=[INGRESS, ZZ])
    assert not cfg.routers
    assert view.notes[0].reason == "unreachable-network" and "ingress" in view.notes[0].reasons[0]
    asked = service("web", {PORT: "80", "traefik.swarm.network": "ingress"})
    _, cfg, _ = build([asked], [only], networks=[INGRESS, ZZ])
    assert urls(cfg, "web") == ["http://10.0.0.9:80"]


def test_a_network_label_naming_no_network_of_the_task_warns_and_uses_another():
    _, cfg, records = build(
        [service("web", {PORT: "80", "traefik.swarm.network": "nope"})], [task("svcweb", 1, "10.0.1.2")]
    )
    assert urls(cfg, "web") == ["http://10.0.1.2:80"]
    assert any("'nope' (label traefik.swarm.network)" in w for w in records["web.1"].warnings)


def test_docker_labels_are_deprecated_and_both_kinds_are_refused():
    _, _, records = build(
        [service("web", {PORT: "80", "traefik.docker.network": "app-net"})], [task("svcweb", 1, "10.0.1.2")]
    )
    assert any("deprecated" in w for w in records["web.1"].warnings)
    both = {PORT: "80", "traefik.docker.network": "app-net", "traefik.swarm.lbswarm": "false"}
    view, cfg, records = build([service("web", both)], [task("svcweb", 1, "10.0.1.2")])
    assert not cfg.routers
    assert records["web"].kind == "service" and records["web"].reason == "malformed-label"
    assert "both Docker and Swarm labels" in records["web"].reasons[0]


def test_lbswarm_routes_to_the_virtual_ip():
    vips = [
        {"NetworkID": NET["Id"], "Addr": "10.0.1.6/24"},
        {"NetworkID": INGRESS["Id"], "Addr": "10.0.0.3/24"},
    ]
    for label in ("traefik.swarm.lbswarm", "traefik.docker.lbswarm"):
        svc = service("web", {PORT: "80", label: "true"}, vips=vips)
        view, cfg, records = build([svc], [task("svcweb", 1, "10.0.1.7"), task("svcweb", 2, "10.0.1.8")])
        assert urls(cfg, "web") == ["http://10.0.1.6:80"]
        assert [c.kind for c in view.containers] == ["service"]
        assert records["web"].routed


def test_lbswarm_without_a_virtual_ip_and_a_bad_value():
    view, cfg, _ = build(
        [service("web", {PORT: "80", "traefik.swarm.lbswarm": "true"})], [task("svcweb", 1, "10.0.1.7")]
    )
    assert not cfg.routers and view.notes[0].reason == "unreachable-network"
    assert (
        any(d.name == "web" and d.kind == "service" for d in cfg.discovered) is False
    )  # notes added by the provider
    view, cfg, _ = build(
        [service("web", {PORT: "80", "traefik.swarm.lbswarm": "maybe"})], [task("svcweb", 1, "10.0.1.7")]
    )
    assert not cfg.routers and view.notes[0].reason == "malformed-label"
    assert "traefik.swarm.lbswarm" in view.notes[0].reasons[0]


def test_lbswarm_with_dnsrr_balances_over_the_tasks_and_says_so():
    svc = service("web", {PORT: "80", "traefik.swarm.lbswarm": "true"}, endpoint_mode="dnsrr")
    view, cfg, _ = build([svc], [task("svcweb", 1, "10.0.1.7"), task("svcweb", 2, "10.0.1.8")])
    assert urls(cfg, "web") == ["http://10.0.1.7:80", "http://10.0.1.8:80"]
    assert "dnsrr" in view.warnings[0]


def test_global_service_tasks_are_named_by_task_id():
    svc = service(
        "agent", {"traefik.http.services.agent.loadbalancer.server.port": "9000"}, mode={"Global": {}}
    )
    view, cfg, _ = build(
        [svc], [task("svcagent", 0, "10.0.1.3", tid="t1"), task("svcagent", 0, "10.0.1.4", tid="t2")]
    )
    assert [c.name for c in view.containers] == ["agent.t1", "agent.t2"]
    assert len(cfg.services["agent"].load_balancer.servers) == 2


@pytest.mark.parametrize(
    ("settings", "labels", "routed_names"),
    [
        (SwarmSettings(exposed_by_default=False), {PORT: "80"}, []),
        (SwarmSettings(exposed_by_default=False), {PORT: "80", "traefik.enable": "true"}, ["web"]),
        (SwarmSettings(), {PORT: "80", "traefik.enable": "false"}, []),
        (SwarmSettings(constraints="Label(`team`, `a`)"), {PORT: "80", "team": "a"}, ["web"]),
        (SwarmSettings(constraints="Label(`team`, `a`)"), {PORT: "80", "team": "b"}, []),
    ],
)
def test_enable_and_constraints(settings, labels, routed_names):
    _, cfg, records = build([service("web", labels)], [task("svcweb", 1, "10.0.1.2")], settings)
    assert list(cfg.routers) == routed_names
    if (
        not routed_names
        and "traefik.enable" in labels
        or not settings.exposed_by_default
        and not routed_names
    ):
        assert records["web"].kind == "service" and records["web"].reason == "disabled"


def test_no_running_task_and_allow_empty_services():
    _, cfg, records = build([service("web", {PORT: "80"})], [task("svcweb", 1, "10.0.1.2", state="starting")])
    assert not cfg.routers and records["web"].reason == "not-running"
    assert NO_TASK in records["web"].reasons[0]
    _, cfg, records = build([service("web", {PORT: "80"})], [], SwarmSettings(allow_empty_services=True))
    assert cfg.services["web"].load_balancer.servers == ()  # 503, not 404, until a task runs
    assert list(cfg.routers) == ["web"]


def test_tasks_on_no_swarm_network_are_noted():
    view, cfg, _ = build([service("web", {PORT: "80"})], [task("svcweb", 1, None)])
    assert not cfg.routers and view.notes[0].reason == "unreachable-network"


def test_two_services_and_an_unreachable_network():
    a = service("a", {"traefik.http.services.a.loadbalancer.server.port": "80"})
    b = service("b", {"traefik.http.services.b.loadbalancer.server.port": "80"})
    tasks = [task("svca", 1, "10.0.1.2"), task("svcb", 1, "10.0.2.2", net=OTHER)]
    reach = Reach(judged=True, container="dockroute.1.xyz", networks=frozenset({"app-net", "ingress"}))
    _, cfg, records = build([a, b], tasks, reach=reach)
    assert records["a.1"].routed and not records["b.1"].routed
    assert records["b.1"].reason == "unreachable-network"
    assert cfg.services["b"].load_balancer.servers[0].unreachable


def test_a_service_that_cannot_be_read_costs_only_itself():
    good = service("a", {"traefik.http.services.a.loadbalancer.server.port": "80"})
    bad = {"ID": "x", "Spec": {"Name": "bad", "Labels": ["not", "a", "map"]}}
    view, cfg, _ = build([good, bad], [task("svca", 1, "10.0.1.2"), task("x", 1, "10.0.1.3")])
    assert list(cfg.routers) == ["a"]
    assert view.notes[0].name == "bad" and view.notes[0].reason == "error"
