"""``redirectScheme``: the client is redirected to the same URL with ``scheme`` (and ``port``) when its
request's URL differs from that (Traefik's ``redirectscheme``).

The request's scheme is ``https`` on a TLS entry point, else ``http``, unless ``X-Forwarded-Proto`` says
otherwise (``http``/``ws``, ``https``/``wss``): from a trusted peer (``forwardedHeaders.trustedIPs``) or
set by an earlier middleware; an untrusted client's own header is ignored, as Traefik's forwarded-headers
handler drops it. Default ports are left out on both sides (``http``+80, ``https``+443). Without
``port`` the redirect names no port (``http://a:8080/x`` → ``https://a/x``); a request already at the
target URL passes on. Path and query are kept. 302 for GET and 307 for any other method; with
``permanent``, 301 and 308.
"""

from __future__ import annotations

from discover.middlewares.paths import RedirectScheme
from router.exchange import Exchange, Handler
from router.middlewares import BuildContext
from router.middlewares.paths_common import GoRe
from router.middlewares.redirect_regex import redirect, request_scheme

# Traefik's pattern and template: ${2} the host, ${4} the path and query; the port is the option's.
URI_PATTERN = r"^(https?:\/\/)?(\[[\w:.]+\]|[\w\._-]+)?(:\d+)?(.*)$"
_PROTO = {"http": "http", "ws": "http", "https": "https", "wss": "https"}


def forwarded_proto(ex: Exchange) -> str | None:
    """``X-Forwarded-Proto`` as Traefik's middlewares see it: an earlier middleware's value, else the
    client's when it is a trusted peer."""
    edit = ex.header_edits.get("x-forwarded-proto")
    if edit is not None:
        return edit[1]
    trusted = ex.ep.trusted
    if trusted is not None and trusted.trusts(ex.client_ip):
        return ex.headers.get("X-Forwarded-Proto")
    return None


def client_url(ex: Exchange) -> str:
    """Traefik's ``clientRequestURL``: ``scheme://host[:port]/path?query`` as the client asked."""
    scheme = request_scheme(ex)
    proto = forwarded_proto(ex)
    if proto:
        scheme = _PROTO.get(proto.lower(), scheme)
    host, port = ex.host_header, ""
    colon = host.rfind(":")
    if colon >= 0 and "]" not in host[colon:]:
        host, port = host[:colon], host[colon:]
    if (scheme == "http" and port == ":80") or (scheme == "https" and port == ":443"):
        port = ""
    return f"{scheme}://{host}{port}{ex.target}"


def build(options: RedirectScheme, ctx: BuildContext) -> object:
    scheme, port = options.scheme, options.port
    if not port or (scheme == "http" and port == "80") or (scheme == "https" and port == "443"):
        port = ""
    else:
        port = ":" + port
    rx = GoRe(URI_PATTERN, "scheme")
    tpl = rx.template(scheme + "://${2}" + port + "${4}")
    permanent = options.permanent

    def wrap(next_handler: Handler) -> Handler:
        async def redirect_scheme(ex: Exchange) -> None:
            await redirect(ex, rx, tpl, client_url(ex), permanent, next_handler)

        return redirect_scheme

    return wrap
