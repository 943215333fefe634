"""``traefik.tcp.*`` and ``traefik.udp.*`` labels (discover/docker_l4.py) with Traefik's Docker defaults,
merged across containers as HTTP labels are."""

from __future__ import annotations

from discover.docker_model import PortBinding
from tests.unit.test_docker_labels import box, build


def test_tcp_labels_alone_give_a_tcp_router_and_service_and_no_http_router():
    cfg, records = build(
        box(
            "db",
            {"traefik.tcp.routers.db.rule": "HostSNI(`*`)", "traefik.tcp.routers.db.entrypoints": "pg"},
            ports=(5432, 8080),
        )
    )
    assert not cfg.routers and not cfg.services  # Traefik: only tcp labels, no HTTP defaults
    router = cfg.tcp.routers["db"]
    assert router.service == "db" and router.entry_points == ("pg",) and router.origin == "container db"
    (server,) = cfg.tcp.services["db"].load_balancer.servers
    assert server.address == "10.0.0.2:5432"  # the lowest exposed port
    assert records["db"].routed


def test_port_tls_proxy_protocol_and_passthrough_labels():
    cfg, _ = build(
        box(
            "nas",
            {
                "traefik.tcp.routers.ui.rule": "HostSNI(`nas.test`)",
                "traefik.tcp.routers.ui.tls.passthrough": "true",
                "traefik.tcp.services.ui.loadbalancer.server.port": "5001",
                "traefik.tcp.services.ui.loadbalancer.server.tls": "true",
                "traefik.tcp.services.ui.loadbalancer.proxyprotocol.version": "1",
            },
        )
    )
    assert cfg.tcp.routers["ui"].tls.passthrough
    lb = cfg.tcp.services["ui"].load_balancer
    assert lb.servers[0].address == "10.0.0.2:5001" and lb.servers[0].tls and lb.proxy_protocol_version == 1


def test_udp_labels_give_a_udp_router_on_the_containers_port():
    cfg, records = build(
        box(
            "dns",
            {
                "traefik.udp.routers.dns.entrypoints": "dns",
                "traefik.udp.services.dns.loadbalancer.server.port": "53",
            },
            ports=(PortBinding(53, "udp"),),
        )
    )
    assert cfg.udp.routers["dns"].service == "dns" and cfg.udp.routers["dns"].entry_points == ("dns",)
    assert cfg.udp.services["dns"].load_balancer.servers[0].address == "10.0.0.2:53"
    assert records["dns"].routed and not cfg.routers


def test_http_and_tcp_labels_together_give_both():
    cfg, _ = build(
        box(
            "app",
            {
                "traefik.http.routers.web.rule": "Host(`a.test`)",
                "traefik.tcp.routers.raw.rule": "HostSNI(`*`)",
                "traefik.tcp.services.raw.loadbalancer.server.port": "9000",
            },
        )
    )
    assert "web" in cfg.routers and cfg.tcp.routers["raw"].service == "raw"
    assert cfg.tcp.services["raw"].load_balancer.servers[0].address == "10.0.0.2:9000"


def test_replicas_merge_servers_and_a_tcp_router_without_rule_or_with_a_bad_label_is_refused_by_name():
    labels = {
        "traefik.tcp.routers.db.rule": "HostSNI(`*`)",
        "traefik.tcp.services.db.loadbalancer.server.port": "5432",
    }
    cfg, _ = build(
        box("db-1", labels, networks={"net": "10.0.0.3"}), box("db-2", labels, networks={"net": "10.0.0.4"})
    )
    assert [s.address for s in cfg.tcp.services["db"].load_balancer.servers] == [
        "10.0.0.3:5432",
        "10.0.0.4:5432",
    ]
    _, records = build(box("norule", {"traefik.tcp.routers.x.entrypoints": "a"}))
    assert any("no rule label" in r for r in records["norule"].reasons) and not records["norule"].routed
    _, records = build(box("bad", {"traefik.tcp.services.x.loadbalancer.server.url": "http://a"}))
    assert "traefik.tcp.services.x.loadbalancer.server.url" in records["bad"].reasons[0]


def test_two_containers_defining_one_tcp_router_differently_lose_it():
    a = box(
        "a",
        {
            "traefik.tcp.routers.db.rule": "HostSNI(`*`)",
            "traefik.tcp.routers.db.service": "s",
            "traefik.tcp.services.s.loadbalancer.server.port": "1",
        },
    )
    b = box(
        "b",
        {
            "traefik.tcp.routers.db.rule": "ClientIP(`10.0.0.0/8`)",
            "traefik.tcp.routers.db.service": "s",
            "traefik.tcp.services.s.loadbalancer.server.port": "1",
        },
    )
    cfg, records = build(a, b)
    assert "db" not in cfg.tcp.routers
    assert any("tcp router db is defined differently" in r for r in records["a"].reasons)


def test_allow_empty_sections_as_true_labels():
    cfg, records = build(
        box(
            "db",
            {
                "traefik.tcp.routers.db.rule": "HostSNI(`*`)",
                "traefik.tcp.services.db.loadbalancer.proxyprotocol": "true",
                "traefik.tcp.services.db.loadbalancer.healthcheck": "true",
            },
        )
    )
    assert cfg.tcp.services["db"].load_balancer.proxy_protocol_version == 2
    assert cfg.tcp.services["db"].load_balancer.health_check is not None
