"""Servers a provider knows dockroute cannot reach take no request while another server can: left out of
picks and of availability (a weighted service sends nothing to a child whose servers are all unreachable),
still picked when nothing else is, so that the request is answered 502 at once with the reason."""

from discover.model import HealthCheck, LoadBalancer, Server, Service, StickyCookie, Weighted, WeightedRef
from router.balancer import ServiceBalancer, WeightedBalancer, build_balancers
from router.forward import _pick


class _Target:
    def __init__(self, balancer):
        self.balancer = balancer
        self.service = "w"


class _Headers(dict):
    def getall(self, name, default=()):
        return [self[name]] if name in self else list(default)


def _weighted(far_unreachable="network back: not dockroute's", near_unreachable=""):
    services = {
        "far": Service(
            "far", load_balancer=LoadBalancer((Server("http://10.9.0.2:80", unreachable=far_unreachable),))
        ),
        "near": Service(
            "near", load_balancer=LoadBalancer((Server("http://10.0.0.3:80", unreachable=near_unreachable),))
        ),
        "w": Service("w", weighted=Weighted((WeightedRef("far", 1), WeightedRef("near", 1)))),
    }
    return build_balancers(services)


def test_a_weighted_service_sends_nothing_to_a_child_known_unreachable():
    bal = _weighted()
    assert isinstance(bal["w"], WeightedBalancer)
    assert not bal["far"].has_available() and not bal["far"].has_healthy()
    picked = [_pick(_Target(bal["w"]), _Headers())[1].url for _ in range(20)]
    assert picked == ["http://10.0.0.3:80"] * 20


def test_when_every_child_is_unreachable_one_is_still_picked_for_the_502_with_its_reason():
    bal = _weighted(near_unreachable="network front2: not dockroute's")
    picked = _pick(_Target(bal["w"]), _Headers())
    assert picked is not None and picked[1].unreachable  # forward._send answers 502 with it at once


def test_a_load_balancer_picks_its_reachable_servers_only():
    lb = LoadBalancer(
        (
            Server("http://10.9.0.2:80", unreachable="far"),
            Server("http://10.0.0.3:80"),
            Server("http://10.0.0.4:80"),
        )
    )
    bal = build_balancers({"s": Service("s", load_balancer=lb)})["s"]
    assert isinstance(bal, ServiceBalancer)
    assert {bal.pick().url for _ in range(10)} == {"http://10.0.0.3:80", "http://10.0.0.4:80"}
    assert bal.has_available() and not bal.has_fallback()


def test_a_sticky_cookie_naming_an_unreachable_server_is_not_followed():
    lb = LoadBalancer(
        (Server("http://10.9.0.2:80", unreachable="far"), Server("http://10.0.0.3:80")), sticky=StickyCookie()
    )
    bal = build_balancers({"s": Service("s", load_balancer=lb)})["s"]
    far = bal.servers[0]
    assert bal.pick({bal.cookie_name: far.cookie_value}).url == "http://10.0.0.3:80"


def test_a_health_checked_service_keeps_its_server_objects_and_updates_unreachable():
    """With an active health check the balancer keeps the previous Upstream objects (the checker reports
    into them): the provider's verdict must still follow the configuration, both ways."""
    hc = HealthCheck(path="/health")
    far = LoadBalancer(
        (Server("http://10.9.0.2:80", unreachable="far"), Server("http://10.0.0.3:80")), health_check=hc
    )
    near = LoadBalancer((Server("http://10.9.0.2:80"), Server("http://10.0.0.3:80")), health_check=hc)
    first = build_balancers({"s": Service("s", load_balancer=far)})["s"]
    second = build_balancers({"s": Service("s", load_balancer=near)}, previous={"s": first})["s"]
    assert second.servers[0] is first.servers[0]  # the same object, as the checker needs
    assert second.servers[0].unreachable == ""
    assert {second.pick().url for _ in range(4)} == {"http://10.9.0.2:80", "http://10.0.0.3:80"}
    third = build_balancers({"s": Service("s", load_balancer=far)}, previous={"s": second})["s"]
    assert third.servers[0] is first.servers[0] and third.servers[0].unreachable == "far"
    assert {third.pick().url for _ in range(4)} == {"http://10.0.0.3:80"}


async def test_the_health_checker_does_not_dial_a_server_known_unreachable():
    import asyncio

    from aiohttp import web

    from router.healthcheck import HealthChecker

    hosts = []

    async def handle(request):
        hosts.append(request.host)
        return web.Response()

    runner = web.ServerRunner(web.Server(handle))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    hc = HealthCheck(path="/health", interval=0.02, timeout=2)
    # both URLs lead to the same backend; only the one without a verdict may be probed
    lb = LoadBalancer(
        (Server(f"http://localhost:{port}", unreachable="far"), Server(f"http://127.0.0.1:{port}")),
        health_check=hc,
    )
    services = {"s": Service("s", load_balancer=lb)}
    bals = build_balancers(services)
    checker = HealthChecker()
    checker.update(bals, services)
    try:
        deadline = asyncio.get_running_loop().time() + 5
        while len(hosts) < 4 and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
    finally:
        await checker.stop()
        await runner.cleanup()
    assert len(hosts) >= 4 and set(hosts) == {f"127.0.0.1:{port}"}, hosts
    assert bals["s"].servers[0].healthy and bals["s"].servers[0].unreachable == "far"  # kept as it was
