"""TCP review fixes: Traefik's v2 HostSNI `*`, its HostSNI-without-tls check on the first name only."""

from __future__ import annotations

from discover.model import merge
from discover.parse import parse_dynamic
from router.settings import EntryPoint
from router.tcp.compile import compile_tcp
from router.tcp.rules import ConnInfo, parse_tcp_rule

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
