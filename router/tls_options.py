"""Traefik's ``tls.options`` as OpenSSL handshake settings, and which options a host name uses.

Why one listening context per options set: Python's ``sni_callback`` can switch a connection to another
``SSLContext``, but OpenSSL's ``SSL_set_SSL_CTX`` only swaps the certificate (and the CA store used to
verify a client certificate): the protocol versions, verify mode and options were copied into the
connection when it was created from the listening context and stay. So the entry point picks the
listening context of the options set the ClientHello's SNI maps to (:func:`options_for_host`) before the
handshake, and every context that context's ``sni_callback`` switches to is built with the same options.

Every context built here carries the options name it was built for (``dockroute_options``), so the HTTPS
handler can tell which options a connection was made under (Traefik's domain-fronting check).

Values were checked against Go's names when the configuration was parsed (:mod:`discover.parse_tls`);
what cannot be applied here still raises (``ValueError``/``ssl.SSLError``/``OSError``): the store then
leaves that options set out and closes its connections, never serving it as something else.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping

import discover.tls_names as tls_names
from discover.model import DEFAULT_TLS_OPTIONS, TLSOptions
from router.pemfile import read_pem

OPTIONS_ATTR = "dockroute_options"  # on every SSLContext built for an options set: its OptionsStamp


class OptionsStamp:
    """What a handshake context was built under: the options' name, and whether that definition (the
    values and the text of the CA files they trust) is still the one in force.

    Every context of one definition shares one stamp, and a store built after a reload keeps the stamp
    of a definition that did not change. When a reload tightens options in place (same name, stricter
    values, another client CA), the app retires the old stamp and closes the connections made under it:
    a kept-alive connection must not keep what the new options would refuse."""

    __slots__ = ("name", "current")

    def __init__(self, name: str) -> None:
        self.name = name
        self.current = True

    def __repr__(self) -> str:
        return f"OptionsStamp({self.name!r}{'' if self.current else ', retired'})"


def definition(name: str, options: TLSOptions) -> tuple[object, ...]:
    """What identifies one definition of an options set: its name, its values and its CA files' text
    (read here: off the loop). An unreadable CA file makes a definition equal to no other."""
    try:
        cas: tuple[object, ...] = tuple(read_pem(ca).decode("ascii") for ca in options.client_auth.ca_files)
    except OSError:
        cas = (object(),)
    return (name, options, cas)


_VERIFY = {
    tls_names.NO_CLIENT_CERT: ssl.CERT_NONE,
    tls_names.VERIFY_CLIENT_CERT_IF_GIVEN: ssl.CERT_OPTIONAL,
    tls_names.REQUIRE_AND_VERIFY_CLIENT_CERT: ssl.CERT_REQUIRED,
}


def apply_options(ctx: ssl.SSLContext, options: TLSOptions, name: str | OptionsStamp) -> None:
    """Set ``options`` on a server context made by :func:`router.tls.server_context` (which already has
    the defaults: TLS 1.2+, Mozilla intermediate suites, ALPN http/1.1). Reads CA files: off the loop."""
    ctx.minimum_version = getattr(ssl.TLSVersion, tls_names.VERSIONS[options.min_version])
    if options.max_version:
        ctx.maximum_version = getattr(ssl.TLSVersion, tls_names.VERSIONS[options.max_version])
    _set_suites(ctx, options)
    if options.curve_preferences:
        _set_curves(ctx, [tls_names.CURVES[c] for c in options.curve_preferences])
    # dockroute speaks HTTP/1.1; TLS-ALPN-01 validators are answered before the handshake, by their own
    # context (router.server), so acme-tls/1 is not offered here (as before options existed).
    ctx.set_alpn_protocols([p for p in options.alpn_protocols if p == tls_names.HTTP_11])
    if options.disable_session_tickets:
        # Go then resumes no session at all. OP_NO_TICKET alone stops TLS 1.2 tickets only: OpenSSL still
        # sends TLS 1.3 tickets backed by its server-side cache, so none are sent either.
        ctx.options |= ssl.OP_NO_TICKET
        ctx.num_tickets = 0
    auth = options.client_auth
    mode = _VERIFY.get(auth.client_auth_type)
    if auth.client_auth_type == tls_names.REFUSED_DEFAULT:
        raise ValueError("they were refused when parsed (see the warning naming the key)")
    if mode is None:  # refused when parsed; a value from elsewhere must not be served as something else
        raise ValueError(f"client auth type {auth.client_auth_type} cannot be served")
    if mode != ssl.CERT_NONE:
        if not auth.ca_files:
            raise ValueError(f"{auth.client_auth_type} needs clientAuth.caFiles")
        for ca in auth.ca_files:
            ctx.load_verify_locations(cadata=read_pem(ca).decode("ascii"))
        ctx.verify_mode = mode
    setattr(ctx, OPTIONS_ATTR, name if isinstance(name, OptionsStamp) else OptionsStamp(name))


def _set_suites(ctx: ssl.SSLContext, options: TLSOptions) -> None:
    """TLS 1.2 and below only, as in Go; TLS 1.3 keeps OpenSSL's (sound) suites.

    A ``minVersion`` of TLS 1.0 or 1.1 is served as Go serves it: those versions need CBC suites (added to
    the defaults, as in Go's list, when none are configured) and SHA-1 handshake signatures, which
    OpenSSL 3 refuses above security level 0: so that level, for this options set only."""
    legacy = options.min_version in tls_names.LEGACY_VERSIONS
    if options.cipher_suites:
        suites = [tls_names.CIPHER_SUITES[s] for s in options.cipher_suites]
    elif legacy:
        current = [c["name"] for c in ctx.get_ciphers() if c["protocol"] != "TLSv1.3"]
        suites = current + [tls_names.CIPHER_SUITES[s] for s in tls_names.GO_DEFAULT_CBC]
    else:
        return  # the defaults server_context set
    ctx.set_ciphers(":".join(dict.fromkeys(suites)) + (":@SECLEVEL=0" if legacy else ""))


def _set_curves(ctx: ssl.SSLContext, groups: list[str]) -> None:
    """Key-exchange groups in preference order. ``SSLContext.set_groups`` takes them all where the ssl
    module has it; Python 3.11's ``set_ecdh_curve`` takes one: the first."""
    setter = getattr(ctx, "set_groups", None)
    if setter is not None:
        setter(":".join(groups))
        return
    ctx.set_ecdh_curve(groups[0])  # the rest was named in a warning when the options were parsed


def options_for_host(host_options: Mapping[str, str], host: str) -> str:
    """The options name for a (lower-case, dot-less) host: exact entry, then ``*.parent`` for one label,
    else ``default`` (Traefik's choice by SNI, and by Host header for its domain-fronting check)."""
    name = host_options.get(host)
    if name is not None:
        return name
    _, dot, parent = host.partition(".")
    if dot and parent:
        name = host_options.get("*." + parent)
        if name is not None:
            return name
    return DEFAULT_TLS_OPTIONS


def union_host_options(per_entry_point: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    """Host → TLS options name over every entry point, for the guard of a ClientHello that could not be
    read before the handshake (it refuses a host with non-default options). Each entry point applies its
    own map; where they disagree on a host, the union keeps the non-default options, so the guard errs on
    the side of the client-certificate check."""
    out: dict[str, str] = {}
    for hosts in per_entry_point.values():
        for host, options in hosts.items():
            if out.get(host, DEFAULT_TLS_OPTIONS) == DEFAULT_TLS_OPTIONS:
                out[host] = options
    return out


def uses_other_options(host_options: Mapping[str, str]) -> bool:
    """Whether any host of this map uses options other than ``default`` (else no ClientHello is peeked
    and no request is checked for fronting: the path stays as it was before options existed)."""
    return any(v != DEFAULT_TLS_OPTIONS for v in host_options.values())
