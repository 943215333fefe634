"""``tls.options`` through the real process: protocol versions, cipher suites, client certificates (mTLS),
chosen per SNI on one entry point; Traefik's 421 for domain fronting; sniStrict; and an options set with a
typo left out (its router not routed, the others serving)."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest
import trustme

from tests.integration.harness import Dockroute, routers

pytestmark = pytest.mark.integration

HOSTS = ("open.test", "mtls.test", "new.test", "old.test")


def write_pem(path: Path, blobs) -> str:
    path.write_bytes(b"".join(b.bytes() for b in blobs))
    return str(path)


@pytest.fixture
def pki(tmp_path):
    """A server CA with one certificate for every host, and a client CA (plus a stranger one)."""
    server_ca, client_ca, other_ca = trustme.CA(), trustme.CA(), trustme.CA()
    leaf = server_ca.issue_cert(*HOSTS)
    return {
        "server_ca": server_ca,
        "client_ca": client_ca,
        "other_ca": other_ca,
        "cert": write_pem(tmp_path / "srv.pem", leaf.cert_chain_pems),
        "key": write_pem(tmp_path / "srv.key", [leaf.private_key_pem]),
        "client_ca_file": write_pem(tmp_path / "client-ca.pem", [client_ca.cert_pem]),
    }


def config(pki, backend_url: str, options: dict, router_options: dict[str, str]) -> dict:
    """One router per host (all to the same backend), each with the options named in ``router_options``."""
    cfg = routers(services={"s": [backend_url]})
    for host in HOSTS:
        name = host.split(".")[0]
        tls = {"options": router_options[host]} if host in router_options else {}
        cfg["http"]["routers"][name] = {"rule": f"Host(`{host}`)", "service": "s", "tls": tls}
    cfg["tls"] = {"certificates": [{"certFile": pki["cert"], "keyFile": pki["key"]}], "options": options}
    return cfg


def client(pki, *, cert_from: trustme.CA | None = None, maximum=None, minimum=None) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    pki["server_ca"].configure_trust(ctx)
    if cert_from is not None:
        cert_from.issue_cert("client@test").configure_cert(ctx)
    if maximum is not None:
        ctx.maximum_version = maximum
    if minimum is not None:
        ctx.minimum_version = minimum
    return ctx


async def get(
    port: int, ctx: ssl.SSLContext, sni: str, host: str | None = None
) -> tuple[bytes, ssl.SSLObject]:
    """One HTTPS request (SNI ``sni``, Host ``host``); the whole answer and the TLS object."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname=sni)
    try:
        writer.write(f"GET / HTTP/1.1\r\nHost: {host or sni or 'x'}\r\nConnection: close\r\n\r\n".encode())
        data = await asyncio.wait_for(reader.read(), 5)
        return data, writer.get_extra_info("ssl_object")
    finally:
        writer.close()


async def refused(port: int, ctx: ssl.SSLContext, sni: str) -> bool:
    """The handshake (or, for TLS 1.3 client certificates, the first read) fails: no answer is served."""
    try:
        data, _ = await get(port, ctx, sni)
    except (ssl.SSLError, ConnectionError):
        return True
    return not data.startswith(b"HTTP/1.1 200")


async def start(proxy, backends, pki, options, router_options) -> Dockroute:
    (b,) = await backends("b")
    return await proxy(config(pki, b.url, options, router_options))


async def test_min_version_tls13_refuses_a_tls12_client_per_sni(proxy, backends, pki):
    dr = await start(proxy, backends, pki, {"modern": {"minVersion": "VersionTLS13"}}, {"new.test": "modern"})
    tls12 = client(pki, maximum=ssl.TLSVersion.TLSv1_2)
    assert await refused(dr.port, tls12, "new.test")
    data, obj = await get(dr.port, client(pki), "new.test")
    assert data.startswith(b"HTTP/1.1 200") and obj.version() == "TLSv1.3"
    # another host on the same entry point keeps the default options: TLS 1.2 is still served there
    data, obj = await get(dr.port, tls12, "open.test")
    assert data.startswith(b"HTTP/1.1 200") and obj.version() == "TLSv1.2"


async def test_mtls_per_sni_and_421_on_domain_fronting(proxy, backends, pki):
    options = {
        "mtls": {
            "clientAuth": {"caFiles": [pki["client_ca_file"]], "clientAuthType": "RequireAndVerifyClientCert"}
        }
    }
    dr = await start(proxy, backends, pki, options, {"mtls.test": "mtls"})
    # TLS 1.2 too, where the refusal is in the handshake itself (TLS 1.3 reports it on the first read)
    for maximum in (None, ssl.TLSVersion.TLSv1_2):
        assert await refused(dr.port, client(pki, maximum=maximum), "mtls.test")
        assert await refused(dr.port, client(pki, cert_from=pki["other_ca"], maximum=maximum), "mtls.test")
        data, _ = await get(dr.port, client(pki, cert_from=pki["client_ca"], maximum=maximum), "mtls.test")
        assert data.startswith(b"HTTP/1.1 200"), data[:100]
    # the default-options host of the same entry point still serves clients without a certificate
    data, _ = await get(dr.port, client(pki), "open.test")
    assert data.startswith(b"HTTP/1.1 200")
    # domain fronting: SNI of the open host (no client certificate asked), Host of the mTLS one
    data, _ = await get(dr.port, client(pki), "open.test", host="mtls.test")
    assert data.startswith(b"HTTP/1.1 421"), data[:100]
    # and the other way round: an mTLS connection may not reach a host of other options either
    data, _ = await get(dr.port, client(pki, cert_from=pki["client_ca"]), "mtls.test", host="open.test")
    assert data.startswith(b"HTTP/1.1 421"), data[:100]


async def test_sni_strict_refuses_unknown_names(proxy, backends, pki):
    dr = await start(proxy, backends, pki, {"default": {"sniStrict": True}}, {})
    anything = ssl.create_default_context()
    anything.check_hostname = False
    anything.verify_mode = ssl.CERT_NONE
    # refused in the handshake (the alert is sent, but asyncio closes before flushing it: a reset)
    with pytest.raises((ssl.SSLError, ConnectionError)):
        await get(dr.port, anything, "unknown.test")
    with pytest.raises((ssl.SSLError, ConnectionError)):
        await get(dr.port, anything, None)  # no SNI at all
    data, _ = await get(dr.port, client(pki), "open.test")
    assert data.startswith(b"HTTP/1.1 200")


async def test_a_tls12_client_sees_only_the_configured_cipher_suite(proxy, backends, pki):
    suite = "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"  # trustme's leaf keys are EC
    dr = await start(proxy, backends, pki, {"one": {"cipherSuites": [suite]}}, {"old.test": "one"})
    tls12 = client(pki, maximum=ssl.TLSVersion.TLSv1_2)
    tls12.set_ciphers("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384")
    _, obj = await get(dr.port, tls12, "old.test")
    assert obj.cipher()[0] == "ECDHE-ECDSA-AES256-GCM-SHA384"
    _, obj = await get(dr.port, tls12, "open.test")  # the default options prefer AES128 here
    assert obj.cipher()[0] == "ECDHE-ECDSA-AES128-GCM-SHA256"
    only_other = client(pki, maximum=ssl.TLSVersion.TLSv1_2)
    only_other.set_ciphers("ECDHE-ECDSA-AES128-GCM-SHA256")
    assert await refused(dr.port, only_other, "old.test")


async def test_an_options_set_with_a_typo_is_left_out_and_its_router_not_routed(proxy, backends, pki):
    options = {"typo": {"minVersion": "VersionTLS31"}, "modern": {"minVersion": "VersionTLS13"}}
    dr = await start(proxy, backends, pki, options, {"old.test": "typo", "new.test": "modern"})
    log = dr.log()
    assert "tls.options.typo.minVersion" in log and "VersionTLS31" in log
    assert "router old@file is not routed" in log and "typo@file" in log
    assert await refused(dr.port, client(pki), "old.test")
    for host in ("new.test", "open.test"):
        data, _ = await get(dr.port, client(pki), host)
        assert data.startswith(b"HTTP/1.1 200"), host


async def slow_hello_get(port: int, ctx: ssl.SSLContext, sni: str) -> bytes:
    """An HTTPS GET whose ClientHello arrives in two parts, the second after the server's 2 s limit for
    reading it before the handshake (the delay is the behaviour under test, not a synchronisation)."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=sni)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        with pytest.raises(ssl.SSLWantReadError):
            obj.do_handshake()
        hello = outgoing.read()
        writer.write(hello[:20])
        await writer.drain()
        await asyncio.sleep(2.5)
        writer.write(hello[20:])
        while True:
            data = await asyncio.wait_for(reader.read(65536), 5)
            if not data:
                raise ConnectionResetError("closed during the handshake")
            incoming.write(data)
            try:
                obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                writer.write(outgoing.read())
        obj.write(f"GET / HTTP/1.1\r\nHost: {sni}\r\nConnection: close\r\n\r\n".encode())
        writer.write(outgoing.read())
        answer = b""
        while not answer.startswith(b"HTTP/1.1") or b"\r\n\r\n" not in answer:
            data = await asyncio.wait_for(reader.read(65536), 5)
            if not data:
                break
            incoming.write(data)
            try:
                answer += obj.read(65536)
            except ssl.SSLWantReadError:
                pass
        return answer
    finally:
        writer.close()


async def test_a_hello_too_slow_to_be_read_never_reaches_mtls_hosts_without_their_options(
    proxy, backends, pki
):
    """The options are chosen from the ClientHello read before the handshake; a client whose hello cannot
    be read in time gets the default options, which then refuse the names of other options."""
    options = {"mtls": {"clientAuth": {"caFiles": [pki["client_ca_file"]]}}}
    dr = await start(proxy, backends, pki, options, {"mtls.test": "mtls"})
    tls12 = client(pki, maximum=ssl.TLSVersion.TLSv1_2)
    with pytest.raises((ssl.SSLError, ConnectionError)):
        await slow_hello_get(dr.port, tls12, "mtls.test")
    assert (await slow_hello_get(dr.port, tls12, "open.test")).startswith(b"HTTP/1.1 200")


async def test_a_default_set_with_a_typo_fails_closed(proxy, backends, pki):
    """Traefik has no default TLS configuration then, and HTTPS fails; serving the built-in defaults
    instead could drop what the set asked for (here: client certificates everywhere)."""
    options = {"default": {"clientAuth": {"caFiles": [pki["client_ca_file"]]}, "sniStrict": "yes please"}}
    dr = await start(proxy, backends, pki, options, {})
    assert "tls.options.default.sniStrict" in dr.log()
    for host in ("open.test", "new.test"):
        assert await refused(dr.port, client(pki, cert_from=pki["client_ca"]), host)
        assert await refused(dr.port, client(pki), host)
