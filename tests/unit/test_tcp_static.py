"""Traefik's static ``tcpServersTransport`` (dockroute/static/tcp.py): read, with Go's signed durations,
and used by TCP services that name no serversTransport (router/tcp/service.py)."""

from __future__ import annotations

import pytest

from discover.model_tcp import TCPLoadBalancer, TCPServer, TCPServersTransport, TCPService
from dockroute.static.build import load_static
from dockroute.static.settings import StaticConfigError
from router.tcp.service import build_services


def tcp_transport(*flags: str) -> TCPServersTransport:
    static = load_static(["--entrypoints.web.address=:80", *flags], {}, search_dirs=[])
    assert not static.ignored
    return static.tcp_transport


def test_defaults_and_every_key():
    assert tcp_transport() == TCPServersTransport()  # 30s, 15s, 100ms: Traefik's
    t = tcp_transport(
        "--tcpserverstransport.dialtimeout=2s",
        "--tcpserverstransport.dialkeepalive=-1",
        "--tcpserverstransport.terminationdelay=-1s",
        "--tcpserverstransport.tls.insecureskipverify=true",
        "--tcpserverstransport.tls.rootcas=/ca.pem",
    )
    assert (t.dial_timeout, t.dial_keep_alive, t.termination_delay) == (2.0, -1.0, -1.0)
    assert t.tls is not None and t.tls.insecure_skip_verify and t.tls.root_cas == ("/ca.pem",)


@pytest.mark.parametrize(
    "flag",
    ["--tcpserverstransport.tls.spiffe.trustdomain=example.org", "--tcpserverstransport.dialtimeout=soon"],
)
def test_spiffe_and_bad_values_stop_the_start_by_name(flag):
    with pytest.raises(StaticConfigError) as err:
        tcp_transport(flag)
    assert "tcpServersTransport" in str(err.value)


def test_services_without_a_transport_use_it_and_named_ones_their_own():
    default = TCPServersTransport(dial_timeout=2.0, termination_delay=-1.0)
    own = TCPServersTransport(dial_timeout=7.0)

    def service(transport: str | None) -> TCPService:
        lb = TCPLoadBalancer(servers=(TCPServer("10.0.0.1:5432"),), servers_transport=transport)
        return TCPService("s", load_balancer=lb)

    for name, expected in ((None, (2.0, -1.0)), ("default@internal", (2.0, -1.0)), ("own", (7.0, 0.1))):
        balancers = build_services({"s": service(name)}, {"own": own}, {}, default)
        server = balancers["s"].pick()
        assert (server.dial_timeout, server.termination_delay) == expected, name
