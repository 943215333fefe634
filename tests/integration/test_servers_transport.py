"""Per-service ``serversTransport`` through the real process, against real loopback HTTPS backends.

Each backend is a tiny asyncio TLS server (answers every request with who it is, the SNI it was sent and the
client certificate it got); certificates come from trustme CAs or are self-signed with ``cryptography``.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import trustme

from router import tls
from tests.integration.harness import wait_for
from tests.unit.test_transports import uri_leaf

pytestmark = pytest.mark.integration


class TlsBackend:
    """An HTTPS server on 127.0.0.1:<kernel port>. Records the SNI, the client certificate and the paths."""

    def __init__(self, name: str, ctx: ssl.SSLContext) -> None:
        self.name = name
        self.ctx = ctx
        self.sni: list[str | None] = []
        self.paths: list[str] = []
        self.server: asyncio.Server | None = None
        ctx.sni_callback = self._sni

    def _sni(self, sslobj: ssl.SSLObject, name: str | None, ctx: ssl.SSLContext) -> None:
        self.sni.append(name)

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"https://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def start(self) -> TlsBackend:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self.ctx)
        return self

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peercert") or {}
        subject = dict(x[0] for x in peer.get("subject", ()))
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.paths.append(head.split(b" ", 2)[1].decode())
                body = json.dumps({"server": self.name, "client": subject.get("commonName")}).encode()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        writer.close()

    def stop(self) -> None:
        if self.server is not None:
            self.server.close()


def self_signed(tmp: Path) -> tuple[str, str]:
    """Files of a self-signed certificate (its own issuer: no CA anywhere trusts it)."""
    pair = tls.self_signed("self-signed backend", ("127.0.0.1",))
    cert_file, key_file = tmp / "self.pem", tmp / "self.key"
    cert_file.write_bytes(pair.cert_pem)
    key_file.write_bytes(pair.key_pem)
    return str(cert_file), str(key_file)


def dynamic(
    routes: dict[str, tuple[str, str | None]],
    transports: dict[str, dict[str, Any]],
    health: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``routes``: service name → (backend URL, serversTransport or None); router ``<svc>`` on host
    ``<svc>.test``."""
    services: dict[str, Any] = {}
    for name, (url, transport) in routes.items():
        lb: dict[str, Any] = {"servers": [{"url": url}]}
        if transport:
            lb["serversTransport"] = transport
        if health and name in health:
            lb["healthCheck"] = health[name]
        services[name] = {"loadBalancer": lb}
    return {
        "http": {
            "routers": {name: {"rule": f"Host(`{name}.test`)", "service": name} for name in routes},
            "services": services,
            "serversTransports": transports,
        }
    }


async def routed(dr: Any, n: int) -> None:
    """Wait until the file's routers are applied (the first "configuration applied" may be the empty one)."""
    await wait_for(lambda: f"configuration applied: {n} routers" in dr.log(), timeout=10)


async def fetch(session: aiohttp.ClientSession, url: str, host: str) -> tuple[int, bytes]:
    async with session.get(url, headers={"Host": host}) as r:
        return r.status, await r.read()


async def test_insecure_skip_verify_reaches_a_self_signed_backend_the_default_does_not(proxy, tmp_path):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*self_signed(tmp_path))
    backend = await TlsBackend("selfsigned", ctx).start()
    # Both services, one backend: only the transport differs. The health check of "skip" probes through
    # its transport too, so the backend stays in rotation.
    dr = await proxy(
        dynamic(
            {"skip": (backend.url, "skip"), "plain": (backend.url, None)},
            {"skip": {"insecureSkipVerify": True}},
            health={"skip": {"path": "/health", "interval": "100ms", "timeout": "2s"}},
        )
    )
    await routed(dr, 2)
    async with aiohttp.ClientSession() as s:
        await wait_for(lambda: backend.paths.count("/health") >= 3, timeout=10)
        status, body = await fetch(s, dr.url("/x"), "skip.test")
        assert (status, json.loads(body)["server"]) == (200, "selfsigned")
        status, _ = await fetch(s, dr.url("/x"), "plain.test")
        assert status == 502
        for _ in range(3):  # again, over pooled connections: the default never borrows skip's
            assert (await fetch(s, dr.url("/x"), "plain.test"))[0] == 502
            assert (await fetch(s, dr.url("/x"), "skip.test"))[0] == 200
    assert "service skip@file: server" not in dr.log()  # never unhealthy, never failed
    backend.stop()


async def test_root_cas_and_server_name_verify_a_certificate_for_another_name(proxy, tmp_path):
    ca = trustme.CA()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("backend.internal").configure_cert(ctx)
    backend = await TlsBackend("named", ctx).start()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    dr = await proxy(
        dynamic(
            {
                "named": (backend.url, "named"),
                "caonly": (backend.url, "caonly"),
                "plain": (backend.url, None),
            },
            {
                "named": {"rootCAs": [str(ca_file)], "serverName": "backend.internal"},
                "caonly": {"rootCAs": [str(ca_file)]},
            },
        )
    )
    await routed(dr, 3)
    async with aiohttp.ClientSession() as s:
        status, body = await fetch(s, dr.url("/"), "named.test")
        assert (status, json.loads(body)["server"]) == (200, "named")
        assert "backend.internal" in backend.sni
        assert (await fetch(s, dr.url("/"), "caonly.test"))[0] == 502  # 127.0.0.1 is not in the certificate
        assert (await fetch(s, dr.url("/"), "plain.test"))[0] == 502  # the system roots do not know the CA
    backend.stop()


async def test_client_certificate_only_through_the_transport_that_has_it(proxy, tmp_path):
    ca, client_ca = trustme.CA(), trustme.CA()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1").configure_cert(ctx)
    ctx.verify_mode = ssl.CERT_REQUIRED
    client_ca.configure_trust(ctx)
    backend = await TlsBackend("mtls", ctx).start()
    leaf = client_ca.issue_cert("proxy.client", common_name="proxy.client")
    leaf.cert_chain_pems[0].write_to_path(str(tmp_path / "client.pem"))
    roots = [ca.cert_pem.bytes().decode()]  # inline PEM, as Traefik allows
    dr = await proxy(
        dynamic(
            {"withcert": (backend.url, "withcert"), "nocert": (backend.url, "nocert")},
            {
                "withcert": {
                    "rootCAs": roots,
                    # the certificate from a file, its key inline
                    "certificates": [
                        {
                            "certFile": str(tmp_path / "client.pem"),
                            "keyFile": leaf.private_key_pem.bytes().decode(),
                        }
                    ],
                },
                "nocert": {"rootCAs": roots},
            },
        )
    )
    await routed(dr, 2)
    async with aiohttp.ClientSession() as s:
        status, body = await fetch(s, dr.url("/"), "withcert.test")
        assert (status, json.loads(body)) == (200, {"server": "mtls", "client": "proxy.client"})
        assert (await fetch(s, dr.url("/"), "nocert.test"))[0] == 502
    backend.stop()


async def test_missing_or_unusable_transport_refuses_with_one_line_each(proxy, tmp_path):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*self_signed(tmp_path))
    backend = await TlsBackend("selfsigned", ctx).start()
    missing = str(tmp_path / "no-such-ca.pem")
    dr = await proxy(
        dynamic(
            {"broken": (backend.url, "broken"), "ghost": (backend.url, "ghost"), "ok": (backend.url, "ok")},
            # "broken" would skip verification, but its CA file is missing: never used half-built.
            {
                "broken": {"insecureSkipVerify": True, "rootCAs": [missing]},
                "ok": {"insecureSkipVerify": True},
            },
        )
    )
    await routed(dr, 2)
    async with aiohttp.ClientSession() as s:
        assert (await fetch(s, dr.url("/"), "ok.test"))[0] == 200
        assert (await fetch(s, dr.url("/"), "broken.test"))[0] == 502
        assert (await fetch(s, dr.url("/"), "broken.test"))[0] == 502
        assert (await fetch(s, dr.url("/"), "ghost.test"))[0] == 404  # its router is not routed
    log = dr.log()
    assert log.count("serversTransport broken@file is unusable") >= 1
    unusable = [line for line in log.splitlines() if "serversTransport broken@file is unusable, its" in line]
    assert len(unusable) == 1 and missing in unusable[0]
    assert "router ghost@file is not routed: service ghost@file uses serversTransport ghost@file" in log
    assert backend.paths == ["/"]  # only the "ok" request reached it
    backend.stop()


async def test_peer_cert_uri_is_required_of_the_backend(proxy, tmp_path):
    ca = trustme.CA()
    cert_pem, key_pem = uri_leaf(ca, "spiffe://cluster.local/ns/shop/sa/api")
    (tmp_path / "leaf.pem").write_bytes(cert_pem)
    (tmp_path / "leaf.key").write_bytes(key_pem)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(tmp_path / "leaf.pem"), str(tmp_path / "leaf.key"))
    backend = await TlsBackend("spiffe", ctx).start()
    roots = [ca.cert_pem.bytes().decode()]
    dr = await proxy(
        dynamic(
            {"good": (backend.url, "good"), "bad": (backend.url, "bad")},
            {
                "good": {"rootCAs": roots, "peerCertURI": "spiffe://cluster.local/ns/shop/sa/api"},
                "bad": {"rootCAs": roots, "peerCertURI": "spiffe://cluster.local/ns/shop/sa/db"},
            },
        )
    )
    await routed(dr, 2)
    async with aiohttp.ClientSession() as s:
        assert (await fetch(s, dr.url("/"), "good.test"))[0] == 200
        assert (await fetch(s, dr.url("/"), "bad.test"))[0] == 502
    backend.stop()


async def test_forwarding_timeouts_are_the_services_transports(proxy, backends):
    (backend,) = await backends("slow")
    dr = await proxy(
        dynamic(
            {"quick": (backend.url, "quick"), "patient": (backend.url, None)},
            {"quick": {"forwardingTimeouts": {"responseHeaderTimeout": "200ms"}}},
        )
    )
    await routed(dr, 2)
    async with aiohttp.ClientSession() as s:
        assert await fetch(s, dr.url("/slow?delay=0.6"), "patient.test") == (200, b"slow from slow")
        assert (await fetch(s, dr.url("/slow?delay=0.6"), "quick.test"))[0] == 504
