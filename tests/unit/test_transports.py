"""serversTransport TLS contexts, checked by real handshakes against loopback TLS servers (trustme CAs)."""

from __future__ import annotations

import asyncio
import datetime
import logging
import ssl
from pathlib import Path

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from discover.model import CertificateFile, ServersTransport
from router.transports import (
    DEFAULT,
    TransportUnusable,
    build_transports,
    make_client_context,
    refusing_context,
    uri_matches,
)


async def tls_server(
    server_ctx: ssl.SSLContext, response: bytes = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
) -> tuple[asyncio.Server, int, list[dict]]:
    """A loopback TLS server answering every request with ``response``; records each connection's peer
    certificate (client certificate, when it asked for one)."""
    seen: list[dict] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sslobj = writer.get_extra_info("ssl_object")
        seen.append(sslobj.getpeercert() if sslobj is not None else {})
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                writer.write(response)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_ctx)
    return server, server.sockets[0].getsockname()[1], seen


def server_context(ca: trustme.CA, *names: str, client_ca: trustme.CA | None = None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert(*names).configure_cert(ctx)
    if client_ca is not None:
        ctx.verify_mode = ssl.CERT_REQUIRED
        client_ca.configure_trust(ctx)
    return ctx


async def handshake(ctx: ssl.SSLContext, port: int, server_hostname: str = "127.0.0.1") -> None:
    """Connect, send one request and read the answer: a rejected client certificate (TLS 1.3 reports it
    after the handshake) surfaces here too."""
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=ctx, server_hostname=server_hostname
    )
    try:
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
    finally:
        writer.close()


def uri_leaf(ca: trustme.CA, uri: str, ip: str = "127.0.0.1") -> tuple[bytes, bytes]:
    """A leaf certificate (PEM) with an IP SAN and a URI SAN, signed by ``ca`` (trustme has no URI SANs)."""
    import ipaddress

    ca_key = serialization.load_pem_private_key(ca.private_key_pem.bytes(), None)
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem.bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "uri leaf")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address(ip)), x509.UniformResourceIdentifier(uri)]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


# -- verification settings ---------------------------------------------------------------------------------


async def test_root_cas_file_replaces_the_system_roots(tmp_path: Path):
    ca, other = trustme.CA(), trustme.CA()
    server, port, _ = await tls_server(server_context(ca, "127.0.0.1"))
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    ctx = make_client_context(ServersTransport(root_cas=(str(ca_file),)))
    await handshake(ctx, port)
    assert len(ctx.get_ca_certs()) == 1  # that CA alone: the system's roots are not added to it
    # Another CA only: the backend's certificate is not trusted (no fallback to any other roots).
    with pytest.raises(ssl.SSLCertVerificationError):
        await handshake(
            make_client_context(ServersTransport(root_cas=(other.cert_pem.bytes().decode(),))), port
        )
    with pytest.raises(ssl.SSLCertVerificationError):  # the system roots do not know a trustme CA
        await handshake(make_client_context(ServersTransport()), port)
    server.close()


async def test_inline_root_ca_and_server_name_verify_another_name():
    ca = trustme.CA()
    server, port, _ = await tls_server(server_context(ca, "backend.internal"))
    ctx = make_client_context(ServersTransport(root_cas=(ca.cert_pem.bytes().decode(),)))
    with pytest.raises(ssl.SSLCertVerificationError):  # the URL host 127.0.0.1 is not in the certificate
        await handshake(ctx, port)
    await handshake(ctx, port, server_hostname="backend.internal")
    server.close()


async def test_insecure_skip_verify_accepts_any_certificate():
    server, port, _ = await tls_server(server_context(trustme.CA(), "elsewhere.example"))
    ctx = make_client_context(ServersTransport(insecure_skip_verify=True))
    assert (ctx.verify_mode, ctx.check_hostname) == (ssl.CERT_NONE, False)
    await handshake(ctx, port)
    server.close()


async def test_peer_cert_uri_must_match_even_with_insecure_skip_verify():
    ca = trustme.CA()
    cert_pem, key_pem = uri_leaf(ca, "spiffe://cluster.local/ns/app/sa/web")
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain(*_files(cert_pem, key_pem))
    server, port, _ = await tls_server(sctx)
    roots = (ca.cert_pem.bytes().decode(),)
    good = ServersTransport(root_cas=roots, peer_cert_uri="spiffe://cluster.local/ns/app/sa/web")
    await handshake(make_client_context(good), port)
    # The host part is not compared (Traefik leaves it to name constraints), the path is, case-insensitively.
    await handshake(
        make_client_context(ServersTransport(root_cas=roots, peer_cert_uri="SPIFFE://x/NS/app/sa/web")), port
    )
    bad = ServersTransport(root_cas=roots, peer_cert_uri="spiffe://cluster.local/ns/app/sa/db")
    with pytest.raises(ssl.SSLCertVerificationError, match="peerCertURI"):
        await handshake(make_client_context(bad), port)
    # insecureSkipVerify skips the name, not the chain nor the URI (Traefik's VerifyPeerCertificate).
    skip_bad = ServersTransport(root_cas=roots, insecure_skip_verify=True, peer_cert_uri=bad.peer_cert_uri)
    with pytest.raises(ssl.SSLCertVerificationError, match="peerCertURI"):
        await handshake(make_client_context(skip_bad), port, server_hostname="not-the-name")
    skip_ok = ServersTransport(root_cas=roots, insecure_skip_verify=True, peer_cert_uri=good.peer_cert_uri)
    await handshake(make_client_context(skip_ok), port, server_hostname="not-the-name")
    untrusted = ServersTransport(
        root_cas=(trustme.CA().cert_pem.bytes().decode(),),
        insecure_skip_verify=True,
        peer_cert_uri=good.peer_cert_uri,
    )
    with pytest.raises(ssl.SSLCertVerificationError):
        await handshake(make_client_context(untrusted), port)
    server.close()


def _files(cert_pem: bytes, key_pem: bytes) -> tuple[str, str]:
    import tempfile

    d = Path(tempfile.mkdtemp())
    (d / "c.pem").write_bytes(cert_pem)
    (d / "k.pem").write_bytes(key_pem)
    return str(d / "c.pem"), str(d / "k.pem")


def test_uri_matches_like_traefik():
    assert uri_matches("spiffe://a/x", "spiffe://b/x")
    assert uri_matches("spiffe://a/X", "SPIFFE://a/x")
    assert not uri_matches("spiffe://a/x", "spiffe://a/y")
    assert not uri_matches("spiffe://a/x", "https://a/x")


# -- client certificates -----------------------------------------------------------------------------------


@pytest.mark.parametrize("inline", [False, True], ids=["files", "inline-pem"])
async def test_client_certificate_is_presented(tmp_path: Path, inline: bool):
    ca, client_ca = trustme.CA(), trustme.CA()
    server, port, seen = await tls_server(server_context(ca, "127.0.0.1", client_ca=client_ca))
    leaf = client_ca.issue_cert("client.example")
    if inline:
        cert = CertificateFile(
            leaf.cert_chain_pems[0].bytes().decode(), leaf.private_key_pem.bytes().decode()
        )
    else:
        leaf.cert_chain_pems[0].write_to_path(str(tmp_path / "c.pem"))
        leaf.private_key_pem.write_to_path(str(tmp_path / "k.pem"))
        cert = CertificateFile(str(tmp_path / "c.pem"), str(tmp_path / "k.pem"))
    roots = (ca.cert_pem.bytes().decode(),)
    await handshake(make_client_context(ServersTransport(root_cas=roots, certificates=(cert,))), port)
    assert seen[-1]["subjectAltName"] == (("DNS", "client.example"),)
    with pytest.raises((ssl.SSLError, ConnectionError, asyncio.IncompleteReadError)):
        await handshake(make_client_context(ServersTransport(root_cas=roots)), port)
    server.close()


def test_encrypted_key_is_refused_without_prompting(tmp_path: Path):
    leaf = trustme.CA().issue_cert("client.example")
    key = serialization.load_pem_private_key(leaf.private_key_pem.bytes(), None)
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )
    cert = CertificateFile(leaf.cert_chain_pems[0].bytes().decode(), encrypted.decode())
    with pytest.raises(TransportUnusable, match="encrypted"):
        make_client_context(ServersTransport(certificates=(cert,)))


def test_more_than_one_client_certificate_is_named_in_a_warning(caplog):
    ca = trustme.CA()
    a, b = ca.issue_cert("a.example"), ca.issue_cert("b.example")
    certs = tuple(
        CertificateFile(x.cert_chain_pems[0].bytes().decode(), x.private_key_pem.bytes().decode())
        for x in (a, b)
    )
    with caplog.at_level(logging.WARNING, logger="dockroute.transport"):
        make_client_context(ServersTransport(certificates=certs), "two@file")
    assert "serversTransport two@file: only the first of 2 client certificates" in caplog.text


# -- the table ---------------------------------------------------------------------------------------------


def test_unreadable_files_make_the_transport_unusable_with_one_line(tmp_path: Path, caplog):
    missing = str(tmp_path / "nope.pem")
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")
    named = {
        "noca@file": ServersTransport(root_cas=(missing,)),
        "junk@file": ServersTransport(root_cas=(str(garbage),)),
        "nocert@file": ServersTransport(certificates=(CertificateFile(missing, missing),)),
        "fine@file": ServersTransport(insecure_skip_verify=True),
    }
    with caplog.at_level(logging.ERROR, logger="dockroute.transport"):
        table = build_transports(named, ServersTransport())
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3
    for name in ("noca@file", "junk@file", "nocert@file"):
        t = table.get(name)
        assert t is not None and t.context is None and t.error
        assert sum(f"serversTransport {name} is unusable" in line for line in lines) == 1
    assert missing in table.get("noca@file").error  # type: ignore[union-attr]
    fine = table.get("fine@file")
    assert fine is not None and fine.context is not None and not fine.error
    # Rebuilt with the same settings: carried over, not logged again.
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="dockroute.transport"):
        again = build_transports(named, ServersTransport(), previous=table)
    assert not caplog.records
    assert again.get("noca@file") is table.get("noca@file") and again.get("fine@file") is fine


def test_unchanged_transports_are_reused_and_changed_ones_rebuilt():
    default = ServersTransport()
    first = build_transports({"a@file": ServersTransport(insecure_skip_verify=True)}, default)
    second = build_transports(
        {"a@file": ServersTransport(insecure_skip_verify=True), "b@file": ServersTransport(server_name="x")},
        default,
        previous=first,
    )
    assert second.default is first.default and second.get("a@file") is first.get("a@file")
    third = build_transports({"a@file": ServersTransport(dial_timeout=1)}, default, previous=second)
    assert third.get("a@file") is not second.get("a@file") and third.get("b@file") is None
    assert third.get(None) is third.get("") is third.get(DEFAULT) is third.default
    assert second.get("b@file").server_name == "x" and first.default.server_name is None  # type: ignore[union-attr]


async def test_refusing_context_fails_every_handshake_naming_why():
    server, port, seen = await tls_server(server_context(trustme.CA(), "127.0.0.1"))
    with pytest.raises(ssl.SSLError, match="serversTransport x@file is unusable"):
        await handshake(refusing_context("serversTransport x@file is unusable"), port)
    server.close()


# -- the service's transport reaches the pool key, and a missing one refuses the router ---------------------


def _cfg(transport: str | None, named: dict[str, ServersTransport]):
    from discover.model import DynamicConfig, LoadBalancer, Router, Server, Service, Weighted, WeightedRef

    lb = LoadBalancer(servers=(Server("https://127.0.0.1:8443"),), servers_transport=transport)
    return DynamicConfig(
        routers={
            "r@file": Router("r@file", "Host(`a`)", "s@file"),
            "w@file": Router("w@file", "Host(`b`)", "split@file"),
        },
        services={
            "s@file": Service("s@file", load_balancer=lb),
            "split@file": Service("split@file", weighted=Weighted((WeightedRef("s@file"),))),
        },
        servers_transports=named,
    )


def test_a_router_whose_service_names_a_missing_transport_is_refused(caplog):
    from router.compile import compile_config
    from router.settings import EntryPoint

    eps = (EntryPoint("web", "127.0.0.1:0"),)
    with caplog.at_level(logging.ERROR, logger="dockroute.router"):
        compiled = compile_config(_cfg("skip@file", {}), eps)
    assert compiled.errors == {
        "r@file": "service s@file uses serversTransport skip@file, which does not exist",
        "w@file": "service s@file uses serversTransport skip@file, which does not exist",
    }
    assert "router r@file is not routed: service s@file uses serversTransport skip@file" in caplog.text
    ok = compile_config(_cfg("skip@file", {"skip@file": ServersTransport(insecure_skip_verify=True)}), eps)
    assert ok.errors == {}
    assert compile_config(_cfg(DEFAULT, {}), eps).errors == {}
    assert ok.balancers["s@file"].servers[0].key == ("https", "127.0.0.1", 8443, "skip@file")


def test_a_service_moving_to_another_transport_gets_fresh_servers():
    from router.balancer import build_balancers

    first = build_balancers(_cfg(None, {}).services)
    assert first["s@file"].servers[0].key == ("https", "127.0.0.1", 8443, "")
    first["s@file"].servers[0].healthy = False
    second = build_balancers(_cfg("skip@file", {}).services, previous=first)
    up = second["s@file"].servers[0]
    assert up.key == ("https", "127.0.0.1", 8443, "skip@file") and up.healthy


def test_peer_cert_uri_is_checked_under_uvloop_too():
    """The proxy runs on uvloop when it is installed: its TLS layer must drive the checking SSLObject."""
    uvloop = pytest.importorskip("uvloop")

    async def main() -> None:
        ca = trustme.CA()
        sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        sctx.load_cert_chain(*_files(*uri_leaf(ca, "spiffe://td/web")))
        server, port, _ = await tls_server(sctx)
        roots = (ca.cert_pem.bytes().decode(),)
        await handshake(
            make_client_context(ServersTransport(root_cas=roots, peer_cert_uri="spiffe://td/web")), port
        )
        with pytest.raises(ssl.SSLError, match="peerCertURI"):
            bad = ServersTransport(root_cas=roots, peer_cert_uri="spiffe://td/db")
            await handshake(make_client_context(bad), port)
        server.close()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())
