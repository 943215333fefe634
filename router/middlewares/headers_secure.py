"""The security headers of the ``headers`` middleware, as Traefik gets them from unrolled/secure.

When the request comes in: the host (``Host``, or the first non-empty ``hostsProxyHeaders`` header) must
be one of ``allowedHosts`` (case-insensitive, port included as in Go's ``req.Host``) unless
``isDevelopment``: otherwise the proxy answers ``500 Bad Host``. Whether the request is HTTPS: it came
over TLS, or one of ``sslProxyHeaders`` has exactly its value. Then the response gets, replacing whatever
the backend sent:

- ``Strict-Transport-Security: max-age=N[; includeSubDomains][; preload]`` when ``stsSeconds`` is not 0
  and the request is HTTPS (or ``forceSTSHeader``), never with ``isDevelopment``;
- ``X-Frame-Options`` (``customFrameOptionsValue``, else ``DENY`` with ``frameDeny``),
  ``X-Content-Type-Options: nosniff``, ``X-XSS-Protection`` (``customBrowserXSSValue``, else
  ``1; mode=block``), ``Content-Security-Policy`` (``$NONCE`` becomes a fresh ``'nonce-...'`` per
  request), its ``-Report-Only`` twin, ``Referrer-Policy``, ``Permissions-Policy``;
- ``Public-Key-Pins`` (``publicKey``) on HTTPS only, never with ``isDevelopment``.

Headers the proxy sets on the request (``X-Forwarded-*``) are read as the service will get them: a
client that is not trusted (``forwardedHeaders.trustedIPs``) cannot pass ``X-Forwarded-Proto: https`` or
``X-Forwarded-Host`` to fake HTTPS or an allowed host, as in Traefik, whose entry point rewrites them
before any middleware sees them.
"""

from __future__ import annotations

import base64
import os

from discover.middlewares.headers import Headers
from router.exchange import Exchange
from router.forwarded_view import is_managed
from router.forwarded_view import values as forwarded_values

__all__ = ["Secure", "request_header"]

_NONCE = "$NONCE"


def request_header(ex: Exchange, name: str) -> str:
    """A request header as Traefik's headers middleware reads it ("" when absent): middleware edits first,
    then, for an X-Forwarded-*/X-Real-Ip name in any spelling, what the entry point left on the request
    (:func:`router.forwarded_view.values`: an untrusted client's own never, X-Forwarded-For not yet
    appended), then the client's."""
    lname = name.lower()
    edit = ex.header_edits.get(lname)
    if edit is not None:
        return edit[1] or ""
    if is_managed(lname):
        found = forwarded_values(ex.info, lname)
        return found[0] if found else ""
    return ex.headers.get(name, "")


class Secure:
    """The secure part of one ``headers`` middleware, precomputed: ``check`` per request."""

    __slots__ = ("allowed", "hosts_headers", "ssl_headers", "always", "on_ssl", "csp")

    def __init__(self, o: Headers) -> None:
        dev = o.is_development
        self.allowed = frozenset(h.lower() for h in o.allowed_hosts) if o.allowed_hosts and not dev else None
        self.hosts_headers = o.hosts_proxy_headers
        self.ssl_headers = tuple(o.ssl_proxy_headers.items())
        always: list[tuple[str, str]] = []
        on_ssl: list[tuple[str, str]] = []
        if o.sts_seconds and not dev:
            sts = f"max-age={o.sts_seconds}"
            if o.sts_include_subdomains:
                sts += "; includeSubDomains"
            if o.sts_preload:
                sts += "; preload"
            (always if o.force_sts_header else on_ssl).append(("Strict-Transport-Security", sts))
        frame = o.custom_frame_options_value or ("DENY" if o.frame_deny else "")
        if frame:
            always.append(("X-Frame-Options", frame))
        if o.content_type_nosniff:
            always.append(("X-Content-Type-Options", "nosniff"))
        xss = o.custom_browser_xss_value or ("1; mode=block" if o.browser_xss_filter else "")
        if xss:
            always.append(("X-XSS-Protection", xss))
        if o.public_key and not dev:
            on_ssl.append(("Public-Key-Pins", o.public_key))
        # the two policies: fixed text, or split around $NONCE to be joined with a fresh nonce
        csp: list[tuple[str, list[str]]] = []
        for name, value in (
            ("Content-Security-Policy", o.content_security_policy),
            ("Content-Security-Policy-Report-Only", o.content_security_policy_report_only),
        ):
            if value and _NONCE in value:
                csp.append((name, value.split(_NONCE)))
            elif value:
                always.append((name, value))
        if o.referrer_policy:
            always.append(("Referrer-Policy", o.referrer_policy))
        if o.permissions_policy:
            always.append(("Permissions-Policy", o.permissions_policy))
        self.always = tuple(always)
        self.on_ssl = tuple(always + on_ssl)
        self.csp = tuple(csp)

    def host_allowed(self, ex: Exchange) -> bool:
        if self.allowed is None:
            return True
        host = ex.host_header
        for name in self.hosts_headers:
            value = request_header(ex, name)
            if value:
                host = value
                break
        return host.lower() in self.allowed

    def is_ssl(self, ex: Exchange) -> bool:
        if ex.scheme == "https":
            return True
        # Go compares Header.Get(k) == v: an absent header reads "", so a "" value matches its absence
        return any(request_header(ex, k) == v for k, v in self.ssl_headers)

    def response_headers(self, ex: Exchange) -> tuple[tuple[str, str], ...]:
        """The headers this request's answer gets (``host_allowed`` was checked)."""
        out = self.on_ssl if self.is_ssl(ex) else self.always
        if self.csp:
            nonce = "'nonce-" + base64.b64encode(os.urandom(16)).decode().rstrip("=") + "'"
            out = out + tuple((name, nonce.join(parts)) for name, parts in self.csp)
        return out
