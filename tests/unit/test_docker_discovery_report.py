"""/api/discovery and the Docker records: a container is routed only when one of its routers survives,
in the provider (servers alone route nothing) and after the compile (routers all left out → ``error``)."""

from discover.docker_labels import build_docker_config
from discover.docker_model import ContainerInfo, DockerSettings, PortBinding
from discover.model import Discovered, DynamicConfig, LoadBalancer, Router, Server, Service
from router.api.render import Runtime
from router.api.report import discovery
from router.api.state import ApiState
from router.balancer import build_balancers
from router.settings import ApiSettings, EntryPoint

T = "traefik.http."


def box(name, labels):
    return ContainerInfo(
        id=f"{name}-id", name=name, labels=labels, ports=(PortBinding(80),), networks={"front": "10.0.0.2"}
    )


def test_a_container_with_servers_and_no_router_left_is_not_routed():
    two = box(
        "two",
        {T + "services.a.loadbalancer.server.port": "80", T + "services.b.loadbalancer.server.port": "81"},
    )
    bad_rule = box("bad", {T + "routers.r.rule": ""})
    settings = DockerSettings(default_rule="{{ .Nope }}")
    cfg, records = build_docker_config([two, bad_rule], settings)
    assert cfg.services and not cfg.routers  # servers were produced, no router survived
    assert not records["two"].routed and records["two"].reason == "error"
    assert "several services" in records["two"].reasons[0]
    assert not records["bad"].routed and records["bad"].reason == "error"


def _api(discovered, errors):
    cfg = DynamicConfig(
        routers={
            "r@docker": Router("r@docker", rule="Host(`a", service="app@docker"),
            "m@docker": Router(
                "m@docker", rule="Host(`m`)", service="app@docker", middlewares=("nope@docker",)
            ),
            "ok@docker": Router("ok@docker", rule="Host(`ok`)", service="app@docker"),
        },
        services={
            "app@docker": Service("app@docker", load_balancer=LoadBalancer((Server("http://10.0.0.2:80"),)))
        },
        discovered=discovered,
    )
    routed = {n: ("web",) for n in cfg.routers if n not in errors}
    state = ApiState(
        "3.0.0-test",
        ApiSettings(),
        (EntryPoint("web", ":80"),),
        {},
        cfg,
        errors,
        routed,
        balancers=build_balancers(cfg.services),
    )
    return discovery(Runtime(state))


def test_a_container_whose_routers_are_all_left_out_by_the_compile_is_not_routed_with_their_errors():
    errors = {
        "r@docker": "rule 'Host(`a' does not parse: unterminated backquote",
        "m@docker": "middleware nope@docker does not exist",
    }
    seen = (
        Discovered("docker", "container", "broken", "b", routed=True, routers=("r@docker", "m@docker")),
        Discovered("docker", "container", "half", "h", routed=True, routers=("r@docker", "ok@docker")),
    )
    by_name = {c["name"]: c for c in _api(seen, errors)["containers"]}
    broken = by_name["broken"]
    assert (broken["routed"], broken["reason"]) == (False, "error")
    assert broken["detail"] == (
        "router r@docker (label traefik.http.routers.r.rule, else the defaultRule): "
        "rule 'Host(`a' does not parse: unterminated backquote; "
        "router m@docker: middleware nope@docker does not exist"
    )
    assert by_name["half"]["routed"] is True  # one router of two still routes it
