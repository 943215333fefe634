"""HTTPS on an entry point: certificates from the file provider chosen by SNI, the generated default for
unknown names, and plain HTTP on the same port for routers without `tls`."""

from __future__ import annotations

import asyncio
import ssl

import pytest
import trustme

from tests.integration.harness import routers, wait_for

pytestmark = pytest.mark.integration


async def https_get(port: int, sni: str, ctx: ssl.SSLContext) -> tuple[bytes, dict]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname=sni)
    cert = writer.get_extra_info("peercert") or {}
    alpn = writer.get_extra_info("ssl_object").selected_alpn_protocol()
    writer.write(f"GET / HTTP/1.1\r\nHost: {sni}\r\nConnection: close\r\n\r\n".encode())
    data = await reader.read()
    writer.close()
    return data, {"cert": cert, "alpn": alpn}


async def test_https_by_sni_default_certificate_and_plain_http_on_one_port(backends, proxy, tmp_path):
    secure, plain = await backends("secure", "plain")
    ca = trustme.CA()
    leaf = ca.issue_cert("app.test", "*.wild.test")
    cert_file, key_file = tmp_path / "app.pem", tmp_path / "app.key"
    cert_file.write_bytes(b"".join(b.bytes() for b in leaf.cert_chain_pems))
    key_file.write_bytes(leaf.private_key_pem.bytes())
    cfg = routers(
        ("plain", "Host(`app.test`)", "p"),
        services={"p": [plain.url], "s": [secure.url]},
    )
    cfg["http"]["routers"]["secure"] = {
        "rule": "Host(`app.test`) || Host(`x.wild.test`)",
        "service": "s",
        "tls": {},
    }
    cfg["tls"] = {"certificates": [{"certFile": str(cert_file), "keyFile": str(key_file)}]}
    dr = await proxy(cfg)

    trusting = ssl.create_default_context()
    ca.configure_trust(trusting)
    trusting.set_alpn_protocols(["h2", "http/1.1"])
    for sni in ("app.test", "x.wild.test"):
        data, info = await https_get(dr.port, sni, trusting)  # verifies the chain and the name
        assert data.startswith(b"HTTP/1.1 200") and b'"server": "secure"' in data, data[:200]
        assert info["alpn"] == "http/1.1"

    # the same port still speaks plain HTTP, to the routers without tls
    reader, writer = await asyncio.open_connection("127.0.0.1", dr.port)
    writer.write(b"GET / HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n")
    data = await reader.read()
    writer.close()
    assert data.startswith(b"HTTP/1.1 200") and b'"server": "plain"' in data

    # an unknown name gets the generated default certificate, never another site's
    anything = ssl.create_default_context()
    anything.check_hostname = False
    anything.verify_mode = ssl.CERT_NONE
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", dr.port, ssl=anything, server_hostname="other.test"
    )
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    writer.close()
    from cryptography import x509

    subject = x509.load_der_x509_certificate(der).subject.rfc4514_string()
    assert "DOCKROUTE DEFAULT CERT" in subject
    with pytest.raises(ssl.SSLCertVerificationError):
        await https_get(dr.port, "other.test", trusting)

    # X-Forwarded-Proto says https behind the TLS side
    data, _ = await https_get(dr.port, "app.test", trusting)
    assert b'"X-Forwarded-Proto": "https"' in data


async def test_certificate_added_to_the_watched_file_is_served(backends, proxy, tmp_path):
    (b,) = await backends("late")
    ca = trustme.CA()
    leaf = ca.issue_cert("late.test")
    (tmp_path / "late.pem").write_bytes(b"".join(x.bytes() for x in leaf.cert_chain_pems))
    (tmp_path / "late.key").write_bytes(leaf.private_key_pem.bytes())
    cfg = routers(services={"s": [b.url]})
    cfg["http"]["routers"]["late"] = {"rule": "Host(`late.test`)", "service": "s", "tls": {}}
    dr = await proxy(cfg)
    trusting = ssl.create_default_context()
    ca.configure_trust(trusting)
    with pytest.raises(ssl.SSLCertVerificationError):
        await https_get(dr.port, "late.test", trusting)  # only the default certificate so far
    cfg["tls"] = {
        "certificates": [{"certFile": str(tmp_path / "late.pem"), "keyFile": str(tmp_path / "late.key")}]
    }
    dr.write_dynamic(cfg)

    async def served() -> bool:
        try:
            data, _ = await https_get(dr.port, "late.test", trusting)
        except ssl.SSLCertVerificationError:
            return False
        return data.startswith(b"HTTP/1.1 200")

    await wait_for(served, timeout=3)
