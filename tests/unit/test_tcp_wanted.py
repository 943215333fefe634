"""Certificates TCP routers ask their certResolver for (dockroute/certificates.py), as Traefik's ACME
provider: the router's ``tls.domains``, else its HostSNI() names; only routed routers."""

from __future__ import annotations

from discover.model import merge
from discover.parse import parse_dynamic
from dockroute.certificates import wanted_certificates
from router.compile import compile_config
from router.settings import EntryPoint
from router.tcp.compile import compile_tcp

EPS = (EntryPoint("websecure", ":443"),)


def wanted(tcp_routers: dict) -> dict:
    merged = merge(
        {
            "file": parse_dynamic(
                {
                    "tcp": {
                        "routers": tcp_routers,
                        "services": {"s": {"loadBalancer": {"servers": [{"address": "127.0.0.1:1"}]}}},
                    }
                }
            )
        }
    )
    compiled = compile_config(merged, EPS)
    compiled.tcp = compile_tcp(merged.tcp, merged.tls.options, EPS, compiled.tls_tables)
    return wanted_certificates(merged, compiled, EPS, {"le": object()})


def test_tcp_routers_want_their_domains_or_their_hostsni_names():
    got = wanted(
        {
            "db": {
                "rule": "HostSNI(`db.test`) || HostSNI(`pg.test`)",
                "service": "s",
                "tls": {"certResolver": "le"},
            },
            "mq": {
                "rule": "HostSNI(`*`)",
                "service": "s",
                "tls": {"certResolver": "le", "domains": [{"main": "mq.test", "sans": ["m.test"]}]},
            },
            "any": {
                "rule": "HostSNI(`*`)",
                "service": "s",
                "tls": {"certResolver": "le"},
            },  # no name to ask for
            "off": {
                "rule": "HostSNI(`x.test`)",
                "service": "missing",
                "tls": {"certResolver": "le"},
            },  # not routed
        }
    )
    assert sorted(got["le"]) == [("db.test", "pg.test"), ("mq.test", "m.test")]


def test_a_missing_resolver_is_reported(caplog):
    assert wanted(
        {"db": {"rule": "HostSNI(`db.test`)", "service": "s", "tls": {"certResolver": "nope"}}}
    ) == {"le": []}
    assert "certificate resolver nope does not exist" in caplog.text
