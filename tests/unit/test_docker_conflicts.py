"""Conflicts between containers, as Traefik's ``provider.Merge`` treats them (pkg/provider/merge.go,
``deleteConflicts``: "defined multiple times with different configurations"): a router, service or
middleware that two containers define differently is left out altogether and every container defining it
is told; identical definitions (a compose service's replicas) still merge. Before, the first container by
name kept its definition, so a container could take over another's router by choosing a name that sorts
first (issue 13, hardening: conflicts).
"""

import logging

import pytest

from discover.docker_labels import build_docker_config
from discover.docker_model import ContainerInfo, DockerSettings, PortBinding
from discover.model import Server

T = "traefik.http."
S = DockerSettings(default_rule="Host(`{{ normalize .Name }}.test`)")
WEB = {"com.docker.compose.project": "blog", "com.docker.compose.service": "web"}


def box(name, labels, address="10.0.0.2"):
    return ContainerInfo(
        id=f"{name}-id", name=name, labels=labels, ports=(PortBinding(80),), networks={"net": address}
    )


def build(*containers):
    return build_docker_config(list(containers), S)


DIFFERENT = [
    ("router", "routers.web-blog.rule", "Host(`a`)", "Host(`b`)"),
    ("middleware", "middlewares.m.addprefix.prefix", "/a", "/b"),
    ("service", "services.web-blog.loadbalancer.passhostheader", "true", "false"),
]


@pytest.mark.parametrize(("kind", "key", "one", "two"), DIFFERENT, ids=[d[0] for d in DIFFERENT])
@pytest.mark.parametrize("order", ["given", "reversed"])
def test_a_definition_two_containers_disagree_on_is_left_out_of_both(kind, key, one, two, order):
    extra = {T + "routers.web-blog.middlewares": "m"} if kind == "middleware" else {}
    containers = [
        box("blog-web-1", {**WEB, **extra, T + key: one}),
        box("blog-web-2", {**WEB, **extra, T + key: two}, "10.0.0.3"),
    ]
    cfg, records = build(*(containers if order == "given" else containers[::-1]))
    kept = {"router": cfg.routers, "middleware": cfg.middlewares, "service": cfg.services}[kind]
    name = "m" if kind == "middleware" else "web-blog"
    assert name not in kept
    for c in ("blog-web-1", "blog-web-2"):
        rec = records[c]
        assert rec.reason == "conflict" and not rec.routed
        assert any(
            r.startswith(f"{kind} {name} is defined differently by containers blog-web-1, blog-web-2")
            for r in rec.reasons
        ), rec.reasons
        assert "another name" in rec.fix


def test_a_container_sorting_first_cannot_take_another_containers_router():
    victim = box("web", {T + "routers.site.rule": "Host(`site.test`)"})
    thief = box(
        "0-thief",
        {
            T + "routers.site.rule": "Host(`site.test`)",
            T + "routers.site.service": "evil",
            T + "services.evil.loadbalancer.server.port": "80",
        },
        "10.0.0.66",
    )
    cfg, records = build(victim, thief)
    assert "site" not in cfg.routers
    assert not records["web"].routed and not records["0-thief"].routed
    assert records["web"].reason == records["0-thief"].reason == "conflict"


def test_a_router_of_another_name_with_the_same_rule_does_not_take_the_host_either():
    cfg, records = build(
        box("b", {T + "routers.rb.rule": "Host(`x`)"}),
        box("a", {T + "routers.ra.rule": "Host(`x`)"}),
        box("c", {T + "routers.rc.rule": "Host(`x`)", T + "routers.rc.priority": "100"}),
    )
    assert set(cfg.routers) == {"rc"}
    for name, other in (("a", "rb"), ("b", "ra")):
        assert records[name].reason == "conflict" and not records[name].routed
        assert (
            "same rule" in records[name].reasons[0]
            and f"router {other} of container" in records[name].reasons[0]
        )
    assert records["c"].routed and records["c"].reasons == ()


def test_replicas_with_identical_labels_still_merge_and_are_all_routed():
    cfg, records = build(
        box("blog-web-2", WEB, "10.0.0.3"), box("blog-web-1", WEB), box("blog-web-3", WEB, "10.0.0.4")
    )
    assert set(cfg.routers) == {"web-blog"}
    assert cfg.services["web-blog"].load_balancer.servers == (
        Server("http://10.0.0.2:80"),
        Server("http://10.0.0.3:80"),
        Server("http://10.0.0.4:80"),
    )
    assert all(r.routed and r.reasons == () for r in records.values())


def test_a_third_container_naming_another_router_is_unaffected():
    cfg, records = build(
        box("a", {T + "routers.r.rule": "Host(`a`)"}),
        box("b", {T + "routers.r.rule": "Host(`b`)"}, "10.0.0.3"),
        box("c", {T + "routers.other.rule": "Host(`c`)"}, "10.0.0.4"),
    )
    assert set(cfg.routers) == {"other"}
    assert records["c"].routed and records["c"].reasons == ()
    assert not records["a"].routed and not records["b"].routed


def test_replicas_and_one_dissenter_all_named_and_all_left_out():
    odd = {**WEB, T + "routers.web-blog.rule": "Host(`odd`)"}
    cfg, records = build(
        box("blog-web-1", WEB), box("blog-web-2", WEB, "10.0.0.3"), box("blog-web-3", odd, "10.0.0.4")
    )
    assert "web-blog" not in cfg.routers
    line = "router web-blog is defined differently by containers blog-web-1, blog-web-2, blog-web-3"
    assert all(any(r.startswith(line) for r in rec.reasons) and not rec.routed for rec in records.values())


def test_a_container_whose_service_is_left_out_is_not_routed():
    """Its router survives the merge but points at nothing: the record must not say routed."""
    cfg, records = build(
        box(
            "a",
            {
                T + "routers.ra.rule": "Host(`a`)",
                T + "routers.ra.service": "s",
                T + "services.s.loadbalancer.passhostheader": "true",
            },
        ),
        box(
            "b",
            {
                T + "routers.rb.rule": "Host(`b`)",
                T + "routers.rb.service": "s",
                T + "services.s.loadbalancer.passhostheader": "false",
            },
            "10.0.0.3",
        ),
    )
    assert "s" not in cfg.services
    assert not records["a"].routed and not records["b"].routed


def test_one_log_line_per_conflict_not_one_per_rebuild(caplog):
    containers = (
        box("log-a", {T + "routers.logged.rule": "Host(`a`)"}),
        box("log-b", {T + "routers.logged.rule": "Host(`b`)"}, "10.0.0.3"),
    )
    with caplog.at_level(logging.ERROR, logger="dockroute.docker"):
        build(*containers)
        build(*containers)
    lines = [r.getMessage() for r in caplog.records if "router logged " in r.getMessage()]
    assert lines == [
        "provider docker: router logged is defined differently by containers log-a, log-b; "
        "left out of all of them (Traefik drops it too)"
    ]
