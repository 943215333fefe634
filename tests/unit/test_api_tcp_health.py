"""``serverStatus`` and ``serverStates`` of TCP load balancers in the API (router.api.tcp), read when
asked: Traefik's UP/DOWN per address, and why a server is down, in the words HTTP services use
(router.api.server_state). The health check's path is shown through the real process in
tests/integration/test_tcp_routing.py; here, every reason, including a server a provider knows it
cannot reach (a container on a network dockroute is not on), which a test process cannot stage."""

from __future__ import annotations

from discover.model_tcp import TCPConfig
from router.api.tcp import TCPView
from router.tcp.service import Server, TCPBalancer


def _server(address: str, unreachable: str = "") -> Server:
    host, _, port = address.rpartition(":")
    return Server(address, host, int(port), 30.0, 15.0, 0.1, 0, None, None, unreachable)


def _view(balancer: TCPBalancer) -> TCPView:
    view = TCPView(TCPConfig(), None)
    view.balancers = {balancer.name: balancer}
    return view


def test_every_server_is_up_until_something_says_otherwise_and_the_api_says_what():
    up, checked, far = (
        _server("10.0.0.1:5432"),
        _server("10.0.0.2:5432"),
        _server("10.9.0.3:5432", "network x"),
    )
    balancer = TCPBalancer("db@docker", servers=(up, checked, far))
    view = _view(balancer)
    item = {"name": "db@docker", "status": "enabled"}
    shown = view.live("tcp/services", item)
    assert shown["serverStatus"] == {up.address: "UP", checked.address: "UP", far.address: "DOWN"}
    assert shown["serverStates"][far.address] == "DOWN: unreachable: network x"
    balancer.down[checked.address] = "ConnectionRefusedError: [Errno 111] Connection refused"
    shown = view.live("tcp/services", item)  # read when asked: the check's verdict since
    assert shown["serverStatus"][checked.address] == "DOWN"
    assert shown["serverStates"][checked.address] == (
        "DOWN: active check failed: ConnectionRefusedError: [Errno 111] Connection refused"
    )
    assert item == {"name": "db@docker", "status": "enabled"}  # the cached item itself is not changed
    del balancer.down[checked.address]
    assert view.live("tcp/services", item)["serverStates"][checked.address] == "UP"


def test_weighted_services_and_other_lists_have_no_server_status():
    child = TCPBalancer("a@file", servers=(_server("10.0.0.1:1"),))
    view = _view(TCPBalancer("w@file", children=((child, 1),)))
    assert view.live("tcp/services", {"name": "w@file"}) == {"name": "w@file"}  # as Traefik's weighted
    assert view.live("tcp/routers", {"name": "a@file"}) == {"name": "a@file"}
