"""Discovery records: every container the Docker provider sees, routed or not, with the reason and the fix;
containers on a network dockroute cannot reach; logs that do not repeat."""

import asyncio
import dataclasses
import logging

import pytest

from discover.docker_labels import build_docker_config
from discover.docker_model import ContainerInfo, DockerSettings, PortBinding, Reach
from discover.docker_provider import DockerProvider
from discover.model import REASONS, Discovered, LoadBalancer, Server
from router.balancer import ServiceBalancer, build_balancers
from router.loops import OwnServers

T = "traefik.http."
IN_CONTAINER = Reach(judged=True, container="proxy", networks=frozenset({"front"}))


def box(name="app", labels=None, *, ports=(80,), networks=None, **kw):
    return ContainerInfo(
        id=f"{name}-id",
        name=name,
        labels=labels or {},
        ports=tuple(PortBinding(p) for p in ports),
        networks={"front": "10.0.0.2"} if networks is None else networks,
        **kw,
    )


def discovered(*containers, settings=None, reach=IN_CONTAINER):
    cfg, _ = build_docker_config(list(containers), settings or DockerSettings(), reach=reach)
    return cfg, {d.name: d for d in cfg.discovered}


@pytest.mark.parametrize(
    ("container", "settings", "reason", "detail"),
    [
        (box(ports=()), DockerSettings(), "no-port", "no exposed TCP port"),
        (
            box(labels={T + "routers.r.rule": "Host(`a`)", T + "routers.r.priority": "x"}),
            None,
            "malformed-label",
            f"label {T}routers.r.priority",
        ),
        (box(labels={"traefik.enable": "maybe"}), None, "malformed-label", "label traefik.enable"),
        (box(health="unhealthy"), None, "unhealthy", "health: unhealthy"),
        (box(health="starting"), None, "unhealthy", "health: starting"),
        (box(labels={"traefik.enable": "false"}), None, "disabled", "traefik.enable=false"),
        (box(), DockerSettings(exposed_by_default=False), "disabled", "exposedByDefault is false"),
        (
            box(),
            DockerSettings(constraints="Label(`team`, `a`)"),
            "constraint",
            "left out by the constraints",
        ),
        (box(state="paused"), None, "not-running", "state: paused"),
        (box(networks={"back": "10.9.0.2"}), None, "unreachable-network", "network back"),
        (box(networks={}, network_mode="none"), None, "unreachable-network", "on no network"),
    ],
)
def test_every_container_left_out_has_its_reason(container, settings, reason, detail):
    _, by_name = discovered(container, settings=settings or DockerSettings())
    d = by_name["app"]
    assert reason in REASONS
    assert (d.reason, d.routed) == (reason, False)
    assert detail in d.detail, d.detail
    assert d.provider == "docker" and d.kind == "container" and d.id == "app-id"


def test_a_routed_container_lists_what_it_produced():
    cfg, by_name = discovered(box("web", {T + "routers.site.rule": "Host(`w`)"}))
    assert by_name["web"] == Discovered(
        provider="docker",
        kind="container",
        name="web",
        id="web-id",
        routed=True,
        routers=("site@docker",),
        services=("web@docker",),
        networks=("front",),
    )
    assert cfg.services["web"].load_balancer.servers == (Server("http://10.0.0.2:80"),)


def test_a_conflict_is_reported_on_both_containers():
    _, by_name = discovered(
        box("a", {T + "routers.r.rule": "Host(`a`)"}),
        box("b", {T + "routers.r.rule": "Host(`b`)"}, networks={"front": "10.0.0.3"}),
    )
    assert by_name["a"].reason == by_name["b"].reason == "conflict"


# -- networks dockroute cannot reach ----------------------------------------------------------------------


def test_in_a_container_a_network_it_is_not_on_is_unreachable_with_the_command_to_fix_it():
    cfg, by_name = discovered(box("far", networks={"back": "10.9.0.2"}))
    d = by_name["far"]
    assert (d.reason, d.routed) == ("unreachable-network", False)
    assert d.fix == "docker network connect back proxy"
    # its router and service are still produced: requests to it fail fast instead of matching nothing
    assert set(cfg.routers) == {"far"} and d.routers == ("far@docker",)
    (server,) = cfg.services["far"].load_balancer.servers
    assert server.url == "http://10.9.0.2:80"
    assert "network back" in server.unreachable


def test_a_network_label_naming_an_unshared_network_gets_the_label_to_set_as_fix():
    c = box("two", {"traefik.docker.network": "back"}, networks={"back": "10.9.0.2", "front": "10.0.0.4"})
    _, by_name = discovered(c)
    assert by_name["two"].reason == "unreachable-network"
    assert by_name["two"].fix == "set the label traefik.docker.network=front on two"


def test_several_networks_pick_the_one_dockroute_shares():
    cfg, by_name = discovered(box("two", networks={"aaa": "10.9.0.2", "front": "10.0.0.4"}))
    assert by_name["two"].routed and by_name["two"].reason == ""
    assert cfg.services["two"].load_balancer.servers == (Server("http://10.0.0.4:80"),)


def test_on_the_host_only_drivers_the_host_cannot_reach_are_unreachable():
    host = Reach(
        judged=True, blocked={"swarmnet": "an overlay network's addresses are not routed from the host"}
    )
    cfg, by_name = discovered(
        box("a", networks={"internal": "172.18.0.2"}),
        box("b", networks={"swarmnet": "10.0.1.5"}),
        reach=host,
    )
    assert by_name["a"].routed
    assert by_name["b"].reason == "unreachable-network"
    assert "overlay" in cfg.services["b"].load_balancer.servers[0].unreachable
    assert "docker network connect bridge b" in by_name["b"].fix


def test_when_reachability_cannot_be_judged_nothing_is_called_unreachable():
    cfg, by_name = discovered(box("far", networks={"back": "10.9.0.2"}), reach=Reach())
    assert by_name["far"].routed
    assert cfg.services["far"].load_balancer.servers[0].unreachable == ""


def test_host_network_mode_and_ports_bound_to_an_address_are_reachable():
    host_mode = box("h", networks={}, network_mode="host")
    bound = ContainerInfo(
        id="p", name="p", ports=(PortBinding(80, "tcp", "192.0.2.10", 8080),), networks={"back": "10.9.0.3"}
    )
    reach = dataclasses.replace(IN_CONTAINER, host="172.17.0.1")
    cfg, by_name = discovered(host_mode, bound, settings=DockerSettings(use_bind_port_ip=True), reach=reach)
    assert by_name["h"].routed and by_name["p"].routed
    assert cfg.services["p"].load_balancer.servers[0].url == "http://192.0.2.10:8080"
    assert all(not s.unreachable for svc in cfg.services.values() for s in svc.load_balancer.servers)


def test_from_a_container_a_host_network_container_is_reached_at_host_docker_internal():
    """Traefik's getIPAddress: in dockroute's container 127.0.0.1 is its own loopback, so the host is
    host.docker.internal's address (``--add-host host.docker.internal:host-gateway``)."""
    reach = dataclasses.replace(IN_CONTAINER, host="172.17.0.1")
    cfg, by_name = discovered(box("h", networks={}, network_mode="host", ports=(8081,)), reach=reach)
    assert by_name["h"].routed
    assert [s.url for s in cfg.services["h"].load_balancer.servers] == ["http://172.17.0.1:8081"]


def test_from_a_container_without_host_docker_internal_a_host_network_container_is_not_routed():
    """Not proxied to dockroute's own 127.0.0.1 (Traefik's fallback, which answers from dockroute itself):
    reported, with the fix that gives the container the name."""
    cfg, by_name = discovered(box("h", networks={}, network_mode="host"))
    d = by_name["h"]
    assert not d.routed and d.reason == "unreachable-network"
    assert "network_mode host: dockroute runs in container proxy" in d.detail
    assert d.fix.startswith("recreate proxy with --add-host host.docker.internal:host-gateway"), d.fix
    assert 'extra_hosts: ["host.docker.internal:host-gateway"]' in d.fix
    assert "h" not in cfg.services


@pytest.mark.parametrize("reach", [Reach(), Reach(judged=True)], ids=["not-judged", "on-the-host"])
def test_outside_a_container_a_host_network_container_is_reached_at_the_hosts_address(reach):
    settings = DockerSettings(host_address="192.0.2.7")
    cfg, by_name = discovered(box("h", networks={}, network_mode="host"), settings=settings, reach=reach)
    assert by_name["h"].routed
    assert [s.url for s in cfg.services["h"].load_balancer.servers] == ["http://192.0.2.7:80"]


def test_a_port_bound_on_all_addresses_is_reached_at_the_container_and_judged_like_it():
    """Traefik's getIPPort: a binding on 0.0.0.0 names no address, so the container's own address and port
    are used; that address is on a network dockroute is not on."""
    bound = ContainerInfo(
        id="p", name="p", ports=(PortBinding(80, "tcp", "0.0.0.0", 8080),), networks={"back": "10.9.0.3"}
    )
    cfg, by_name = discovered(bound, settings=DockerSettings(use_bind_port_ip=True))
    assert cfg.services["p"].load_balancer.servers[0].url == "http://10.9.0.3:80"
    assert by_name["p"].reason == "unreachable-network"


def test_the_balancer_carries_unreachable_and_keeps_it_current():
    spec = LoadBalancer(servers=(Server("http://10.9.0.2:80", unreachable="not on back"),))
    bal = build_balancers({"s": _service(spec)})["s"]
    assert isinstance(bal, ServiceBalancer) and bal.servers[0].unreachable == "not on back"
    fixed = LoadBalancer(servers=(Server("http://10.9.0.2:80"),))
    again = build_balancers({"s": _service(fixed)}, previous={"s": bal})["s"]
    assert again.servers[0].unreachable == ""


def _service(lb):
    from discover.model import Service

    return Service(name="s", load_balancer=lb)


# -- the provider: reachability from the engine, logs that do not repeat ------------------------------------


class FakeEngine:
    """The two engine calls reachability needs."""

    def __init__(self, own=None, networks=()):
        self.own = own
        self.nets = list(networks)
        self.calls = 0

    def inspect_container(self, cid):
        from docker.errors import NotFound

        self.calls += 1
        if self.own is None or cid != self.own["Id"]:
            raise NotFound("no such container")
        return self.own

    def networks(self):
        return self.nets


def _provider(lists):
    p = DockerProvider(DockerSettings())
    p._loop = asyncio.get_running_loop()  # noqa: SLF001
    queue = list(lists)
    p._list = lambda: queue.pop(0) if len(queue) > 1 else queue[0]  # noqa: SLF001
    p._reach = IN_CONTAINER  # noqa: SLF001
    return p


async def test_a_containers_problem_is_logged_once_and_again_only_when_it_changes(caplog):
    far = box("far", networks={"back": "10.9.0.2"}, ports=(80, 443))
    # moved to another network: its reason changes, its ports warning does not (and is not repeated)
    far2 = box("far", networks={"back2": "10.8.0.2"}, ports=(80, 443))
    bad = box("bad", {T + "routers.r.priority": "x"})
    bad2 = box("bad", {T + "routers.r.priority": "y"})
    other = box("other", networks={"front": "10.0.0.7"})
    p = _provider([[far, bad], [far, bad], [far, bad, other], [far2, bad2]])
    published = []
    with caplog.at_level(logging.INFO, logger="dockroute.docker"):
        for _ in range(2):  # two identical refreshes (every Docker event triggers one)
            await p._rebuild(published.append)  # noqa: SLF001
        first = [r.getMessage() for r in caplog.records]
        assert len(first) == 3, first  # far: its ports warning, its reason; bad: its label
        assert any(
            m.startswith("container far is not routed: unreachable: network back")
            and m.endswith("; fix: docker network connect back proxy")
            for m in first
        )
        caplog.clear()
        await p._rebuild(published.append)  # noqa: SLF001 - another container: nothing about far or bad
        assert [r.getMessage() for r in caplog.records] == []
        await p._rebuild(published.append)  # noqa: SLF001 - what changed only
        bad_line, far_line = sorted(r.getMessage() for r in caplog.records)
        assert bad_line.startswith(f"container bad is not routed: label {T}routers.r.priority")
        assert "'y'" in bad_line
        assert far_line.startswith("container far is not routed: unreachable: network back2")


async def test_a_crash_looping_container_says_each_line_once_until_it_is_gone(caplog):
    """restarting, running, restarting...: every cycle changes its record; each line is logged once for
    the container's id, and again only for a new container (another id) after it was gone."""
    looping = [box("loop", ports=(80, 443), state=s) for s in ("restarting", "running") * 3]
    again = dataclasses.replace(looping[0], id="loop-id-2")
    p = _provider([[c] for c in looping] + [[], [again]])
    with caplog.at_level(logging.INFO, logger="dockroute.docker"):
        for _ in looping:
            await p._rebuild(lambda cfg: None)  # noqa: SLF001
        lines = [r.getMessage() for r in caplog.records]
        assert sorted(lines) == sorted(set(lines)) and len(lines) == 2, lines  # not-running; ports warning
        caplog.clear()
        await p._rebuild(lambda cfg: None)  # noqa: SLF001 - gone
        await p._rebuild(lambda cfg: None)  # noqa: SLF001 - a new container of that name
        assert [r.getMessage() for r in caplog.records] == [lines[0]], caplog.records


def test_warnings_reach_the_record_after_the_reasons():
    c = box("g", {T + "services.g.loadbalancer.server.scheme": "h2c"})
    _, by_name = discovered(c)
    assert by_name["g"].routed and by_name["g"].reason == ""
    assert "scheme h2c is proxied as HTTP/1.1" in by_name["g"].detail


# -- the request path: a server known unreachable is never dialled -------------------------------------------


class _Pool:
    """Records the servers dialled; every dial fails as a refused connection would."""

    def __init__(self):
        self.dialled = []

    async def acquire(self, key):
        from router.upstream import ConnectFailed

        self.dialled.append(key)
        raise ConnectFailed("refused")

    connect = acquire


class _Head:
    expect_continue = False


class _Msg:
    method = "GET"
    headers: dict = {}


def _ep():
    class Ep:
        pool = _Pool()
        own = OwnServers()  # router.loops: no server of this entry point's own

    return Ep()


async def test_an_unreachable_server_is_answered_502_at_once_without_a_dial():
    from router.forward import _send

    lb = LoadBalancer(servers=(Server("http://10.9.0.2:80", unreachable="network back: not dockroute's"),))
    bal = build_balancers({"s": _service(lb)})["s"]
    ep = _ep()
    failure = await _send(ep, None, None, _Msg(), _Head(), bal, bal.servers[0], None)
    assert (failure.status, failure.why) == (
        502,
        "http://10.9.0.2:80: unreachable: network back: not dockroute's",
    )
    assert ep.pool.dialled == []


async def test_a_service_with_a_reachable_server_too_sends_there():
    from router.forward import _send

    lb = LoadBalancer(servers=(Server("http://10.9.0.2:80", unreachable="far"), Server("http://10.0.0.3:80")))
    bal = build_balancers({"s": _service(lb)})["s"]
    ep = _ep()
    failure = await _send(ep, None, None, _Msg(), _Head(), bal, bal.servers[0], None)
    assert [key[1] for key in ep.pool.dialled] == ["10.0.0.3"]  # the reachable one only
    assert failure.why == "http://10.0.0.3:80: refused"


def test_paused_and_restarting_containers_are_listed_as_not_running(monkeypatch):
    from discover import engine_provider

    class Engine(FakeEngine):
        def containers(self, filters):
            self.filters = filters
            return [
                {"Id": "p" * 64, "Names": ["/frozen"], "State": "paused", "Status": "Up 1 minute (Paused)"},
                {"Id": "r" * 64, "Names": ["/looping"], "State": "restarting", "Status": "Restarting (1)"},
            ]

    monkeypatch.setattr(engine_provider, "find_own_container", lambda client: "")
    monkeypatch.setattr(engine_provider, "local_routes", lambda: [])
    p = DockerProvider(DockerSettings())
    engine = p._list_client = Engine()  # noqa: SLF001
    listed = p._list()  # noqa: SLF001
    assert set(engine.filters["status"]) == {"running", "paused", "restarting"}
    _, records = build_docker_config(listed, DockerSettings())
    assert {n: (r.reason, r.reasons[0]) for n, r in records.items()} == {
        "frozen": ("not-running", "state: paused (not running)"),
        "looping": ("not-running", "state: restarting (not running)"),
    }


def test_files_and_labels_say_the_same_about_h2c_and_preserve_path():
    """One implementation: a server's h2c scheme and preservePath=true are told in the same words whether
    they come from a file or from Docker labels, only where they were set differs."""
    from discover.parse import parse_dynamic_with_warnings

    servers = [{"url": "h2c://b:80"}, {"url": "http://c/base", "preservePath": True}]
    _, from_file = parse_dynamic_with_warnings(
        {"http": {"services": {"s": {"loadBalancer": {"servers": servers}}}}}
    )
    labels = {
        T + "services.g.loadbalancer.server.url": "h2c://b:80",
        T + "services.g.loadbalancer.server.preservepath": "true",
    }
    _, records = build_docker_config([box("g", labels)], DockerSettings())
    said = sorted(
        w.split(": ", 2)[-1] for w in records["g"].warnings if "h2c" in w or "preserve" in w.lower()
    )
    assert sorted(w.split(": ", 1)[1] for w in from_file) == said and len(said) == 2


@pytest.mark.parametrize("health", ["starting", "unhealthy"])
def test_dockroutes_own_container_is_routed_whatever_its_health(health):
    """The image's HEALTHCHECK must not hide the routes on dockroute's own labels (its dashboard): they are
    routed while the check starts or fails; any other container in that state is not."""
    labels = {"traefik.enable": "true", "traefik.http.routers.dash.rule": "Host(`dash.test`)"}
    own = box("proxy", labels, health=health)
    other = box("app", {"traefik.enable": "true"}, health=health)
    cfg, by_name = discovered(own, other)
    assert by_name["proxy"].routed and "dash" in cfg.routers
    assert not by_name["app"].routed and by_name["app"].reason == "unhealthy"
