"""``entryPoints.<ep>.allowACMEByPass`` through the real process.

HTTP-01: dockroute's answer takes the default priority and the redirection leaves the challenge paths
alone, so a user's router can take them. TLS-ALPN-01: a validator (a ClientHello offering ``acme-tls/1``)
reaches a passthrough TCP router, so the server behind it answers its own challenge. As in Traefik, that
half is also on when no resolver uses ``tlsChallenge`` (dockroute has no challenge of its own to answer
there); otherwise dockroute keeps such ClientHellos. With the bypass on, dockroute still answers its own
TLS-ALPN-01 challenges first (validated by a real Pebble).
"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import trustme

from tests.integration import pebble_env
from tests.integration.test_tcp_routing import TCPServer, lb, tcp_config
from tests.polling import wait_for

pytestmark = pytest.mark.integration

ACME_TLS_1 = "acme-tls/1"


def _backend(ca: trustme.CA) -> ssl.SSLContext:
    """The passthrough server's own TLS: its certificate for nas.test, answering acme-tls/1 as an ACME
    client answering its own TLS-ALPN-01 challenge does."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("nas.test").configure_cert(ctx)
    ctx.set_alpn_protocols([ACME_TLS_1, "http/1.1"])
    return ctx


async def _reaches_backend(port: int, ca: trustme.CA, alpn: list[str]) -> bool:
    """A client offering ``alpn`` for nas.test completes a handshake with the backend's own certificate
    (and, offering acme-tls/1, agrees on it): True; dockroute's certificate instead: False."""
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    ctx.set_alpn_protocols(alpn)
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname="nas.test")
    except ssl.SSLCertVerificationError:
        return False
    agreed = writer.get_extra_info("ssl_object").selected_alpn_protocol()
    writer.close()
    assert agreed == alpn[0], (alpn, agreed)
    return True


def _nas(address: str) -> dict[str, Any]:
    return tcp_config(
        {"nas": {"rule": "HostSNI(`nas.test`)", "service": "nas", "tls": {"passthrough": True}}},
        {"nas": lb(address)},
    )


def _static(tmp_path: Path, bypass: bool | None, tls_resolver: bool) -> dict[str, Any]:
    web: dict[str, Any] = {"address": "127.0.0.1:0"}
    if bypass is not None:
        web["allowACMEByPass"] = bypass
    static: dict[str, Any] = {
        "entryPoints": {"web": web},
        "providers": {"file": {"filename": str(tmp_path / "dynamic.yml"), "watch": True}},
        "log": {"level": "DEBUG"},
    }
    if tls_resolver:  # used by no router: nothing is ordered, the CA is never asked
        acme = {"email": "a@example.com", "storage": str(tmp_path / "acme.json"), "tlsChallenge": {}}
        static["certificatesResolvers"] = {"le": {"acme": acme | {"caServer": "https://127.0.0.1:9/dir"}}}
    return static


@pytest.mark.parametrize(
    ("bypass", "tls_resolver", "validator_reaches_backend"),
    [
        (True, True, True),  # asked for
        (None, False, True),  # no resolver answers TLS-ALPN-01: on, as in Traefik
        (False, False, True),  # false changes nothing then (Traefik: allowACMEByPass || !handlesTLSChallenge)
        (None, True, False),  # a resolver with tlsChallenge, no bypass: dockroute keeps acme-tls/1
    ],
    ids=["allowACMEByPass", "no-tlsChallenge-resolver", "false-without-tlsChallenge", "default"],
)
async def test_tls_alpn_validators_reach_a_passthrough_router_only_with_the_bypass(
    proxy, tmp_path, bypass, tls_resolver, validator_reaches_backend
):
    ca = trustme.CA()
    async with TCPServer(ssl_ctx=_backend(ca)) as nas:
        dr = await proxy(_nas(nas.address), static=_static(tmp_path, bypass, tls_resolver))
        assert "allowACMEByPass" not in dr.log()  # acted on: not reported as unsupported
        assert await _reaches_backend(dr.port, ca, ["http/1.1"])  # ordinary clients: always the router's
        assert await _reaches_backend(dr.port, ca, [ACME_TLS_1]) is validator_reaches_backend


async def test_with_the_bypass_dockroute_still_answers_its_own_tls_alpn_01(proxy, tmp_path):
    """With the bypass on, a name dockroute has a TLS-ALPN-01 challenge pending for is still answered by
    dockroute, even when a TCP router takes that name: here a TLS-terminating TCP router for
    db.example.com whose certificate Pebble validates through that very entry point. The validator for
    nas.test (no challenge of dockroute's) reaches the passthrough backend."""
    pebble_env.require_pebble()
    ca = trustme.CA()
    tls_port = pebble_env.free_port()
    async with TCPServer(ssl_ctx=_backend(ca)) as nas, TCPServer() as db:
        with pebble_env.run_pebble(tmp_path / "pebble", pebble_env.free_port(), tls_port=tls_port) as pebble:
            static = _static(tmp_path, True, tls_resolver=False)
            static["entryPoints"]["web"]["address"] = f"127.0.0.1:{tls_port}"
            acme = {"email": "a@example.com", "storage": str(tmp_path / "acme.json"), "tlsChallenge": {}}
            acme |= {"caServer": pebble.directory_url, "caCertificates": [pebble.ca_bundle]}
            static["certificatesResolvers"] = {"le": {"acme": acme}}
            dynamic = _nas(nas.address)
            dynamic["tcp"]["routers"]["db"] = {
                "rule": "HostSNI(`db.example.com`)",
                "service": "db",
                "tls": {"certResolver": "le"},
            }
            dynamic["tcp"]["services"]["db"] = lb(db.address)
            dr = await proxy(dynamic, static=static)
            root = tmp_path / "pebble-root.pem"
            root.write_bytes(pebble.root_pem())
            verify = ssl.create_default_context(cafile=str(root))

            async def echoed() -> bytes | None:  # through the TCP router, with the issued certificate
                try:
                    reader, writer = await asyncio.open_connection(
                        "127.0.0.1", tls_port, ssl=verify, server_hostname="db.example.com"
                    )
                except ssl.SSLCertVerificationError:
                    return None
                writer.write(b"ping")
                data = await asyncio.wait_for(reader.readexactly(4), 5)
                writer.close()
                return data

            assert await wait_for(echoed, timeout=30) == b"ping"
            assert "answering the TLS-ALPN-01 challenge for db.example.com" in dr.log()
            assert await _reaches_backend(tls_port, ca, [ACME_TLS_1])


def _http_static(tmp_path: Path, bypass: bool) -> dict[str, Any]:
    """``web`` redirecting to ``websecure``, HTTP-01 answered on ``web`` (a resolver used by no router:
    nothing is ordered), with or without ``allowACMEByPass`` on ``web``."""
    web: dict[str, Any] = {
        "address": "127.0.0.1:0",
        "http": {"redirections": {"entryPoint": {"to": "websecure", "scheme": "https"}}},
    }
    if bypass:
        web["allowACMEByPass"] = True
    acme = {
        "email": "a@example.com",
        "storage": str(tmp_path / "acme.json"),
        "caServer": "https://127.0.0.1:9/d",
    }
    return {
        "entryPoints": {"web": web, "websecure": {"address": "127.0.0.1:0"}},
        "certificatesResolvers": {"le": {"acme": acme | {"httpChallenge": {"entryPoint": "web"}}}},
        "providers": {"file": {"filename": str(tmp_path / "dynamic.yml"), "watch": True}},
        "log": {"level": "DEBUG"},
    }


@pytest.mark.parametrize("bypass", [True, False], ids=["allowACMEByPass", "default"])
async def test_http_01_requests_reach_a_users_router_only_with_the_bypass(backends, proxy, tmp_path, bypass):
    """Traefik's ``acme-http-bypass``: with ``allowACMEByPass``, dockroute's HTTP-01 answer takes the
    default priority (a user's router for those paths, e.g. a certificate manager of its own, wins) and
    the entry point's redirection leaves those paths alone; without it, dockroute answers them above
    every router, and everything else is redirected either way."""
    (manager,) = await backends("manager")
    rule = "Host(`app.test`) && PathPrefix(`/.well-known/acme-challenge/`)"
    dynamic = {
        "http": {
            "routers": {"manager": {"rule": rule, "entryPoints": ["web"], "service": "m"}},
            "services": {"m": {"loadBalancer": {"servers": [{"url": manager.url}]}}},
        }
    }
    dr = await proxy(dynamic, static=_http_static(tmp_path, bypass))
    assert "allowACMEByPass" not in dr.log()
    token = "/.well-known/acme-challenge/a-token"
    async with aiohttp.ClientSession() as http:

        async def get(host: str, path: str) -> tuple[int, str]:
            async with http.get(dr.url(path), headers={"Host": host}, allow_redirects=False) as r:
                return r.status, await r.text()

        status, body = await get("app.test", token)
        assert (status == 200 and '"server": "manager"' in body) is bypass, (status, body)
        other_status, _ = await get("other.test", token)  # no router of the user's: dockroute's answer
        assert other_status == 404  # an unknown token, answered, not redirected
        assert (await get("app.test", "/page"))[0] in (301, 308)  # the rest is redirected either way
