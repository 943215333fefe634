"""TCP routers and services as Traefik builds them: v2 HostSNI `*` and the HostSNI-without-tls check, TLS
to servers through the one client-context builder, servers shuffled per build, undialable host names left
out at parse."""

from __future__ import annotations

import trustme

from discover.model import merge
from discover.parse import parse_dynamic, parse_dynamic_with_warnings
from router.settings import EntryPoint
from router.tcp.compile import compile_tcp
from router.tcp.rules import ConnInfo, parse_tcp_rule
from router.tcp.service import build_services

EPS = (EntryPoint("web", ":80"),)


def info(sni: str = "", tls: bool = True) -> ConnInfo:
    return ConnInfo(sni, (), "192.0.2.1", tls)


def test_v2_hostsni_star_matches_everything_only_as_the_first_argument():
    first = parse_tcp_rule("HostSNI(`*`, `a.test`)", "v2")
    assert first.match(info("", tls=False)) and first.match(info("b.test"))
    later = parse_tcp_rule("HostSNI(`a.test`, `*`)", "v2")  # Traefik's hostSNIV2: any SNI, but one is needed
    assert later.match(info("b.test")) and later.match(info("a.test"))
    assert not later.match(info("", tls=False)) and not later.match(info(""))


def _errors(rule: str) -> dict[str, str]:
    merged = merge(
        {
            "file": parse_dynamic(
                {
                    "tcp": {
                        "routers": {"r": {"rule": rule, "service": "s", "entryPoints": ["web"]}},
                        "services": {"s": {"loadBalancer": {"servers": [{"address": "127.0.0.1:1"}]}}},
                    }
                }
            )
        }
    )
    return compile_tcp(merged.tcp, merged.tls.options, EPS, {}).errors


def test_a_router_without_tls_is_judged_by_its_first_hostsni_name_as_traefik():
    assert "r@file" not in _errors("HostSNI(`*`) || HostSNI(`a.test`)")
    assert "no tls" in _errors("HostSNI(`a.test`) || HostSNI(`*`)")["r@file"]


def _services(servers: list[dict], transport: dict | None = None) -> tuple:
    lb: dict = {"servers": servers}
    tcp: dict = {"services": {"s": {"loadBalancer": lb}}}
    if transport is not None:
        lb["serversTransport"] = "t"
        tcp["serversTransports"] = {"t": transport}
    cfg, warnings = parse_dynamic_with_warnings({"tcp": tcp})
    return merge({"file": cfg}).tcp, warnings


def test_tls_to_servers_takes_inline_pem_and_the_first_of_several_certificates(caplog):
    ca = trustme.CA()
    leaf = ca.issue_cert("client.test")
    pem = {
        "certFile": b"".join(b.bytes() for b in leaf.cert_chain_pems).decode(),
        "keyFile": leaf.private_key_pem.bytes().decode(),
    }
    transport = {"tls": {"rootCAs": [ca.cert_pem.bytes().decode()], "certificates": [pem, pem]}}
    tcp, _ = _services([{"address": "127.0.0.1:1", "tls": True}], transport)
    errors: dict[str, str] = {}
    contexts: dict = {}
    built = build_services(tcp.services, tcp.servers_transports, errors, contexts=contexts)
    assert not errors, errors
    server = built["s@file"].servers[0]
    assert server.tls is not None and server.server_name == "127.0.0.1"
    assert "only the first of 2 client certificates" in caplog.text
    again = build_services(tcp.services, tcp.servers_transports, {}, previous=contexts)
    assert again["s@file"].servers[0].tls is server.tls  # unchanged settings: the context is reused


def test_servers_are_shuffled_once_per_build_as_traefik():
    tcp, _ = _services([{"address": f"127.0.0.1:{p}"} for p in (1, 2, 3)])
    firsts = set()
    for _ in range(30):
        balancer = build_services(tcp.services, tcp.servers_transports, {})["s@file"]
        picks = [balancer.pick().address for _ in range(6)]
        assert picks[:3] == picks[3:] and sorted(picks[:3]) == ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"]
        firsts.add(picks[0])
    assert len(firsts) > 1


def test_servers_whose_host_name_no_lookup_can_take_are_left_out_by_name():
    tcp, warnings = _services([{"address": "a..b:80"}, {"address": "ok.test:80"}])
    assert [s.address for s in tcp.services["s@file"].load_balancer.servers] == ["ok.test:80"]
    assert any("servers[0]" in w and "a..b:80" in w and "left out" in w for w in warnings), warnings
