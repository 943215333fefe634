"""``forwardAuth``: every request is first put to an auth server (Authelia, Authentik, oauth2-proxy...);
a 2xx answer lets it through, any other answer goes back to the client as it is (Traefik's
``forwardauth``).

The auth request is a GET (the request's method with ``preserveRequestMethod``) to ``address`` itself,
carrying the request's headers as the entry point left them (X-Forwarded-*/X-Real-Ip as the backend and
rules get them, :mod:`router.forwarded_view`; only ``authRequestHeaders`` when set; hop-by-hop ones never)
and ``X-Forwarded-Method``/``-Proto``/``-Host``/``-Uri``/``-For``, which auth servers use to tell what is
being asked for: with ``trustForwardHeader`` unset, as Traefik's legacy behaviour (those five computed,
the others passed); ``false`` drops every ``X-Forwarded-*`` first; ``true`` keeps them and appends the
peer to ``X-Forwarded-For``. Redirects are not followed: a 302 to a login page is an answer for the
client, its relative ``Location`` resolved against ``address`` unless ``preserveLocationHeader``.

On a 2xx, ``authResponseHeaders`` (and headers matching ``authResponseHeadersRegex``, an RE2 pattern
compiled here, at build time) replace the request's headers of those names; ``addAuthCookiesToResponse``
cookies from the auth answer are set on the backend's response. The auth server unreachable or too slow
(30 s, as Traefik) is a 500, with one log line per distinct failure every few seconds at most.

The HTTP client (one ``aiohttp.ClientSession`` per built middleware) is created on the first request:
``build`` runs in a worker thread, with no event loop.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import urljoin

import aiohttp
from multidict import CIMultiDict

from discover.goregex import GoRegexp, GoRegexpError, compile_go
from discover.middlewares.auth import ForwardAuth, ForwardAuthTLS
from router.exchange import Exchange, Handler, Headers, PassSink, answer
from router.forwarded_view import HOSTNAME, forwarded_port, is_managed, request_values, trusts
from router.headers import REQUEST_DROP
from router.middlewares import BuildContext, MiddlewareError
from router.pemfile import pem_file, read_pem

__all__ = ["build", "canonical"]

log = logging.getLogger("dockroute.router")

TIMEOUT = 30.0  # Traefik's client timeout for the auth request
_LOG_EVERY = 10.0  # seconds between two log lines about the same failing auth server
# Never sent to the auth server: what the proxied request drops (router.headers.REQUEST_DROP: hop-by-hop
# and framing headers, httpoxy's Proxy, HTTP2-Settings) but Proxy-Authorization, which Traefik sends it on
# purpose (RFC 7235 4.4), and Go's "Trailers" spelling. An untrusted client's Forwarded goes too (below).
_NOT_COPIED = frozenset(n.decode() for n in REQUEST_DROP - {b"proxy-authorization"}) | {"trailers"}
_UNTRUSTED_NOT_COPIED = _NOT_COPIED | {"forwarded"}
# Not passed from a refusing auth answer to the client: Traefik's forwardAuth removes its own hopHeaders list
# there (Connection, Keep-Alive, Te, Trailers, Transfer-Encoding, Upgrade), not Go's ReverseProxy set a
# backend's answer loses (router.headers.RESPONSE_DROP): a 407's Proxy-Authenticate, the challenge RFC 7235
# 3.2 requires with it, reaches the client. Content-Length is the framing dockroute writes itself.
_ANSWER_DROP = frozenset(
    ("connection", "keep-alive", "te", "trailers", "transfer-encoding", "upgrade", "content-length")
)
# The headers Traefik's entry point sets on every request (router.forwarded_view.entry_values' order, then
# X-Forwarded-Server): what a middleware finds there, the auth request's copy included.
_ENTRY_HEADERS = ("X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Forwarded-Port", "X-Real-Ip")
_ENTRY_NAMES = frozenset(n.lower() for n in _ENTRY_HEADERS) | {"x-forwarded-server"}
_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_pending_closes: set[asyncio.Task[None]] = set()


def canonical(name: str) -> str:
    """Go's ``http.CanonicalHeaderKey``: ``x-auth-user`` → ``X-Auth-User`` (what the regex sees)."""
    if not name or any(c not in _TOKEN for c in name):
        return name
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


def request_headers(ex: Exchange, trusted: bool = True) -> list[tuple[str, str]]:
    """The request's headers as the next handler would send them (client's, then middlewares' edits),
    without hop-by-hop ones, and without ``Forwarded`` unless the client is ``trusted`` (the entry point's
    forwardedHeaders), as the proxied request drops it."""
    raw_conn = ex.headers.get("Connection", "")
    tokens = {t.strip().lower() for t in raw_conn.split(",") if t.strip()}
    edits = ex.header_edits
    drop = _NOT_COPIED if trusted else _UNTRUSTED_NOT_COPIED
    out = []
    for name, value in ex.headers.items():
        ln = name.lower()
        if ln in drop or ln in tokens or ln in edits:
            continue
        out.append((name, value))
    out.extend((name, value) for name, value in edits.values() if value is not None)
    return out


def request_uri(ex: Exchange) -> str:
    """The request's URI as the service will get it (path normalised, dot segments removed: what
    Traefik sends once it has sanitised the path), never the client's raw target: an auth rule for
    ``/public/`` must not pass ``/public/../admin`` that the service gets as ``/admin``. ``ex.path`` is
    escaped already, as on the request line, so it is sent as it is."""
    return ex.target


class _ForwardAuth:
    """One built forwardAuth: its settings, compiled regex, TLS context and (once a request came) its
    HTTP client. Calling it is the wrap."""

    def __init__(self, o: ForwardAuth, name: str, regex: GoRegexp | None, tls: ssl.SSLContext | None) -> None:
        self.o = o
        self.name = name
        self.regex = regex
        self.tls = tls
        self.allowed = tuple(dict.fromkeys(h.lower() for h in o.auth_request_headers))
        self.response_headers = tuple(dict.fromkeys(canonical(h) for h in o.auth_response_headers))
        self.cookies = frozenset(o.add_auth_cookies_to_response)
        self.session: aiohttp.ClientSession | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._last_log = ("", 0.0)

    # -- the auth request -------------------------------------------------------------------------------

    def auth_headers(self, ex: Exchange) -> CIMultiDict[str]:
        """What the auth server is sent, as Traefik's forwardAuth builds it (writeHeader, or oldWriteHeader
        with ``trustForwardHeader`` unset) from the request as its entry point left it: the client's
        headers, a managed X-Forwarded-*/X-Real-Ip (any spelling) only from a trusted peer, and the entry
        point's own values (:func:`router.forwarded_view.entry_values`, what the backend and rules get too)
        over them; ``false`` drops every managed one, then the ``authRequestHeaders`` filter, then the
        X-Forwarded-* the auth request itself sets."""
        trust = self.o.trust_forward_header
        info = ex.info
        trusted = trusts(info)
        edits = ex.header_edits
        out: CIMultiDict[str] = CIMultiDict()
        for name, value in request_headers(ex, trusted):
            if is_managed(name):
                ln = name.lower()
                if trust is False:
                    continue  # Traefik's DeleteXForwardedHeaders: every spelling, whoever set it
                if ln not in edits and (not trusted or ln in _ENTRY_NAMES):
                    continue  # the entry point's value comes instead (a trusted peer's is in it)
            out.add(name, value)
        if trust is not False:
            for name, value in zip(_ENTRY_HEADERS, request_values(info, trusted), strict=True):
                if value and name.lower() not in edits:
                    out.add(name, value)
            if "x-forwarded-server" not in edits:
                out.add("X-Forwarded-Server", HOSTNAME)
        if self.allowed:
            out = CIMultiDict((k, v) for k, v in out.items() if k.lower() in self.allowed)
        host = ex.host_header
        tls = ex.scheme == "https"
        computed = {
            "X-Forwarded-Method": info.method,
            "X-Forwarded-Proto": "https" if tls else "http",  # Go's req.TLS: never ws/wss here
            "X-Forwarded-Host": host,
            "X-Forwarded-Uri": request_uri(ex),
        }
        if trust is None:  # Traefik's legacy behaviour: these four and X-Forwarded-For always set
            out.update(computed)
            out["X-Forwarded-For"] = ex.client_ip
            return out
        prior = ", ".join(out.getall("X-Forwarded-For", ()))
        out["X-Forwarded-For"] = f"{prior}, {ex.client_ip}" if prior else ex.client_ip
        for name, value in computed.items():
            if name not in out:
                out[name] = value
            if name == "X-Forwarded-Proto" and "X-Forwarded-Port" not in out:
                out["X-Forwarded-Port"] = forwarded_port(out[name], host, tls)
        return out

    def client(self) -> aiohttp.ClientSession:
        if self.session is None or self.session.closed:
            self.loop = asyncio.get_running_loop()
            # limit=0: no cap on connections to the auth server (Go's client has none; aiohttp's 100
            # would queue every auth request past it)
            connector = aiohttp.TCPConnector(ssl=self.tls if self.tls is not None else True, limit=0)
            self.session = aiohttp.ClientSession(
                connector=connector,
                # No cookie jar: a Set-Cookie from the auth server to one client must never be sent on
                # another client's auth request (that would log anyone in as the last user). Go's
                # http.Client, which Traefik uses, keeps no cookies either.
                cookie_jar=aiohttp.DummyCookieJar(),
                timeout=aiohttp.ClientTimeout(total=TIMEOUT),
                auto_decompress=False,
                # none of aiohttp's own: the auth server sees the client's (Traefik sends no User-Agent
                # when the client sent none)
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding"),
            )
        return self.session

    async def ask(self, ex: Exchange) -> tuple[int, CIMultiDict[str], bytes] | None:
        """The auth server's status, headers and body; None when it could not be asked (answered)."""
        o = self.o
        body: bytes | None = None
        if o.forward_body and ex.method != "CONNECT":
            body = await ex.read_body(o.max_body_size if o.max_body_size >= 0 else None)
            if body is None:
                await answer(ex, 401, reason=f"forwardAuth: request body over maxBodySize {o.max_body_size}")
                return None
        method = ex.method if o.preserve_request_method else "GET"
        try:
            async with self.client().request(
                method, o.address, headers=self.auth_headers(ex), data=body or None, allow_redirects=False
            ) as resp:
                data = await _read_limited(resp, o.max_response_body_size)
                if data is None:
                    await answer(ex, 401, reason="forwardAuth: auth answer over maxResponseBodySize")
                    return None
                return resp.status, CIMultiDict(resp.headers), data
        except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as exc:
            self._log_failure(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
            await answer(ex, 500, reason="forwardAuth: auth server unreachable")
            return None

    def _log_failure(self, why: str) -> None:
        now = time.monotonic()
        last, at = self._last_log
        if why != last or now - at >= _LOG_EVERY:
            self._last_log = (why, now)
            log.error("middleware %s: cannot ask the auth server %s: %s", self.name, self.o.address, why)

    # -- the answer -------------------------------------------------------------------------------------

    async def refuse(self, ex: Exchange, status: int, headers: CIMultiDict[str], body: bytes) -> None:
        """Pass the auth server's non-2xx answer to the client (or the sign-in redirect)."""
        if self.o.auth_signin_url and status == 401:
            url = self.o.auth_signin_url
            page = (
                f'<a href="{_html_escape(url)}">Found</a>.\n\n' if ex.info.method in ("GET", "HEAD") else ""
            )
            await answer(
                ex,
                302,
                page,
                (("Location", url),),
                content_type="text/html; charset=utf-8",
                reason="forwardAuth: to sign-in",
            )
            return
        out = Headers()
        for name, value in headers.items():
            if name.lower() not in _ANSWER_DROP:
                out.add(name, value)
        location = headers.get("Location")
        if location and not self.o.preserve_location_header:
            out["Location"] = urljoin(self.o.address, location)
        await answer(
            ex, status, body, out, content_type=None, reason=f"forwardAuth: auth server said {status}"
        )

    def grant(self, ex: Exchange, headers: CIMultiDict[str]) -> None:
        """Copy the auth answer's chosen headers into the request (replacing the client's)."""
        for name in self.response_headers:
            ex.remove_header(name)
            values = headers.getall(name, ())
            if values:
                ex.set_header(name, ", ".join(values))
        if self.regex is not None:
            matches = self.regex.matches
            names = {canonical(n) for n, _ in request_headers(ex)}
            for name in names:
                if matches(name):
                    ex.remove_header(name)
            for name in dict.fromkeys(canonical(n) for n in headers):
                if matches(name):
                    ex.set_header(name, ", ".join(headers.getall(name)))

    def __call__(self, next_handler: Handler) -> Handler:
        async def forward_auth(ex: Exchange) -> None:
            got = await self.ask(ex)
            if got is None:
                return
            status, headers, body = got
            if not 200 <= status < 300:
                await self.refuse(ex, status, headers, body)
                return
            self.grant(ex, headers)
            if self.cookies:
                auth_cookies = [
                    c for c in headers.getall("Set-Cookie", ()) if _cookie_name(c) in self.cookies
                ]
                if auth_cookies:
                    ex.sink = _CookieSink(ex.sink, self.cookies, auth_cookies)
            await next_handler(ex)

        return forward_auth

    def __del__(self) -> None:
        """A middleware replaced by a reload closes its client (on its loop, from whatever thread)."""
        session, loop = self.session, self.loop
        if session is None or session.closed or loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(_close_later, session)
        except RuntimeError:
            pass


def _close_later(session: aiohttp.ClientSession) -> None:
    task = asyncio.ensure_future(session.close())
    _pending_closes.add(task)
    task.add_done_callback(_pending_closes.discard)


class _CookieSink(PassSink):
    """Sets the auth server's ``addAuthCookiesToResponse`` cookies on the response, replacing the
    backend's cookies of those names."""

    def __init__(self, downstream: Any, names: frozenset[str], cookies: list[str]) -> None:
        super().__init__(downstream)
        self.names = names
        self.cookies = cookies

    async def start(self, status: int, headers: Headers, reason: str = "") -> None:
        kept = [c for c in headers.getall("Set-Cookie", ()) if _cookie_name(c) not in self.names]
        headers.popall("Set-Cookie", None)
        for cookie in (*kept, *self.cookies):
            headers.add("Set-Cookie", cookie)
        await super().start(status, headers, reason)


def _cookie_name(set_cookie: str) -> str:
    return set_cookie.split(";", 1)[0].split("=", 1)[0].strip()


def _html_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&#34;")


async def _read_limited(resp: aiohttp.ClientResponse, limit: int) -> bytes | None:
    """The whole body, or None when it is longer than ``limit`` bytes (-1: no limit)."""
    if limit < 0:
        return await resp.read()
    parts: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_any():
        size += len(chunk)
        if size > limit:
            return None
        parts.append(chunk)
    return b"".join(parts)


def _tls_context(tls: ForwardAuthTLS) -> ssl.SSLContext:
    """The client TLS context for an https auth server (``ca`` replaces the system roots, as in Go)."""
    try:
        if tls.ca:
            ctx = ssl.create_default_context(cadata=read_pem(tls.ca).decode("ascii", "replace"))
        elif tls.insecure_skip_verify:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        else:
            ctx = ssl.create_default_context()
    except (OSError, ssl.SSLError, ValueError) as exc:
        raise MiddlewareError("tls.ca", f"cannot load {_describe(tls.ca)}: {exc}") from None
    if tls.insecure_skip_verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if tls.cert:
        try:
            with pem_file(read_pem(tls.cert)) as cert, pem_file(read_pem(tls.key)) as key:
                ctx.load_cert_chain(cert, key, password=_no_password)
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise MiddlewareError(
                "tls.cert", f"{_describe(tls.cert)} / {_describe(tls.key)}: {exc}"
            ) from None
    return ctx


def _no_password() -> Any:
    raise ValueError("the private key is encrypted; an unencrypted key is needed")


def _describe(value: str) -> str:
    return "(inline PEM)" if "-----BEGIN" in value else value


def _check_names(names: Iterable[str], option: str) -> None:
    for i, name in enumerate(names):
        if not name or any(c not in _TOKEN for c in name):
            raise MiddlewareError(f"{option}[{i}]", f"not a valid header name: {name!r}")


# Rebuilt on every configuration change, as Traefik does: the TLS files are read again (a rotated client
# certificate is picked up) and nothing else is kept.
REUSE = False


def build(options: ForwardAuth, ctx: BuildContext) -> object:
    _check_names(options.auth_response_headers, "authResponseHeaders")
    _check_names(options.auth_request_headers, "authRequestHeaders")
    regex = None
    if options.auth_response_headers_regex:
        try:
            regex = compile_go(options.auth_response_headers_regex)
        except GoRegexpError as exc:
            raise MiddlewareError("authResponseHeadersRegex", str(exc)) from None
    tls = None
    if options.tls is not None:
        if options.tls.ca_optional is not None:
            log.warning(
                "middleware %s: tls.caOptional is deprecated and has no effect (as in Traefik)", ctx.name
            )
        tls = _tls_context(options.tls)
    if options.header_field:
        log.warning(
            "middleware %s: headerField only names the user in Traefik's access log, which dockroute's "
            "access log has no field for: it has no effect",
            ctx.name,
        )
    if options.forward_body and options.max_body_size < 0:
        log.warning(
            "middleware %s: forwardBody without maxBodySize reads request bodies of any size", ctx.name
        )
    return _ForwardAuth(options, ctx.name, regex, tls)
