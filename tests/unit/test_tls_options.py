"""router.tls_options and the per-options contexts of CertificateStore, over real handshakes on loopback."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trustme
from cryptography import x509

from discover.model import ClientAuth, TLSOptions
from discover.tls_names import REFUSED_DEFAULT
from router.tls import GUARDED, CertificateStore, CertKeyPair, server_context
from router.tls_options import OPTIONS_ATTR, apply_options, options_for_host, uses_other_options


def pair_of(leaf: trustme.LeafCert) -> CertKeyPair:
    return CertKeyPair(b"".join(b.bytes() for b in leaf.cert_chain_pems), leaf.private_key_pem.bytes())


@pytest.fixture(scope="module")
def pki():
    server_ca, client_ca, other_ca = trustme.CA(), trustme.CA(), trustme.CA()
    return {
        "server_ca": server_ca,
        "client_ca": client_ca,
        "other_ca": other_ca,
        "a": pair_of(server_ca.issue_cert("a.test")),
        "b": pair_of(server_ca.issue_cert("b.test")),
        "wild": pair_of(server_ca.issue_cert("*.w.test")),
        "x": pair_of(server_ca.issue_cert("x.w.test")),
    }


def mtls(pki, kind: str = "RequireAndVerifyClientCert") -> TLSOptions:
    return TLSOptions(client_auth=ClientAuth((pki["client_ca"].cert_pem.bytes().decode(),), kind))


def client(pki, cert_from: trustme.CA | None = None, maximum=None) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    pki["server_ca"].configure_trust(ctx)
    if cert_from is not None:
        cert_from.issue_cert("someone@test").configure_cert(ctx)
    if maximum is not None:
        ctx.maximum_version = maximum
    return ctx


@asynccontextmanager
async def serving(ctx: ssl.SSLContext) -> AsyncIterator[int]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"ok")  # close() flushes it
        writer.close()

    srv = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ctx)
    try:
        yield srv.sockets[0].getsockname()[1]
    finally:
        srv.close()
        await srv.wait_closed()


async def exchange(port: int, ctx: ssl.SSLContext, sni: str | None) -> tuple[bytes, str]:
    """The server's bytes and the first DNS name of the certificate it showed; raises on refusal."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname=sni)
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        cert = x509.load_der_x509_certificate(der)
        try:
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
            name = san.value.get_values_for_type(x509.DNSName)[0]
        except x509.ExtensionNotFound:  # the generated default certificate
            name = ""
        return await asyncio.wait_for(reader.read(), 5), name
    finally:
        writer.close()


async def served(port: int, ctx: ssl.SSLContext, sni: str | None) -> bool:
    try:
        data, _ = await exchange(port, ctx, sni)
    except (ssl.SSLError, ConnectionError):
        return False
    return data == b"ok"


# -- contexts from options ---------------------------------------------------------------------------


def test_apply_options_sets_what_go_would(pki):
    ctx = server_context(pki["a"])
    apply_options(
        ctx,
        TLSOptions(
            min_version="VersionTLS13",
            max_version="VersionTLS13",
            cipher_suites=("TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",),
            curve_preferences=("CurveP384",),
            alpn_protocols=("h2", "http/1.1", "acme-tls/1"),
            disable_session_tickets=True,
            client_auth=mtls(pki, "VerifyClientCertIfGiven").client_auth,
        ),
        "strict",
    )
    assert (ctx.minimum_version, ctx.maximum_version) == (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_3)
    tls12 = [c["name"] for c in ctx.get_ciphers() if c["protocol"] == "TLSv1.2"]
    assert tls12 == ["ECDHE-ECDSA-AES256-GCM-SHA384"]
    assert ctx.options & ssl.OP_NO_TICKET and ctx.num_tickets == 0  # no TLS 1.2 nor TLS 1.3 tickets
    assert ctx.verify_mode == ssl.CERT_OPTIONAL
    assert ctx.cert_store_stats()["x509_ca"] == 1
    assert getattr(ctx, OPTIONS_ATTR).name == "strict"


def test_default_options_change_nothing(pki):
    """The default options give today's context: TLS 1.2+, the same suites, no client certificate."""
    plain, with_defaults = server_context(pki["a"]), server_context(pki["a"])
    apply_options(with_defaults, TLSOptions(), "default")
    assert [c["name"] for c in plain.get_ciphers()] == [c["name"] for c in with_defaults.get_ciphers()]
    assert with_defaults.minimum_version == plain.minimum_version
    assert with_defaults.verify_mode == ssl.CERT_NONE
    assert not with_defaults.options & ssl.OP_NO_TICKET


@pytest.mark.parametrize(
    "kind", ["RequestClientCert", "RequireAnyClientCert", "VerifyClientCertIfGiven", "Bogus"]
)
def test_what_cannot_be_served_raises(pki, kind):
    ca = () if kind == "VerifyClientCertIfGiven" else mtls(pki).client_auth.ca_files
    with pytest.raises(ValueError, match=kind):
        apply_options(server_context(pki["a"]), TLSOptions(client_auth=ClientAuth(ca, kind)), "x")


async def test_python_ssl_cannot_accept_an_unverified_client_certificate(pki):
    """Why RequestClientCert and RequireAnyClientCert are refused: without a verify callback (which
    Python's ssl does not expose) OpenSSL checks every client certificate it is sent. Tried: asking for
    one with no CA at all, and with partial chains allowed; both refuse a self-made client certificate."""
    for flags in (0, ssl.VERIFY_X509_PARTIAL_CHAIN):
        ctx = server_context(pki["a"])
        ctx.verify_mode = ssl.CERT_OPTIONAL
        ctx.verify_flags |= flags
        async with serving(ctx) as port:
            assert await served(port, client(pki), "a.test")  # no certificate: fine
            tls12 = client(pki, cert_from=pki["other_ca"], maximum=ssl.TLSVersion.TLSv1_2)
            assert not await served(port, tls12, "a.test")  # any certificate: refused


def test_options_for_host():
    hosts = {"a.test": "m", "*.w.test": "n", "x.w.test": "default"}
    assert options_for_host(hosts, "a.test") == "m"
    assert options_for_host(hosts, "y.w.test") == "n"
    assert options_for_host(hosts, "x.w.test") == "default"  # exact wins over the wildcard
    assert options_for_host(hosts, "z.y.w.test") == "default"  # one label only
    assert options_for_host(hosts, "") == "default"
    assert uses_other_options(hosts)
    assert not uses_other_options({"a.test": "default"})


# -- the store ---------------------------------------------------------------------------------------


def test_contexts_only_for_what_hosts_need(pki):
    pairs = [pki["a"], pki["b"], pki["wild"], pki["x"]]
    store = CertificateStore(
        pairs, options={"m": mtls(pki)}, host_options={"a.test": "m", "*.w.test": "m", "b.test": "default"}
    )
    # default: every certificate; m: a.test's, the wildcard's, and x.w.test's (under *.w.test)
    assert store.context_count == 4 + 3
    assert getattr(store.context_for("a.test", "m"), OPTIONS_ATTR).name == "m"
    assert store.context_for("a.test", "m").verify_mode == ssl.CERT_REQUIRED
    assert store.context_for("y.w.test", "m") is not store.context_for("x.w.test", "m")
    assert store.listening_context("m").verify_mode == ssl.CERT_REQUIRED
    assert store.listening_context("default") is store.default_context
    # the guarded default (hello unread) refuses a name of other options; the plain default serves it
    # (an entry point where that host uses the default options)
    assert store.context_for("a.test", GUARDED) is None
    assert store.context_for("b.test", GUARDED) is store.context_for("b.test")
    assert store.context_for("a.test").verify_mode == ssl.CERT_NONE
    assert store.context_for("b.test").verify_mode == ssl.CERT_NONE
    # a rebuilt store reuses every (certificate, options) context that did not change
    again = CertificateStore(
        pairs,
        previous=store,
        options={"m": mtls(pki)},
        host_options={"a.test": "m", "*.w.test": "m", "b.test": "default"},
    )
    assert again.context_for("b.test") is store.context_for("b.test")
    # ... but those verifying client certificates read their CA files again
    assert again.context_for("a.test", "m") is not store.context_for("a.test", "m")
    assert again.listening_context("m") is not store.listening_context("m")


def test_unknown_or_unbuildable_options_refuse_their_hosts(pki, caplog):
    broken = TLSOptions(client_auth=ClientAuth(("/nonexistent/ca.pem",), "RequireAndVerifyClientCert"))
    with caplog.at_level(logging.ERROR, logger="dockroute.tls"):
        store = CertificateStore(
            [pki["a"], pki["b"]], options={"gone": broken}, host_options={"a.test": "gone", "b.test": "typo"}
        )
    with pytest.raises(KeyError):
        store.listening_context("gone")
    with pytest.raises(KeyError):
        store.listening_context("typo")
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2 and "gone" in lines[0] and "typo" in lines[1]
    assert store.context_for("a.test", GUARDED) is None  # nor with the default options, hello unread


@pytest.mark.parametrize(
    "broken",
    [
        TLSOptions(client_auth=ClientAuth(("/nonexistent/ca.pem",), "RequireAndVerifyClientCert")),
        TLSOptions(client_auth=ClientAuth((), REFUSED_DEFAULT)),  # refused when parsed
    ],
)
def test_a_broken_default_refuses_every_handshake(pki, caplog, broken):
    with caplog.at_level(logging.ERROR, logger="dockroute.tls"):
        store = CertificateStore([pki["a"]], options={"default": broken}, host_options={"b.test": "other"})
    assert store.context_for("a.test") is None and store.context_for(None) is None
    assert store.context_for("a.test", GUARDED) is None
    assert any("default" in r.getMessage() for r in caplog.records)


async def test_mtls_listening_context_switches_certificates_with_the_same_options(pki):
    """The listening context of mTLS options shows the SNI's certificate and verifies the client
    against the configured CA, over TLS 1.2 (refused in the handshake) and 1.3."""
    store = CertificateStore([pki["a"], pki["b"]], options={"m": mtls(pki)}, host_options={"a.test": "m"})
    async with serving(store.listening_context("m")) as port:
        for maximum in (ssl.TLSVersion.TLSv1_2, None):
            assert not await served(port, client(pki, maximum=maximum), "a.test")
            assert not await served(port, client(pki, cert_from=pki["other_ca"], maximum=maximum), "a.test")
            ok = client(pki, cert_from=pki["client_ca"], maximum=maximum)
            data, name = await exchange(port, ok, "a.test")
            assert (data, name) == (b"ok", "a.test")
    async with serving(store.guarded_default_context) as port:
        data, name = await exchange(port, client(pki), "b.test")  # no certificate asked
        assert (data, name) == (b"ok", "b.test")
        assert not await served(port, client(pki, cert_from=pki["client_ca"]), "a.test")
    assert CertificateStore([pki["a"]]).guarded_default_context is not None  # = the default, unused


async def test_sni_strict(pki):
    store = CertificateStore([pki["a"]], options={"default": TLSOptions(sni_strict=True)})
    anything = ssl.create_default_context()
    anything.check_hostname = False
    anything.verify_mode = ssl.CERT_NONE
    async with serving(store.default_context) as port:
        assert await served(port, client(pki), "a.test")
        assert not await served(port, anything, "unknown.test")
        assert not await served(port, anything, None)
    lenient = CertificateStore([pki["a"]])
    async with serving(lenient.default_context) as port:
        assert await served(port, anything, "unknown.test")


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1 is deprecated:DeprecationWarning")
async def test_min_version_tls10_is_served_as_go_serves_it(pki):
    """TLS 1.0 needs CBC suites and SHA-1 signatures (OpenSSL 3 refuses them above security level 0):
    given by the options that ask for it, and only by them."""
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.check_hostname = False
    old.verify_mode = ssl.CERT_NONE
    old.set_ciphers("ALL:@SECLEVEL=0")
    old.minimum_version = old.maximum_version = ssl.TLSVersion.TLSv1
    legacy = CertificateStore([pki["a"]], options={"default": TLSOptions(min_version="VersionTLS10")})
    async with serving(legacy.default_context) as port:
        assert await served(port, old, "a.test")
    async with serving(CertificateStore([pki["a"]]).default_context) as port:
        assert not await served(port, old, "a.test")


async def test_entry_points_that_disagree_on_a_host_each_get_its_certificate(pki):
    """a.test uses options m on one entry point and n on another: the one-name-per-host map keeps m, and
    the per-entry-point maps make n's contexts carry a.test's certificate too."""
    n = TLSOptions(min_version="VersionTLS13")
    store = CertificateStore(
        [pki["a"], pki["b"]],
        options={"m": mtls(pki), "n": n},
        host_options={"a.test": "m"},
        entry_point_options={"one": {"a.test": "m"}, "two": {"a.test": "n"}},
    )
    assert store.context_count == 2 + 1 + 1  # default: both; m: a; n: a
    async with serving(store.listening_context("n")) as port:
        data, name = await exchange(port, client(pki), "a.test")
        assert (data, name) == (b"ok", "a.test")


def test_a_definition_keeps_its_stamp_across_stores_and_a_changed_one_is_retired(pki, tmp_path):
    """Reloads that leave options as they were keep the connections made under them; options tightened in
    place (same name) or a client CA file whose text changed retire the old stamp, so the app closes the
    connections made under it (a kept-alive connection must not keep what the new options refuse)."""
    ca_file = tmp_path / "clients.pem"
    ca_file.write_bytes(pki["client_ca"].cert_pem.bytes())
    by_file = TLSOptions(client_auth=ClientAuth((str(ca_file),), "RequireAndVerifyClientCert"))
    hosts = {"a.test": "m", "b.test": "f"}
    first = CertificateStore(
        [pki["a"], pki["b"]], options={"m": TLSOptions(), "f": by_file}, host_options=hosts
    )

    def stamp(store: CertificateStore, name: str, host: str):
        return getattr(store.context_for(host, name), OPTIONS_ATTR)

    same = CertificateStore(
        [pki["a"], pki["b"]], options={"m": TLSOptions(), "f": by_file}, host_options=hosts, previous=first
    )
    assert same.supersede(first) is False
    assert stamp(same, "m", "a.test") is stamp(first, "m", "a.test") and stamp(first, "m", "a.test").current
    assert stamp(same, "f", "b.test") is stamp(first, "f", "b.test")  # rebuilt (CA re-read), same stamp

    ca_file.write_bytes(pki["other_ca"].cert_pem.bytes())  # another client CA behind the same file name
    tightened = CertificateStore(
        [pki["a"], pki["b"]], options={"m": mtls(pki), "f": by_file}, host_options=hosts, previous=same
    )
    assert tightened.supersede(same) is True
    assert not stamp(same, "m", "a.test").current and not stamp(same, "f", "b.test").current
    assert stamp(tightened, "m", "a.test").current and stamp(tightened, "f", "b.test").current
