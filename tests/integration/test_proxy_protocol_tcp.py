"""TCP routers behind a PROXY header, through the real process: a TCP ``ClientIP`` rule and a TCP
``ipAllowList`` judge the client a trusted peer's header names, not the load balancer's own address
(router.server hands the header's source to the TCP table; router.tcp.rules reads ``client_ip``)."""

from __future__ import annotations

import asyncio

import pytest

from tests.integration.test_proxy_protocol import connect
from tests.integration.test_tcp_routing import TCPServer, _named, lb, tcp_config

pytestmark = pytest.mark.integration


async def answer(port: int, sent: bytes, source: str = "127.0.0.1") -> bytes:
    """What a connection from ``source`` that begins with ``sent`` gets back, up to the close (b"" when
    dockroute closes it without a byte)."""
    sock = await connect(port, source)
    reader, writer = await asyncio.open_connection(sock=sock)
    writer.write(sent)
    try:
        async with asyncio.timeout(5):
            return await reader.read()
    except ConnectionError:  # closed with the client's bytes unread: a reset
        return b""
    finally:
        writer.close()


def v1(src: str) -> bytes:
    return f"PROXY TCP4 {src} 192.0.2.1 40000 5432\r\n".encode()


async def test_tcp_client_ip_rules_and_ip_allow_list_judge_the_proxy_header_s_source(proxy):
    async with TCPServer(_named(b"doc")) as doc, TCPServer(_named(b"lan")) as lan:
        cfg = tcp_config(
            {
                # the longer rule has the higher default priority (Traefik's: the rule's length)
                "doc": {"rule": "HostSNI(`*`) && ClientIP(`203.0.113.0/24`)", "service": "doc"},
                "lan": {"rule": "HostSNI(`*`)", "service": "lan", "middlewares": ["only-lan"]},
            },
            {"doc": lb(doc.address), "lan": lb(lan.address)},
            middlewares={"only-lan": {"ipAllowList": {"sourceRange": ["198.51.100.0/24"]}}},
        )
        static = {
            "entryPoints": {
                "pp": {"address": "127.0.0.1:0", "proxyProtocol": {"trustedIPs": ["127.0.0.1"]}},
            },
            "providers": {"file": {"filename": "dynamic.yml"}},
            "log": {"level": "DEBUG"},
        }
        dr = await proxy(cfg, static=static)
        port = dr.ports["pp"]
        assert await answer(port, v1("203.0.113.9")) == b"doc"  # ClientIP matches the header's source
        assert await answer(port, v1("198.51.100.7")) == b"lan"  # ...and ipAllowList lets it in
        assert await answer(port, v1("192.0.2.50")) == b""  # neither: refused by the allow list
        assert (doc.connections, lan.connections) == (1, 1)
        # the balancer itself (no header, a server-first entry point: routed at its deadline or first
        # byte) is 127.0.0.1, in neither range
        assert await answer(port, b"hello") == b""
        # an untrusted peer's header is refused before any routing
        assert await answer(port, v1("203.0.113.9"), source="127.0.0.2") == b""
        assert (doc.connections, lan.connections) == (1, 1)
