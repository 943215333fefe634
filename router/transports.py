"""Client TLS for backends: one :class:`BuiltTransport` per ``serversTransport``, built off the event loop.

A service reaches its backends through the transport it names (``loadBalancer.serversTransport``), or the
static default one (``default@internal``). Building a transport reads PEM files and does crypto, so
:func:`build_transports` is a pure function meant for a worker thread; the pool only swaps the result in.

Verification follows Go's ``crypto/tls`` as Traefik configures it:

- ``rootCAs`` replace the system roots (they are not added to them);
- ``insecureSkipVerify`` accepts any certificate and any name;
- ``serverName`` is sent as SNI and is the name verified, instead of the server URL's host;
- ``peerCertURI``: the first URI SAN of the backend's certificate must match it (its host part ignored,
  case-insensitively, as Traefik compares them). The chain is verified against the roots even with
  ``insecureSkipVerify`` (Traefik's ``VerifyPeerCertificate`` runs a chain check of its own), the host name
  is then not checked;
- ``certificates``: the client certificate presented to backends that ask for one.

A transport whose files cannot be read or parsed is *unusable*: it is logged once, by name, and backends
behind it get no connection (the proxy answers 502). It never falls back to another transport, which could
be less strict (no client certificate, other roots).
"""

from __future__ import annotations

import contextlib
import logging
import os
import ssl
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from discover.model import CertificateFile, ServersTransport
from router.pemfile import pem_file

log = logging.getLogger("dockroute.transport")

DEFAULT = "default@internal"  # Traefik's name for the static ``serversTransport``

_PEM = "-----BEGIN"


class TransportUnusable(Exception):
    """A transport's files could not be read or parsed; the message says which and why."""


@dataclass(frozen=True, slots=True, eq=False)
class BuiltTransport:
    """One transport, ready to connect with: its settings and, unless ``error``, its client TLS context.

    Compared by identity: a connection made through one ``BuiltTransport`` is only pooled while that very
    object is current, so changed settings never reuse a connection made under the old ones.
    """

    name: str
    settings: ServersTransport
    context: ssl.SSLContext | None
    error: str = ""

    @property
    def server_name(self) -> str | None:
        """The name sent as SNI and verified; None: the backend URL's host."""
        return self.settings.server_name or None


@dataclass(frozen=True, slots=True)
class Transports:
    """Every transport of a snapshot by qualified name, plus the static default (``DEFAULT``)."""

    default: BuiltTransport
    named: Mapping[str, BuiltTransport]

    def get(self, name: str | None) -> BuiltTransport | None:
        """The transport a service names (None, "" or ``default@internal``: the default), or None."""
        if not name or name == DEFAULT:
            return self.default
        return self.named.get(name)

    def all(self) -> Iterator[BuiltTransport]:
        yield self.default
        yield from self.named.values()


def build_transports(
    named: Mapping[str, ServersTransport],
    default: ServersTransport,
    previous: Transports | None = None,
) -> Transports:
    """Build every transport (reads files, loads certificates: call it off the event loop).

    A transport whose settings equal its ``previous`` one is carried over as it is: same context (no file
    is read again, no repeated error line), and the pool keeps its idle connections.
    """
    old_default = previous.default if previous is not None else None
    built_default = _reuse_or_build(DEFAULT, default, old_default)
    built: dict[str, BuiltTransport] = {}
    for name in sorted(named):
        if name == DEFAULT:
            continue  # the static transport owns this name, as in Traefik
        old = previous.named.get(name) if previous is not None else None
        built[name] = _reuse_or_build(name, named[name], old)
    return Transports(default=built_default, named=MappingProxyType(built))


def _reuse_or_build(name: str, settings: ServersTransport, old: BuiltTransport | None) -> BuiltTransport:
    if old is not None and old.settings == settings:
        return old
    try:
        return BuiltTransport(name, settings, make_client_context(settings, name))
    except TransportUnusable as exc:
        log.error("serversTransport %s is unusable, its services get no connection: %s", name, exc)
        return BuiltTransport(name, settings, None, str(exc))


def make_client_context(
    settings: ServersTransport, name: str = DEFAULT, alpn: tuple[str, ...] = ("http/1.1",)
) -> ssl.SSLContext:
    """The client TLS context for backends of one transport; raises :class:`TransportUnusable`. The one
    builder for HTTP ``serversTransports`` and TCP ones (:mod:`router.tcp.service`, ``alpn`` empty: Traefik's
    TCP dialer offers no protocol)."""
    if settings.root_cas:
        try:
            ctx = ssl.create_default_context(cadata=_root_cas(settings.root_cas))
        except (ssl.SSLError, ValueError) as exc:
            raise TransportUnusable(f"rootCAs: not valid PEM certificates: {exc}") from None
    elif settings.insecure_skip_verify and not settings.peer_cert_uri:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies nothing: spare loading the system roots
    else:
        ctx = ssl.create_default_context()  # the system roots: ~50 ms, hence off the loop
    if settings.insecure_skip_verify:
        ctx.check_hostname = False
        # Traefik still verifies the chain (not the name) when a peerCertURI is required.
        ctx.verify_mode = ssl.CERT_REQUIRED if settings.peer_cert_uri else ssl.CERT_NONE
    if settings.peer_cert_uri:
        ctx.sslobject_class = _uri_checking_class(settings.peer_cert_uri)
    if settings.certificates:
        _load_client_certificate(ctx, settings.certificates, name)
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    return ctx


def _root_cas(values: tuple[str, ...]) -> str:
    """All ``rootCAs`` (file paths or inline PEM) as one PEM text."""
    pems = []
    for i, value in enumerate(values):
        if _PEM in value:
            pems.append(value)
            continue
        try:
            with open(value, encoding="ascii", errors="replace") as f:
                pems.append(f.read())
        except OSError as exc:
            raise TransportUnusable(f"rootCAs[{i}] {value}: {exc.strerror or exc}") from None
        if _PEM not in pems[-1]:
            raise TransportUnusable(f"rootCAs[{i}] {value}: no PEM certificate in it")
    return "\n".join(pems)


def _load_client_certificate(ctx: ssl.SSLContext, certs: tuple[CertificateFile, ...], name: str) -> None:
    """Present ``certs[0]``. OpenSSL holds one client certificate per context where Go would pick the first
    one the backend's request accepts, so any further certificate is named in a warning, not ignored."""
    if len(certs) > 1:
        log.warning(
            "serversTransport %s: only the first of %d client certificates (%s) is presented",
            name,
            len(certs),
            _describe(certs[0].cert_file),
        )
    cert = certs[0]
    with contextlib.ExitStack() as stack:
        cert_path = _as_path(cert.cert_file, "certFile", stack)
        key_path = _as_path(cert.key_file, "keyFile", stack)
        try:
            ctx.load_cert_chain(cert_path, key_path, password=_no_password)
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise TransportUnusable(
                f"client certificate {_describe(cert.cert_file)} / {_describe(cert.key_file)}: {exc}"
            ) from None


def _no_password() -> Any:
    """Never let OpenSSL prompt on a terminal for an encrypted key (it would block the process)."""
    raise ValueError("the private key is encrypted; Traefik and dockroute need an unencrypted key")


def _describe(value: str) -> str:
    return "(inline PEM)" if _PEM in value else value


def _as_path(value: str, what: str, stack: contextlib.ExitStack) -> str:
    """A path OpenSSL can open for a file path or inline PEM (held in memory by :func:`pem_file` until
    ``stack`` closes)."""
    if _PEM not in value:
        if not os.path.isfile(value):
            raise TransportUnusable(f"client certificate {what} {value}: no such file")
        return value
    return stack.enter_context(pem_file(value.encode()))


def refusing_context(why: str) -> ssl.SSLContext:
    """A client context whose every handshake fails at once with ``why`` (nothing is sent): what a caller
    that needs a context gets for a transport that does not exist or could not be built."""

    class Refused(ssl.SSLObject):
        def do_handshake(self) -> None:
            raise ssl.SSLError(why)

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # no trust anchors either: nothing could verify
    ctx.sslobject_class = Refused
    return ctx


def uri_matches(expected: str, got: str) -> bool:
    """Traefik's peerCertURI comparison: the expected URI with the certificate's host put in it, compared
    case-insensitively (the host is left to the chain's name constraints, as in SPIFFE)."""
    want, have = urlsplit(expected), urlsplit(got)
    return urlunsplit(want._replace(netloc=have.netloc)).casefold() == urlunsplit(have).casefold()


def _uri_checking_class(expected: str) -> type[ssl.SSLObject]:
    """An ``SSLObject`` class that fails the handshake unless the peer's first URI SAN matches ``expected``.

    Set as the context's ``sslobject_class``: asyncio (and uvloop, and aiohttp's health probes) drive the
    handshake through it, so the check holds for every connection made with the context.
    """

    class PeerURICheck(ssl.SSLObject):
        def do_handshake(self) -> None:
            super().do_handshake()
            cert = self.getpeercert() or {}
            uris = [v for k, v in cert.get("subjectAltName", ()) if k == "URI"]
            if not uris or not uri_matches(expected, uris[0]):
                got = uris[0] if uris else "no URI SAN"
                raise ssl.SSLCertVerificationError(
                    f"peer certificate mismatch: got {got}, want peerCertURI {expected}"
                )

    return PeerURICheck
