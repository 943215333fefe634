"""TLS certificate store: the serving side of HTTPS.

Certificate sources (the file provider's ``tls.certificates``, later ``acme_client``) hand the router
``CertKeyPair`` values. ``CertificateStore`` turns each into an ``ssl.SSLContext`` once, at construction,
and picks one per handshake from the client's SNI name: exact name, then a one-label wildcard, then the
default certificate. The handshake path only does dictionary look-ups (cached in an LRU).

A pair that does not load (unparseable PEM, key not matching the certificate, encrypted key) is skipped
with one ERROR line naming it; the rest keeps working.

Python's ``ssl`` module can only load a certificate chain from a file: each pair is handed to it through
:func:`router.pemfile.pem_file` (an in-memory file; the private key never touches a disk where the
kernel has ``memfd``).
"""

from __future__ import annotations

import ctypes
import datetime
import functools
import logging
import ssl
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from cachetools import LRUCache
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from discover.model import DEFAULT_TLS_OPTIONS, EMPTY, TLSOptions
from router.pemfile import pem_file, read_pem
from router.tls_options import (
    OptionsStamp,
    apply_options,
    definition,
    options_for_host,
    union_host_options,
    uses_other_options,
)

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
# Mozilla "intermediate" key-exchange groups. OpenSSL 3's defaults add X448, P-521 and the FFDHE groups,
# which that profile (and ``sslyze --mozilla_config=intermediate``) rejects.
INTERMEDIATE_GROUPS = "X25519:P-256:P-384"
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


_SSL_CTRL_SET_GROUPS_LIST = 92  # OpenSSL's SSL_CTX_set1_groups_list() is this SSL_CTX_ctrl() call
# CPython releases whose PySSLContext starts with its SSL_CTX pointer (Modules/_ssl.c, unchanged 3.11 to
# 3.14): elsewhere the pointer is not even read (the read itself could fault), P-256 alone is used
_KNOWN_LAYOUT = sys.implementation.name == "cpython" and (3, 11) <= sys.version_info[:2] <= (3, 14)


@functools.cache
def _libssl() -> ctypes.CDLL | None:
    """The libssl the ``ssl`` module is linked with (symbols resolved through its ``_ssl`` extension, so
    never another copy), with the two calls used here typed; None where it cannot be opened."""
    try:
        lib = ctypes.CDLL(ssl._ssl.__file__)  # type: ignore[attr-defined]
        lib.SSL_CTX_get_options.restype = ctypes.c_uint64
        lib.SSL_CTX_get_options.argtypes = [ctypes.c_void_p]
        lib.SSL_CTX_ctrl.restype = ctypes.c_long
        lib.SSL_CTX_ctrl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_void_p]
    except (OSError, AttributeError):
        return None
    return lib


def set_default_groups(ctx: ssl.SSLContext) -> None:
    """Offer only Mozilla's intermediate groups (X25519, P-256, P-384).

    ``SSLContext.set_groups`` exists only in recent Pythons; Python 3.11's ``set_ecdh_curve`` keeps a
    single group, which either costs TLS 1.3 clients a HelloRetryRequest (P-256 alone) or locks out old
    ones (X25519 alone). So the list is set through OpenSSL itself: the ``SSL_CTX`` pointer is the first
    field after the object header of CPython's ``PySSLContext``, checked by reading the context's options
    back through it before anything is written. Where that check fails, P-256 alone (compliant, every
    client has it)."""
    setter = getattr(ctx, "set_groups", None)
    if setter is not None:
        setter(INTERMEDIATE_GROUPS)
        return
    lib = _libssl() if _KNOWN_LAYOUT else None
    if lib is not None:
        ptr = ctypes.c_void_p.from_address(id(ctx) + object.__basicsize__).value
        if ptr and lib.SSL_CTX_get_options(ptr) == ctx.options:
            groups = ctypes.c_char_p(INTERMEDIATE_GROUPS.encode("ascii"))
            if lib.SSL_CTX_ctrl(ptr, _SSL_CTRL_SET_GROUPS_LIST, 0, groups) == 1:
                return
    ctx.set_ecdh_curve("prime256v1")


def server_context(pair: CertKeyPair) -> ssl.SSLContext:
    """A server context for one pair: TLS 1.2+, Mozilla intermediate ciphers and groups, ALPN http/1.1.

    Raises ``ssl.SSLError``/``ValueError`` when the pair does not parse or the key does not match.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(INTERMEDIATE_CIPHERS)
    set_default_groups(ctx)
    ctx.set_alpn_protocols(ALPN_PROTOCOLS)
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_SINGLE_ECDH_USE
    with pem_file(pair.cert_pem.rstrip(b"\n") + b"\n" + pair.key_pem) as path:
        ctx.load_cert_chain(path, password=_no_password)
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


class _Options:
    """The contexts of one options set: the listening one (default certificate) and, by certificate, the
    contexts its SNI callback switches to, all built with the same options."""

    __slots__ = ("name", "listening", "by_pair", "cache", "strict", "refuse_all", "guard")

    def __init__(self, name: str, listening: ssl.SSLContext, cache_size: int, strict: bool) -> None:
        self.name = name
        self.listening = listening
        self.by_pair: dict[CertKeyPair, ssl.SSLContext] = {}
        self.cache: LRUCache[str, ssl.SSLContext | None] = LRUCache(maxsize=cache_size)
        self.strict = strict
        self.refuse_all = False
        self.guard = False  # refuse names whose options are not these (the hello could not be read)


GUARDED = "default (hello unread)"  # the guarded default's group name (not an options name anyone uses)
_Built = dict[tuple[CertKeyPair, str, TLSOptions], ssl.SSLContext]
_SNICallback = Callable[[ssl.SSLObject, str | None, ssl.SSLContext], int | None]


def _checked(options: TLSOptions, name: str) -> str | None:
    """Why ``options`` cannot be applied (a CA file gone since it was parsed, ...), or None: tried on a
    bare context, so no certificate is loaded for it."""
    try:
        apply_options(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), options, name)
    except Exception as e:
        return str(e) or type(e).__name__
    return None


class CertificateStore:
    """SNI-indexed server contexts, built once, per TLS options set in use; ``default_context`` is the one
    to listen with when every host uses the ``default`` options.

    ``options`` are the defined TLS options by name; ``host_options`` maps a host (or ``*.domain``) to the
    options name its routers use (absent: ``default``), one name per host; ``entry_point_options`` (entry
    point → such a map), when given, adds what each entry point uses where they disagree on a host. For
    each options set some host uses, there is a listening context (:meth:`listening_context`; the entry
    point picks it by the ClientHello's SNI) whose SNI callback switches only between contexts built with
    the same options, for the certificates of the hosts that use them: (certificate × options) contexts
    exist only where a host needs them. The
    ``default`` set serves every certificate; its guarded twin (:attr:`guarded_default_context`) refuses
    an SNI that belongs to other options, for a client whose ClientHello could not be read before the
    handshake (it must not get an mTLS host's certificate without its client-certificate check). Options
    that cannot be built are left out with one ERROR line and their hosts' handshakes refused, as Traefik
    closes them (all handshakes, for ``default``).

    Building is file and crypto work: do it off the event loop. ``previous`` (the store being replaced)
    lends its contexts for (pair, options) that did not change, so a new ACME certificate costs one
    context per options set that serves it; the listening contexts are always new (their SNI callbacks
    are this store's), and so are those that verify client certificates (their CA files are read again,
    as Traefik does on every configuration change).
    """

    def __init__(
        self,
        pairs: Iterable[CertKeyPair],
        default: CertKeyPair | None = None,
        cache_size: int = 4096,
        previous: CertificateStore | None = None,
        options: Mapping[str, TLSOptions] = EMPTY,
        host_options: Mapping[str, str] = EMPTY,
        entry_point_options: Mapping[str, Mapping[str, str]] = EMPTY,
    ) -> None:
        self.options = options
        # The union over entry points, when only they are given (the guard of an unread ClientHello).
        self.host_options = host_options or union_host_options(entry_point_options)
        # ``SSLContext.sni_callback`` of the default options' listening context (the one to listen with).
        self.sni_callback: _SNICallback = self._callback(DEFAULT_TLS_OPTIONS)
        self.entry_point_options = entry_point_options
        self._exact: dict[str, CertKeyPair] = {}
        self._wildcard: dict[str, CertKeyPair] = {}  # "example.com" for "*.example.com"
        self._names: dict[CertKeyPair, list[str]] = {}
        self._built: _Built = {}
        reuse: _Built = previous._built if previous is not None else {}
        usable: dict[str, TLSOptions] = {}
        in_use = [v for hosts in (self.host_options, *entry_point_options.values()) for v in hosts.values()]
        for name in dict.fromkeys([DEFAULT_TLS_OPTIONS, *in_use]):
            found = options.get(name, TLSOptions() if name == DEFAULT_TLS_OPTIONS else None)
            why = "they do not exist" if found is None else _checked(found, name)
            if found is None or why is not None:
                log.error(
                    "TLS options %s cannot be used (%s): their hosts' handshakes are refused", name, why
                )
            else:
                usable[name] = found
        # One stamp per definition, kept from the previous store while the definition does not change.
        previous_stamps = previous._stamps if previous is not None else {}
        self._stamps: dict[tuple[object, ...], OptionsStamp] = {}
        self._stamp_of: dict[str, OptionsStamp] = {}
        for name, found in usable.items():
            key = definition(name, found)
            stamp = previous_stamps.get(key) or OptionsStamp(name)
            self._stamps[key] = self._stamp_of[name] = stamp
        # Pairs are checked (and indexed) under the default options, or bare ones when those are broken.
        base = self._default_options = usable.get(DEFAULT_TLS_OPTIONS, TLSOptions())
        for pair in pairs:
            self._add(pair, base, reuse, previous._names if previous is not None else {})
        if default is not None and self._build(default, DEFAULT_TLS_OPTIONS, base, reuse) is None:
            default = None
        self._default_pair = default or self_signed_default()
        self._groups: dict[str, _Options] = {}
        for name, opts in usable.items():
            self._groups[name] = self._group(name, opts, cache_size, reuse)
        if DEFAULT_TLS_OPTIONS not in self._groups:
            group = self._group(DEFAULT_TLS_OPTIONS, TLSOptions(), cache_size, {})
            group.refuse_all = True
            self._groups[DEFAULT_TLS_OPTIONS] = group
        self._default_group = self._groups[DEFAULT_TLS_OPTIONS]
        self._cache = self._default_group.cache
        self._default = self._default_group.listening
        self._guarded = self._default
        if any(uses_other_options(hosts) for hosts in (self.host_options, *entry_point_options.values())):
            self._guarded = self._guarded_default(cache_size)

    def _guarded_default(self, cache_size: int) -> ssl.SSLContext:
        """The default options' listening context for a connection whose ClientHello could not be read
        before the handshake: it refuses a name that belongs to other options, which must not be served
        without them (an mTLS host without its client-certificate check). Same certificate contexts."""
        base = self._default_group
        listening = server_context(self._default_pair)
        apply_options(listening, self._default_options, self._stamp(DEFAULT_TLS_OPTIONS))
        group = _Options(GUARDED, listening, cache_size, base.strict)
        group.by_pair, group.refuse_all, group.guard = base.by_pair, base.refuse_all, True
        self._groups[GUARDED] = group
        listening.sni_callback = self._callback(GUARDED)
        return listening

    def _build(
        self, pair: CertKeyPair, name: str, options: TLSOptions, reuse: _Built
    ) -> ssl.SSLContext | None:
        """The context for ``pair`` under the options ``name``; None (one ERROR line) if it fails."""
        key = (pair, name, options)
        ctx = self._built.get(key)
        if ctx is None and not options.client_auth.ca_files:  # CA files are re-read: they may have changed
            ctx = reuse.get(key)
        if ctx is None:
            try:
                ctx = server_context(pair)
                apply_options(ctx, options, self._stamp(name))
            except Exception as e:
                who = ", ".join(self._names.get(pair, ())) or "<no names>"
                log.error("TLS certificate for %s skipped: %s", who, e)
                return None
        self._built[key] = ctx
        return ctx

    def _add(
        self, pair: CertKeyPair, options: TLSOptions, reuse: _Built, known: dict[CertKeyPair, list[str]]
    ) -> None:
        names = known.get(pair)
        if names is None:
            try:
                names = certificate_names(pair.cert_pem)
            except Exception as e:
                log.error("TLS certificate skipped: cannot parse it (%s)", e)
                return
        self._names[pair] = names
        if self._build(pair, DEFAULT_TLS_OPTIONS, options, reuse) is None:
            del self._names[pair]
            return
        if not names:
            log.warning("TLS certificate with no DNS name or CN: only usable as the default")
        for name in names:
            if name.startswith("*.") and "*" not in name[2:]:
                self._wildcard.setdefault(name[2:], pair)  # the first certificate for a name wins
            elif "*" not in name:
                self._exact.setdefault(name, pair)

    def _group(self, name: str, options: TLSOptions, cache_size: int, reuse: _Built) -> _Options:
        """The contexts of the options ``name``: for ``default`` every certificate, for the others those
        of the hosts that use them."""
        listening = server_context(self._default_pair)
        apply_options(listening, options, self._stamp(name))
        group = _Options(name, listening, cache_size, options.sni_strict)
        for pair in self._names if name == DEFAULT_TLS_OPTIONS else self._pairs_for(name):
            ctx = self._build(pair, name, options, reuse)
            if ctx is not None:
                group.by_pair[pair] = ctx
        listening.sni_callback = self.sni_callback if name == DEFAULT_TLS_OPTIONS else self._callback(name)
        return group

    def _pairs_for(self, name: str) -> list[CertKeyPair]:
        """The certificates served to the hosts whose options are ``name`` (on any entry point)."""
        out: dict[CertKeyPair, None] = {}
        for hosts in (self.host_options, *self.entry_point_options.values()):
            for host, used in hosts.items():
                if used != name:
                    continue
                if host.startswith("*."):
                    parent = host[2:]
                    if parent in self._wildcard:
                        out[self._wildcard[parent]] = None
                    for exact, pair in self._exact.items():  # exact certificates under the wildcard
                        if exact.partition(".")[2] == parent and options_for_host(hosts, exact) == name:
                            out[pair] = None
                else:
                    pair = self._pair_for(host)
                    if pair is not None:
                        out[pair] = None
        return list(out)

    def _pair_for(self, name: str) -> CertKeyPair | None:
        pair = self._exact.get(name)
        if pair is None:
            label, dot, parent = name.partition(".")
            if label and dot and parent:
                pair = self._wildcard.get(parent)
        return pair

    def _stamp(self, name: str) -> OptionsStamp | str:
        return self._stamp_of.get(name) or name

    def supersede(self, previous: CertificateStore | None) -> bool:
        """On the loop, as this store replaces ``previous``: retire the stamps of the definitions this
        store no longer has (options changed or gone). True when any was retired: the connections made
        under them are then to be closed."""
        if previous is None:
            return False
        kept = {id(stamp) for stamp in self._stamps.values()}
        retired = False
        for stamp in previous._stamps.values():
            if id(stamp) not in kept and stamp.current:
                stamp.current = False
                retired = True
        return retired

    @property
    def default_context(self) -> ssl.SSLContext:
        """The listening context of the ``default`` options: serves the default certificate and switches
        by SNI."""
        return self._default

    @property
    def guarded_default_context(self) -> ssl.SSLContext:
        """The default options' listening context for a connection whose ClientHello could not be read
        (too slow, unparseable) where some host uses other options: it refuses those hosts' names."""
        return self._guarded

    def listening_context(self, options_name: str) -> ssl.SSLContext:
        """The context to listen with for connections whose SNI maps to ``options_name``; ``KeyError``
        when those options are unknown or could not be built (their handshakes are to be refused)."""
        return self._groups[options_name].listening

    @property
    def context_count(self) -> int:
        """How many certificate contexts this store holds (listening contexts apart)."""
        return len(self._built)

    @property
    def names(self) -> frozenset[str]:
        """Every name served, wildcards as ``*.example.com``."""
        return frozenset(self._exact) | frozenset("*." + d for d in self._wildcard)

    def context_for(
        self, server_name: str | None, options_name: str = DEFAULT_TLS_OPTIONS
    ) -> ssl.SSLContext | None:
        """The context for ``server_name`` under these options: exact name, then one-label wildcard, then
        the default certificate; None when the handshake is to be refused. Cached (LRU) per options."""
        group = self._groups[options_name]
        name = _normalize(server_name) if server_name else ""
        cache = group.cache
        try:
            return cache[name]
        except KeyError:
            pass
        ctx = cache[name] = self._lookup(group, name)
        return ctx

    def _lookup(self, group: _Options, name: str) -> ssl.SSLContext | None:
        if group.refuse_all:
            return None
        if group.guard and name and options_for_host(self.host_options, name) != DEFAULT_TLS_OPTIONS:
            return None  # this name's options were not chosen before the handshake: refuse it
        pair = self._pair_for(name) if name else None
        ctx = group.by_pair.get(pair) if pair is not None else None
        if ctx is not None:
            return ctx
        return None if group.strict else group.listening

    def _callback(self, options_name: str) -> _SNICallback:
        """The SNI callback of the listening context of the options ``options_name``: switch the connection
        to the certificate for the name it asks, or refuse the handshake (unrecognized_name)."""

        def callback(sslobj: ssl.SSLObject, server_name: str | None, ctx: ssl.SSLContext) -> int | None:
            target = self.context_for(server_name, options_name)
            if target is None:
                return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME
            if target is not ctx:  # switching re-copies the certificate into the connection: only when needed
                sslobj.context = target
            return None

        return callback


def load_pem_files(cert_file: str, key_file: str) -> CertKeyPair:
    """Traefik's ``certFile``/``keyFile``: each either a path or the PEM text itself.

    Raises ``OSError`` when a path cannot be read; the content is checked by ``CertificateStore``.
    """
    return CertKeyPair(cert_pem=read_pem(cert_file), key_pem=read_pem(key_file))
