"""The ``tcp`` section (discover/parse_tcp.py), TCP rules (router/tcp/rules.py) and the choice between TCP
and HTTPS on one entry point (router/tcp/table.py)."""

from __future__ import annotations

import pytest

from discover.model_tcp import TCPInFlightConn, TCPIPAllowList, TCPServerHealthCheck
from discover.parse import parse_dynamic_with_warnings
from discover.readers import ConfigError
from router.matchers import RuleError
from router.tcp.rules import ConnInfo, parse_tcp_rule
from router.tcp.service import TCPBalancer
from router.tcp.table import PASSTHROUGH, TCPRoute, TCPTable


def tcp(section: dict):
    return parse_dynamic_with_warnings({"tcp": section})


def test_routers_services_middlewares_and_transports_are_read_as_traefik_decodes_them():
    cfg, warnings = tcp(
        {
            "Routers": {
                "db": {
                    "rule": "HostSNI(`db.test`)",
                    "service": "db",
                    "entryPoints": "a,b",
                    "priority": "5",
                    "tls": {"passthrough": "true"},
                },
                "mqtt": {"rule": "HostSNI(`*`)", "service": "db", "tls": "true", "middlewares": ["lan"]},
            },
            "services": {
                "db": {
                    "loadBalancer": {
                        "servers": [{"address": "10.0.0.1:5432", "tls": True}],
                        "proxyProtocol": {},
                    }
                },
                "w": {"weighted": {"services": [{"name": "db", "weight": 3}]}},
            },
            "middlewares": {
                "lan": {"ipAllowList": {"sourceRange": "10.0.0.0/8, ::1"}},
                "one": {"inFlightConn": {"amount": 2}},
            },
            "serversTransports": {
                "t": {"dialTimeout": "3s", "terminationDelay": "-1", "proxyProtocol": {"version": 1}}
            },
        }
    )
    t = cfg.tcp
    assert t.routers["db"].entry_points == ("a", "b") and t.routers["db"].priority == 5
    assert t.routers["db"].tls.passthrough and not t.routers["mqtt"].tls.passthrough
    lb = t.services["db"].load_balancer
    assert lb.servers[0].tls and lb.proxy_protocol_version == 2  # present without a version: 2, as Traefik
    assert t.services["w"].weighted.services[0].weight == 3
    assert t.middlewares["lan"].options == TCPIPAllowList(("10.0.0.0/8", "::1"))
    assert t.middlewares["one"].options == TCPInFlightConn(2)
    st = t.servers_transports["t"]
    assert (st.dial_timeout, st.termination_delay, st.proxy_protocol_version) == (3.0, -1.0, 1)
    assert any("proxyProtocol: deprecated" in w for w in warnings)


@pytest.mark.parametrize(
    ("section", "path"),
    [
        ({"routers": {"r": {"rule": "HostSNI(`*`)"}}}, "tcp.routers.r.service"),
        (
            {"routers": {"r": {"rule": "x", "service": "s", "tls": {"passthru": True}}}},
            "tcp.routers.r.tls.passthru",
        ),
        (
            {"services": {"s": {"loadBalancer": {"servers": [{"address": "nohost"}]}}}},
            "tcp.services.s.loadBalancer.servers[0].address",
        ),
        (
            {"services": {"s": {"loadBalancer": {"servers": [{"url": "http://a"}]}}}},
            "tcp.services.s.loadBalancer.servers[0].url",
        ),
        ({"services": {"s": {}}}, "tcp.services.s"),
        (
            {"serversTransports": {"t": {"proxyProtocol": {"version": 3}}}},
            "tcp.serversTransports.t.proxyProtocol.version",
        ),
    ],
)
def test_bad_keys_are_refused_by_name(section, path):
    with pytest.raises(ConfigError) as err:
        tcp(section)
    assert err.value.path == path


def test_unsupported_parts_are_warned_or_refused_by_name():
    cfg, warnings = tcp(
        {
            "middlewares": {"bad": {"ipAllowList": {"sourceRange": ["not-an-ip"]}}},
            "serversTransports": {"t": {"tls": {"spiffe": {}}}},
        }
    )
    assert cfg.tcp.middlewares["bad"].error and any("not-an-ip" in w for w in warnings)
    assert "t" not in cfg.tcp.servers_transports and any("spiffe: not supported" in w for w in warnings)


def info(sni: str = "", alpn: tuple[str, ...] = (), ip: str = "192.0.2.1", tls: bool = True) -> ConnInfo:
    return ConnInfo(sni, alpn, ip, tls)


def test_rules_match_sni_wildcards_alpn_and_client_ip():
    assert parse_tcp_rule("HostSNI(`*.db.test`)").match(info("a.db.test"))
    assert not parse_tcp_rule("HostSNI(`*.db.test`)").match(info("db.test"))
    assert not parse_tcp_rule("HostSNI(`db.test`)").match(info(""))
    assert parse_tcp_rule("HostSNI(`*`)").match(info("", tls=False))
    assert (
        parse_tcp_rule("HostSNI(`*`)").catch_all
        and not parse_tcp_rule("HostSNI(`*`) && ALPN(`h2`)").catch_all
    )
    assert parse_tcp_rule("HostSNIRegexp(`^db[0-9]+\\.test$`)").match(info("db7.test"))
    assert parse_tcp_rule("ALPN(`mqtt`) && ClientIP(`192.0.2.0/24`)").match(info("", ("mqtt",)))
    assert not parse_tcp_rule("!ClientIP(`192.0.2.1`)").match(info())
    v2 = parse_tcp_rule("HostSNI(`a.test`, `b.test`) || HostSNIRegexp(`{sub:[a-z]+}.c.test`)", "v2")
    assert v2.match(info("b.test")) and v2.match(info("x.c.test")) and not v2.match(info("c.test"))


@pytest.mark.parametrize(
    "rule",
    [
        "Host(`a`)",
        "HostSNI(`a`, `b`)",
        "ALPN(`acme-tls/1`)",
        "HostSNI(`a b`)",
        "HostSNIRegexp(`(`)",
        "HostSNI(`a`) &&",
    ],
)
def test_bad_rules_are_refused(rule):
    with pytest.raises(RuleError):
        parse_tcp_rule(rule)


def route(name: str, rule: str, tls: str | None = PASSTHROUGH, priority: int | None = None) -> TCPRoute:
    r = parse_tcp_rule(rule)
    return TCPRoute(
        name,
        priority if priority is not None else (-1 if r.catch_all else len(rule)),
        r,
        TCPBalancer(name),
        tls=tls,
    )


def test_https_hosts_come_before_tcp_routers_and_tcp_before_the_https_catch_all():
    specific, catch = route("nas", "HostSNI(`nas.test`)"), route("all", "HostSNI(`*`)")
    table = TCPTable([specific, catch], https_hosts=frozenset({"app.test", "*.wild.test"}))
    assert table.match_tls(info("nas.test")) is specific
    assert table.match_tls(info("app.test")) is None and table.match_tls(info("x.wild.test")) is None
    assert table.match_tls(info("other.test")) is catch  # no HTTPS router claims it
    with_catch_all = TCPTable([specific, catch], https_hosts=frozenset({"app.test"}), https_catch_all=True)
    assert with_catch_all.match_tls(info("other.test")) is None  # an HTTPS router without Host() wins
    assert with_catch_all.match_tls(info("nas.test")) is specific
    assert not table.server_first and TCPTable([route("p", "HostSNI(`*`)", tls=None)]).server_first
    assert table.match_tls(info("nas.test", ("acme-tls/1",))) is None  # a TLS-ALPN-01 validator


def test_health_checks_with_traefiks_defaults_and_fallbacks():
    cfg, warnings = tcp(
        {
            "services": {
                "s": {"loadBalancer": {"servers": [], "healthCheck": {}}},
                "t": {
                    "loadBalancer": {
                        "healthCheck": {
                            "port": 9,
                            "send": "PING",
                            "expect": "PONG",
                            "interval": "0s",
                            "unhealthyInterval": "2s",
                            "timeout": "500ms",
                        }
                    }
                },
                "w": {"weighted": {"services": [{"name": "s"}], "healthCheck": {}}},
            }
        }
    )
    assert cfg.tcp.services["s"].load_balancer.health_check == TCPServerHealthCheck()  # 30s, 5s
    t = cfg.tcp.services["t"].load_balancer.health_check
    assert (t.port, t.send, t.expect, t.interval, t.unhealthy_interval, t.timeout) == (
        9,
        "PING",
        "PONG",
        30.0,
        2.0,
        0.5,
    )
    assert any("interval: not above zero; 30s is used" in w for w in warnings)
    assert cfg.tcp.services["w"].weighted.health_check
