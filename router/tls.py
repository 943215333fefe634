"""TLS certificate store: the serving side of HTTPS.

Certificate sources (the file provider's ``tls.certificates``, later ``acme_client``) hand the router
``CertKeyPair`` values. ``CertificateStore`` turns each into an ``ssl.SSLContext`` once, at construction,
and picks one per handshake from the client's SNI name: exact name, then a one-label wildcard, then the
default certificate. The handshake path only does dictionary look-ups (cached in an LRU).

A pair that does not load (unparseable PEM, key not matching the certificate, encrypted key) is skipped
with one ERROR line naming it; the rest keeps working.

Python's ``ssl`` module can only load a certificate chain from a file, so each pair is written to a
private (0600) temporary file that is removed as soon as OpenSSL has read it.
"""

from __future__ import annotations

import datetime
import logging
import os
import ssl
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from cachetools import LRUCache
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from discover.model import EMPTY, TLSOptions

log = logging.getLogger("dockroute.tls")

DEFAULT_CERT_CN = "DOCKROUTE DEFAULT CERT"

# Mozilla "intermediate" configuration, TLS 1.2 part (TLS 1.3 suites are OpenSSL's defaults, all fine).
INTERMEDIATE_CIPHERS = ":".join(
    [
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
        "DHE-RSA-AES128-GCM-SHA256",
        "DHE-RSA-AES256-GCM-SHA384",
        "DHE-RSA-CHACHA20-POLY1305",
    ]
)
ALPN_PROTOCOLS = ["http/1.1"]
ACME_TLS_1 = "acme-tls/1"  # RFC 8737's ALPN protocol: the client is an ACME validator


@dataclass(frozen=True, slots=True)
class CertKeyPair:
    """What any certificate source hands the router: PEM certificate chain (leaf first) and private key."""

    cert_pem: bytes
    key_pem: bytes


@runtime_checkable
class CertificateSource(Protocol):
    """The router's interface to certificate providers (file provider, ACME client)."""

    def certificates(self) -> Iterable[CertKeyPair]: ...


class ChallengeCertificates(Protocol):
    """TLS-ALPN-01 answers (RFC 8737): certificates presented only to a client whose ClientHello offers
    ``acme-tls/1`` alone, for a name with a pending challenge. Read on the event loop: memory only."""

    def pending(self) -> bool:
        """Whether any challenge is pending at all (when not, ClientHellos are not even parsed)."""
        ...

    def alpn_challenge(self, server_name: str) -> CertKeyPair | None: ...


def self_signed_default() -> CertKeyPair:
    """A fresh EC P-256 self-signed certificate, CN ``DOCKROUTE DEFAULT CERT``, valid for one year."""
    return self_signed(DEFAULT_CERT_CN)


def self_signed(
    common_name: str,
    names: tuple[str, ...] = (),
    valid_from: datetime.timedelta = datetime.timedelta(minutes=-5),
    valid_for: datetime.timedelta = datetime.timedelta(days=365),
) -> CertKeyPair:
    """A fresh EC P-256 self-signed server certificate; ``names`` become DNS SANs. ``valid_from`` is
    relative to now, ``valid_for`` to ``valid_from`` (tests make near-expiry certificates with them)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    start = datetime.datetime.now(datetime.UTC) + valid_from
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + valid_for)
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), False)
    cert = (
        builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return CertKeyPair(
        cert_pem=cert.public_bytes(serialization.Encoding.PEM),
        key_pem=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )


def _no_password() -> bytes:
    # Without a callback OpenSSL would prompt on the terminal for an encrypted key.
    raise ValueError("encrypted private keys are not supported")


def server_context(pair: CertKeyPair) -> ssl.SSLContext:
    """A server context for one pair: TLS 1.2+, Mozilla intermediate ciphers, ALPN http/1.1.

    Raises ``ssl.SSLError``/``ValueError`` when the pair does not parse or the key does not match.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(INTERMEDIATE_CIPHERS)
    ctx.set_alpn_protocols(ALPN_PROTOCOLS)
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_SINGLE_ECDH_USE
    fd, path = tempfile.mkstemp(prefix="dockroute-", suffix=".pem")  # mode 0600
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(pair.cert_pem.rstrip(b"\n") + b"\n" + pair.key_pem)
        ctx.load_cert_chain(path, password=_no_password)
    finally:
        os.unlink(path)
    return ctx


def challenge_context(pair: CertKeyPair) -> ssl.SSLContext:
    """A context presenting a TLS-ALPN-01 certificate: ALPN ``acme-tls/1`` only, TLS 1.2+."""
    ctx = server_context(pair)
    ctx.set_alpn_protocols([ACME_TLS_1])
    return ctx


def certificate_names(cert_pem: bytes) -> list[str]:
    """The leaf's DNS SAN names (its CN when it has no SAN), lower-cased, without a trailing dot."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = san.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        names = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME) if a.value]
    return list(dict.fromkeys(_normalize(n) for n in names if n))


def _normalize(name: str) -> str:
    return name.strip().rstrip(".").lower()


class CertificateStore:
    """SNI-indexed server contexts, built once; ``default_context`` is the one to listen with.

    Building is file and crypto work: do it off the event loop. ``previous`` (the store being replaced)
    lends its contexts for pairs that did not change, so a new ACME certificate costs one context, not
    one per certificate; the listening (default) context is always new, its SNI callback is this store's.
    """

    def __init__(
        self,
        pairs: Iterable[CertKeyPair],
        default: CertKeyPair | None = None,
        cache_size: int = 4096,
        previous: CertificateStore | None = None,
        options: Mapping[str, TLSOptions] = EMPTY,
        host_options: Mapping[str, str] = EMPTY,
    ) -> None:
        self.options = options
        self.host_options = host_options
        self._exact: dict[str, ssl.SSLContext] = {}
        self._wildcard: dict[str, ssl.SSLContext] = {}  # "example.com" for "*.example.com"
        self._cache: LRUCache[str, ssl.SSLContext] = LRUCache(maxsize=cache_size)
        self._loaded: dict[CertKeyPair, tuple[ssl.SSLContext, list[str]]] = {}
        reuse = previous._loaded if previous is not None else {}
        for pair in pairs:
            self._add(pair, reuse)
        loaded = self._load(default) if default is not None else None
        default_ctx = loaded[0] if loaded is not None else server_context(self_signed_default())
        default_ctx.sni_callback = self.sni_callback
        self._default = default_ctx

    @staticmethod
    def _load(pair: CertKeyPair) -> tuple[ssl.SSLContext, list[str]] | None:
        try:
            names = certificate_names(pair.cert_pem)
        except Exception as e:
            log.error("TLS certificate skipped: cannot parse it (%s)", e)
            return None
        try:
            return server_context(pair), names
        except Exception as e:
            log.error("TLS certificate for %s skipped: %s", ", ".join(names) or "<no names>", e)
            return None

    def _add(
        self, pair: CertKeyPair, reuse: dict[CertKeyPair, tuple[ssl.SSLContext, list[str]]] | None = None
    ) -> None:
        loaded = (reuse or {}).get(pair) or self._load(pair)
        if loaded is None:
            return
        self._loaded[pair] = loaded
        ctx, names = loaded
        if not names:
            log.warning("TLS certificate with no DNS name or CN: only usable as the default")
        for name in names:
            if name.startswith("*."):
                self._wildcard.setdefault(name[2:], ctx)  # the first certificate for a name wins
            elif "*" not in name:
                self._exact.setdefault(name, ctx)

    @property
    def default_context(self) -> ssl.SSLContext:
        """The listening context: serves the default certificate and switches by SNI."""
        return self._default

    def listening_context(self, options_name: str) -> ssl.SSLContext:
        """The context to listen with for connections whose SNI maps to ``options_name``."""
        return self._default

    @property
    def names(self) -> frozenset[str]:
        """Every name served, wildcards as ``*.example.com``."""
        return frozenset(self._exact) | frozenset("*." + d for d in self._wildcard)

    def context_for(self, server_name: str | None) -> ssl.SSLContext:
        """Exact name, then one-label wildcard, then the default."""
        name = _normalize(server_name) if server_name else ""
        ctx = self._cache.get(name)
        if ctx is None:
            ctx = self._lookup(name)
            self._cache[name] = ctx
        return ctx

    def _lookup(self, name: str) -> ssl.SSLContext:
        if not name:
            return self._default
        ctx = self._exact.get(name)
        if ctx is not None:
            return ctx
        label, dot, parent = name.partition(".")
        if label and dot and parent:
            ctx = self._wildcard.get(parent)
            if ctx is not None:
                return ctx
        return self._default

    def sni_callback(self, sslobj: ssl.SSLObject, server_name: str | None, ctx: ssl.SSLContext) -> None:
        """``SSLContext.sni_callback``: switch the connection to the certificate for ``server_name``."""
        target = self.context_for(server_name)
        if target is not ctx:  # switching re-copies the certificate into the connection: only when needed
            sslobj.context = target


def _pem_or_file(value: str) -> bytes:
    if "-----BEGIN" in value:
        return value.strip().encode("ascii") + b"\n"
    with open(value, "rb") as f:
        return f.read()


def load_pem_files(cert_file: str, key_file: str) -> CertKeyPair:
    """Traefik's ``certFile``/``keyFile``: each either a path or the PEM text itself.

    Raises ``OSError`` when a path cannot be read; the content is checked by ``CertificateStore``.
    """
    return CertKeyPair(cert_pem=_pem_or_file(cert_file), key_pem=_pem_or_file(key_file))
