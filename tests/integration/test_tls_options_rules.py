"""TLS options whatever the rule's shape, through the real process: an mTLS router is never reached
without a client certificate, and is reached with one.

Options are chosen by SNI from the ``Host()`` names of the rules (wherever they stand: wildcards, ``||``,
several arguments), and every HTTPS route keeps its options: a request over a connection made under other
options gets 421, whatever its Host header (Traefik's per-router SNI check). A router with options but no
``Host()`` at all is not routed, with one line.
"""

from __future__ import annotations

import asyncio
import ssl

import pytest
import trustme

from tests.integration.harness import routers, wait_for
from tests.integration.test_tls_options import client, write_pem

pytestmark = pytest.mark.integration

NAMES = ("open.test", "or.test", "re.test", "a.wild.test", "*.wild.test")


@pytest.fixture
def pki(tmp_path):
    server_ca, client_ca = trustme.CA(), trustme.CA()
    leaf = server_ca.issue_cert(*NAMES)
    return {
        "server_ca": server_ca,
        "client_ca": client_ca,
        "cert": write_pem(tmp_path / "srv.pem", leaf.cert_chain_pems),
        "key": write_pem(tmp_path / "srv.key", [leaf.private_key_pem]),
        "client_ca_file": write_pem(tmp_path / "client-ca.pem", [client_ca.cert_pem]),
    }


def config(pki, open_url: str, secret_url: str, rule: str | None, secret_tls: dict | None) -> dict:
    """``open`` (default options) on open.test, and ``secret`` with ``rule`` and ``secret_tls``."""
    cfg = routers(services={"open": [open_url], "secret": [secret_url]})
    cfg["http"]["routers"]["open"] = {"rule": "Host(`open.test`)", "service": "open", "tls": {}}
    if rule is not None:
        secret = {"rule": rule, "service": "secret"}
        if secret_tls is not None:
            secret["tls"] = secret_tls
        cfg["http"]["routers"]["secret"] = secret
    cfg["tls"] = {
        "certificates": [{"certFile": pki["cert"], "keyFile": pki["key"]}],
        "options": {"mtls": {"clientAuth": {"caFiles": [pki["client_ca_file"]]}}},
    }
    return cfg


async def exchange(port: int, ctx: ssl.SSLContext, sni: str, host: str, path: str = "/") -> bytes:
    """One request; b"" when the handshake (or, under TLS 1.3, the first read) is refused."""
    request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname=sni)
    except (ssl.SSLError, ConnectionError):
        return b""
    try:
        writer.write(request)
        return await asyncio.wait_for(reader.read(), 5)
    except (ssl.SSLError, ConnectionError):
        return b""
    finally:
        writer.close()


SHAPES = [
    # (rule, [(SNI, Host) a client without a certificate tries], SNI/Host reaching it with one, path)
    (
        "Host(`*.wild.test`)",
        [("open.test", "a.wild.test"), ("a.wild.test", "a.wild.test")],
        "a.wild.test",
        "/",
    ),
    (
        "Host(`or.test`) || PathPrefix(`/x`)",
        [("or.test", "or.test"), ("open.test", "open.test")],
        "or.test",
        "/x",
    ),
    (
        "Host(`or.test`, `*.wild.test`)",
        [("or.test", "or.test"), ("open.test", "a.wild.test")],
        "or.test",
        "/",
    ),
    ("Host(`OR.test`) && !Path(`/nope`)", [("open.test", "or.test")], "or.test", "/"),
]


@pytest.mark.parametrize("rule,attempts,good,path", SHAPES, ids=[s[0] for s in SHAPES])
async def test_an_mtls_router_of_any_host_shape_needs_the_client_certificate(
    proxy, backends, pki, rule, attempts, good, path
):
    open_b, secret = await backends("open", "secret")
    dr = await proxy(config(pki, open_b.url, secret.url, rule, {"options": "mtls"}))
    anonymous = client(pki)
    for sni, host in attempts:
        answer = await exchange(dr.port, anonymous, sni, host, path)
        assert secret.hits == 0, (sni, host, answer[:80])
        assert answer == b"" or answer.startswith(b"HTTP/1.1 421"), (sni, host, answer[:80])
    # The client-certificate check happened, rather than the router being unreachable for everyone.
    answer = await exchange(dr.port, client(pki, cert_from=pki["client_ca"]), good, good, path)
    assert answer.startswith(b"HTTP/1.1 200") and secret.hits == 1, answer[:80]
    # And the open host next to it still serves clients without a certificate.
    assert (await exchange(dr.port, anonymous, "open.test", "open.test")).startswith(b"HTTP/1.1 200")


@pytest.mark.parametrize("rule", ["HostRegexp(`^re\\.test$`)", "PathPrefix(`/x`)"])
async def test_a_router_with_options_and_no_host_is_not_routed_with_one_line(proxy, backends, pki, rule):
    open_b, secret = await backends("open", "secret")
    dr = await proxy(config(pki, open_b.url, secret.url, rule, {"options": "mtls"}))
    await wait_for(lambda: "router secret@file is not routed" in dr.log())
    assert "tls options mtls@file are chosen by SNI, and its rule names no Host()" in dr.log()
    for sni in ("re.test", "open.test"):
        answer = await exchange(dr.port, client(pki), sni, sni, "/x")
        assert secret.hits == 0 and not answer.startswith(b"HTTP/1.1 200 OK\r\nX-Backend: secret"), answer[
            :80
        ]


async def test_entry_point_options_reach_a_wildcard_router_without_tls_of_its_own(proxy, backends, pki):
    open_b, secret = await backends("open", "secret")
    dr = await proxy(
        config(pki, open_b.url, secret.url, "Host(`*.wild.test`)", None),
        static={
            "entryPoints": {"web": {"address": "127.0.0.1:0", "http": {"tls": {"options": "mtls@file"}}}},
            "providers": {"file": {"filename": "dynamic.yml", "watch": True}},
            "log": {"level": "DEBUG"},
        },
    )
    for sni in ("a.wild.test", "open.test"):
        answer = await exchange(dr.port, client(pki), sni, "a.wild.test")
        assert secret.hits == 0, (sni, answer[:80])
    answer = await exchange(dr.port, client(pki, cert_from=pki["client_ca"]), "a.wild.test", "a.wild.test")
    assert answer.startswith(b"HTTP/1.1 200") and secret.hits == 1, answer[:80]


async def _request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str) -> bytes:
    """One keep-alive request on an open connection: the response head, or b"" once it is closed."""
    writer.write(f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
        return b""
    length = next(
        (
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        ),
        0,
    )
    await reader.readexactly(length)
    return head


@pytest.mark.parametrize("name", ["mtls", "default"])
async def test_options_tightened_in_place_close_the_connections_made_under_the_old_ones(
    proxy, backends, pki, name
):
    """A kept-alive connection made when a client certificate was optional does not keep being served once
    a reload makes it required (same options name, or the default options redefined)."""
    open_b, secret = await backends("open", "secret")
    host = "or.test" if name == "mtls" else "open.test"
    cfg = config(pki, open_b.url, secret.url, "Host(`or.test`)", {"options": "mtls"})
    cas = [pki["client_ca_file"]]
    optional = {"caFiles": cas, "clientAuthType": "VerifyClientCertIfGiven"}
    cfg["tls"]["options"][name] = {"clientAuth": optional}
    dr = await proxy(cfg)
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", dr.port, ssl=client(pki), server_hostname=host
    )
    try:
        assert (await _request(reader, writer, host)).startswith(b"HTTP/1.1 200")
        cfg["tls"]["options"][name] = {"clientAuth": {"caFiles": cas}}  # RequireAndVerifyClientCert
        dr.write_dynamic(cfg)

        async def new_clients_refused() -> bool:
            return await exchange(dr.port, client(pki), host, host) == b""

        await wait_for(new_clients_refused, timeout=10)
        hits = (open_b.hits, secret.hits)
        assert await _request(reader, writer, host) == b""  # closed: nothing more is served on it
        assert (open_b.hits, secret.hits) == hits
        assert "connections made under the old ones are closed" in dr.log()
    finally:
        writer.close()
