"""``headers``: custom request and response headers, security headers and CORS (Traefik's ``headers``).

The order is Traefik's: a CORS preflight (``OPTIONS`` with ``Origin`` and
``Access-Control-Request-Method``) is answered ``200`` by the proxy at once, with the CORS headers only,
and goes no further. Any other request gets ``customRequestHeaders`` (an empty value removes the header;
``Host`` changes the host the service is asked for), then the security checks (``allowedHosts`` may
answer ``500 Bad Host``), then goes on. Its answer (the service's, or one made by a later middleware,
such as a 401) passes a :class:`~router.exchange.PassSink` that sets the security headers, then
``customResponseHeaders`` (set, or removed when empty: they win over the security headers), then the
CORS headers. Informational (1xx) heads pass unchanged.

Every header list and value is joined when the middleware is built (:mod:`headers_secure`,
:mod:`headers_cors`); a request costs a few dict operations. Options Traefik v3 removed
(``featurePolicy``, ``sslRedirect``, ``sslTemporaryRedirect``, ``sslHost``, ``sslForceHost``) are
ignored as there, with one warning naming each.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import Any

from discover.middlewares.headers import REMOVED, Headers
from router.exchange import EditSink, Exchange, PassSink, Sink, answer
from router.exchange import Headers as ResponseHeaders
from router.middlewares import Before, BuildContext
from router.middlewares.headers_cors import Cors
from router.middlewares.headers_secure import Secure, request_header

__all__ = ["build"]

log = logging.getLogger("dockroute.router")

_BAD_HOST = b"Bad Host\n"  # Go's http.Error, as unrolled/secure answers it
_NOSNIFF = (("X-Content-Type-Options", "nosniff"),)


class _Built:
    """One ``headers`` middleware with everything precomputed."""

    __slots__ = ("request_edits", "host", "response", "cors", "secure")

    def __init__(self, o: Headers) -> None:
        # (lower-case name, name, value or None to remove) for the request; Host handled apart
        edits = []
        host: str | None = None
        for name, value in o.custom_request_headers.items():
            if name.lower() == "host":
                if value:
                    host = value
                continue  # an empty Host removes nothing (Go keeps req.Host)
            edits.append((name, value or None))
        self.request_edits = tuple(edits)
        self.host = host
        self.response = tuple((name, value or None) for name, value in o.custom_response_headers.items())
        self.cors = Cors(o) if o.has_cors else None
        self.secure = Secure(o) if o.has_secure else None


class _HeadersSink(PassSink):
    """Sets the answer's headers: security ones (unless the request was refused), custom, CORS."""

    __slots__ = ("built", "ex", "secure_headers")

    def __init__(self, downstream: Sink, built: _Built, ex: Exchange) -> None:
        super().__init__(downstream)
        self.built = built
        self.ex = ex
        self.secure_headers: tuple[tuple[str, str], ...] = ()

    async def start(self, status: int, headers: ResponseHeaders, reason: str = "") -> None:
        if status >= 200:
            for name, value in self.secure_headers:
                headers[name] = value
            for name, maybe in self.built.response:
                if maybe is None:
                    headers.popall(name, None)
                else:
                    headers[name] = maybe
            cors = self.built.cors
            if cors is not None:
                cors.respond(headers, request_header(self.ex, "Origin"))
        await super().start(status, headers, reason)


def _set_host(ex: Exchange, host: str) -> None:
    """``customRequestHeaders.Host``: the service is asked for ``host`` (Go's ``req.Host``), while the
    ``X-Forwarded-Host``/``-Port`` the proxy sends keep the values of the request as it came in."""
    for name in ("X-Forwarded-Host", "X-Forwarded-Port"):
        if name.lower() not in ex.header_edits:
            ex.set_header(name, request_header(ex, name))
    ex.host_header = host


def build(options: Headers, ctx: BuildContext) -> Any:
    for key, instead in REMOVED.items():
        if _is_set(options, key):
            seen = ("headers-removed-option", ctx.name, key)
            if seen not in ctx.shared:
                ctx.shared[seen] = True
                log.warning(
                    "middleware %s (headers): option %s was removed in Traefik v3 and does nothing; %s",
                    ctx.name,
                    key,
                    instead,
                )
    built = _Built(options)
    cors, secure, edits, host = built.cors, built.secure, built.request_edits, built.host
    response_work = bool(built.response) or cors is not None or secure is not None

    def headers(ex: Exchange) -> Awaitable[None] | None:
        if cors is not None and ex.method == "OPTIONS":
            origin = ex.header("Origin")
            method = ex.header("Access-Control-Request-Method")
            if origin and method:
                head = cors.preflight(origin, method, ex.header("Access-Control-Request-Headers"))
                return answer(ex, 200, b"", head, content_type=None, reason="CORS preflight")
        for name, value in edits:
            if value is None:
                ex.remove_header(name)
            else:
                ex.set_header(name, value)
        if host is not None:
            _set_host(ex, host)
        sink = None
        if cors is not None:
            sink = ex.sink = _HeadersSink(ex.sink, built, ex)
        if secure is not None and not secure.host_allowed(ex):
            if sink is None and built.response:  # as the sink would: custom headers on the refusal
                ex.sink = EditSink(ex.sink, built.response)
            why = f"host {ex.host_header!r} not in allowedHosts"
            return answer(ex, 500, _BAD_HOST, _NOSNIFF, reason=why)
        if sink is not None:
            if secure is not None:
                sink.secure_headers = secure.response_headers(ex)
        elif response_work:
            # fixed headers only (no CORS: nothing depends on the answer): an EditSink, which lets an
            # answer nobody else reads be relayed as raw bytes
            if secure is None:
                ex.sink = EditSink(ex.sink, built.response)
            else:
                ex.sink = EditSink(ex.sink, (*secure.response_headers(ex), *built.response))
        return None

    return Before(headers)


def _is_set(options: Headers, key: str) -> bool:
    value = {
        "featurePolicy": options.feature_policy,
        "sslRedirect": options.ssl_redirect,
        "sslTemporaryRedirect": options.ssl_temporary_redirect,
        "sslHost": options.ssl_host,
        "sslForceHost": options.ssl_force_host,
    }[key]
    return value is not None
