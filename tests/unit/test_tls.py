"""router.tls: certificate selection by SNI over real TLS handshakes on loopback."""

from __future__ import annotations

import asyncio
import logging
import os
import ssl

import pytest
import trustme
from cryptography import x509
from cryptography.x509.oid import NameOID

from router.tls import (
    DEFAULT_CERT_CN,
    CertificateStore,
    CertKeyPair,
    load_pem_files,
    self_signed_default,
    server_context,
)


def pair_of(leaf: trustme.LeafCert) -> CertKeyPair:
    return CertKeyPair(
        cert_pem=b"".join(blob.bytes() for blob in leaf.cert_chain_pems),
        key_pem=leaf.private_key_pem.bytes(),
    )


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def pairs(ca):
    return {
        "a": pair_of(ca.issue_cert("a.example.com")),
        "wild": pair_of(ca.issue_cert("*.example.com")),
        "other": pair_of(ca.issue_cert("other.test", "www.other.test")),
    }


@pytest.fixture(scope="module")
def store(pairs) -> CertificateStore:
    return CertificateStore([pairs["a"], pairs["wild"], pairs["other"]])


@pytest.fixture
async def server(store):
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            writer.write(b"ok")
            await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    srv = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=store.default_context)
    yield srv.sockets[0].getsockname()[1]
    srv.close()
    await srv.wait_closed()


def trusting(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ca.configure_trust(ctx)
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    return ctx


def unverified() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


async def handshake(
    port: int, ctx: ssl.SSLContext, sni: str | None
) -> tuple[x509.Certificate, ssl.SSLObject]:
    """Connect with ``sni`` (None: no SNI extension); return the served leaf and the client's SSL object."""
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=ctx, server_hostname=sni if sni is not None else ""
    )
    try:
        assert await reader.read() == b"ok"
        sslobj = writer.get_extra_info("ssl_object")
        return x509.load_der_x509_certificate(sslobj.getpeercert(binary_form=True)), sslobj
    finally:
        writer.close()


def names(cert: x509.Certificate) -> set[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        return set(san.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        return {a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)}


async def test_exact_sni_gets_its_certificate(server, ca):
    cert, sslobj = await handshake(server, trusting(ca), "a.example.com")
    assert names(cert) == {"a.example.com"}
    cert, _ = await handshake(server, trusting(ca), "www.other.test")
    assert names(cert) == {"other.test", "www.other.test"}


async def test_exact_name_beats_wildcard_and_wildcard_matches_one_label(server, ca):
    cert, _ = await handshake(server, trusting(ca), "b.example.com")
    assert names(cert) == {"*.example.com"}
    cert, _ = await handshake(server, trusting(ca), "a.example.com")
    assert names(cert) == {"a.example.com"}


@pytest.mark.parametrize("sni", ["x.b.example.com", "example.com", "unknown.test", None])
async def test_unmatched_or_missing_sni_gets_the_default(server, sni):
    cert, _ = await handshake(server, unverified(), sni)
    assert names(cert) == {DEFAULT_CERT_CN}


async def test_alpn_http11_negotiated(server, ca):
    _, sslobj = await handshake(server, trusting(ca), "a.example.com")
    assert sslobj.selected_alpn_protocol() == "http/1.1"
    assert sslobj.version() in ("TLSv1.2", "TLSv1.3")


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion:DeprecationWarning")
async def test_tls12_accepted_tls11_refused(server, ca):
    ctx = trusting(ca)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    _, sslobj = await handshake(server, ctx, "a.example.com")
    assert sslobj.version() == "TLSv1.2"

    old = unverified()
    old.set_ciphers("DEFAULT:@SECLEVEL=0")  # let this client offer TLS 1.1 at all
    old.minimum_version = ssl.TLSVersion.TLSv1
    old.maximum_version = ssl.TLSVersion.TLSv1_1
    with pytest.raises((ssl.SSLError, ConnectionError)) as e:
        await handshake(server, old, "a.example.com")
    # the server refused the hello (alert or reset), not the client failing to build one
    assert "NO_PROTOCOLS_AVAILABLE" not in str(e.value)


def test_context_for_rules_and_cache(store, pairs):
    a = store.context_for("a.example.com")
    assert store.context_for("A.Example.COM.") is a
    assert store.context_for("a.example.com") is a
    wild = store.context_for("z.example.com")
    assert wild is not a and wild is not store.default_context
    assert store.context_for("z.y.example.com") is store.default_context
    assert store.context_for("") is store.default_context
    assert store.context_for(None) is store.default_context
    assert store.names == {"a.example.com", "*.example.com", "other.test", "www.other.test"}
    assert store.default_context.sni_callback == store.sni_callback


def test_cache_is_bounded(pairs):
    small = CertificateStore([pairs["a"]], cache_size=2)
    for i in range(10):
        assert small.context_for(f"n{i}.test") is small.default_context
    assert len(small._cache) == 2
    assert small.context_for("a.example.com") is small.context_for("a.example.com")


def test_bad_pairs_skipped_with_one_error_each(ca, pairs, caplog):
    other_key = ca.issue_cert("b.example.com").private_key_pem.bytes()
    mismatched = CertKeyPair(pair_of(ca.issue_cert("mismatch.test")).cert_pem, other_key)
    garbage = CertKeyPair(b"not a certificate", b"not a key")
    with caplog.at_level(logging.ERROR, logger="dockroute.tls"):
        s = CertificateStore([mismatched, garbage, pairs["other"]])
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 2
    assert "mismatch.test" in errors[0].getMessage()
    assert s.names == {"other.test", "www.other.test"}
    assert s.context_for("mismatch.test") is s.default_context


def test_bad_default_falls_back_to_self_signed(pairs, caplog):
    bad = CertKeyPair(pairs["a"].cert_pem, pairs["other"].key_pem)
    with caplog.at_level(logging.ERROR, logger="dockroute.tls"):
        s = CertificateStore([], default=bad)
    assert len(caplog.records) == 1
    assert isinstance(s.default_context, ssl.SSLContext)


async def test_custom_default(pairs, ca):
    s = CertificateStore([pairs["a"]], default=pairs["other"])
    assert s.context_for("nope.test") is s.default_context
    srv = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0, ssl=s.default_context)
    try:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", srv.sockets[0].getsockname()[1], ssl=trusting(ca), server_hostname="other.test"
        )
        cert = x509.load_der_x509_certificate(
            writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        )
        writer.close()
        assert "other.test" in names(cert)
    finally:
        srv.close()
        await srv.wait_closed()


def test_self_signed_default():
    pair = self_signed_default()
    cert = x509.load_pem_x509_certificate(pair.cert_pem)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == DEFAULT_CERT_CN
    assert cert.public_key().curve.name == "secp256r1"
    days = (cert.not_valid_after_utc - cert.not_valid_before_utc).days
    assert 364 <= days <= 366
    ctx = server_context(pair)
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2


def test_server_context_leaves_no_key_file(pairs, tmp_path, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    server_context(pairs["a"])
    with pytest.raises(ssl.SSLError):
        server_context(CertKeyPair(pairs["a"].cert_pem, pairs["other"].key_pem))
    assert os.listdir(tmp_path) == []


def test_load_pem_files_path_and_inline(pairs, tmp_path):
    cert_path, key_path = tmp_path / "c.pem", tmp_path / "k.pem"
    cert_path.write_bytes(pairs["a"].cert_pem)
    key_path.write_bytes(pairs["a"].key_pem)
    from_files = load_pem_files(str(cert_path), str(key_path))
    assert from_files == pairs["a"]
    inline = load_pem_files(pairs["a"].cert_pem.decode(), "\n  " + pairs["a"].key_pem.decode())
    server_context(inline)  # parses and matches
    s = CertificateStore([from_files, inline])
    assert s.names == {"a.example.com"}
    with pytest.raises(OSError):
        load_pem_files(str(tmp_path / "missing.pem"), str(key_path))


def test_a_rebuilt_store_reuses_the_contexts_of_unchanged_pairs(ca, pairs, monkeypatch):
    """Building contexts is file and crypto work: a store replacing another builds only what is new."""
    import router.tls as tls_module

    first = CertificateStore([pairs["a"], pairs["other"]])
    built: list[CertKeyPair] = []
    real = tls_module.server_context

    def counting(pair: CertKeyPair) -> ssl.SSLContext:
        built.append(pair)
        return real(pair)

    monkeypatch.setattr(tls_module, "server_context", counting)
    second = CertificateStore([pairs["a"], pairs["other"], pairs["wild"]], previous=first)
    assert pairs["wild"] in built and pairs["a"] not in built and pairs["other"] not in built
    assert second.context_for("a.example.com") is first.context_for("a.example.com")
    assert second.context_for("b.example.com") is not second.default_context  # the new wildcard serves
    assert second.default_context is not first.default_context  # its own SNI callback
    assert second.default_context.sni_callback == second.sni_callback
