"""``redirectRegex``: when ``regex`` matches the request's URL, the client is redirected to the URL
``replacement`` makes of it (Traefik's ``redirect`` with ``rawURL``).

The URL matched is ``http://`` (``https://`` on a TLS entry point) + the Host header as sent (port
included) + the path and query as they are at this point of the chain. The replacement is Go's
``ReplaceAllString`` template (``$1``, ``${1}``, ``${name}``, ``$$``); a result equal to the URL passes
the request on. 302 for GET and 307 for any other method; with ``permanent``, 301 and 308.
"""

from __future__ import annotations

from discover.middlewares.paths import RedirectRegex
from router.exchange import Exchange, Handler, answer
from router.middlewares import BuildContext
from router.middlewares.paths_common import GoRe, Template, path_unescape

_STATUS = {(False, True): 302, (False, False): 307, (True, True): 301, (True, False): 308}
_TEXT = {301: "Moved Permanently", 302: "Found", 307: "Temporary Redirect", 308: "Permanent Redirect"}


def request_scheme(ex: Exchange) -> str:
    """``https`` on a TLS entry point, else the scheme of an absolute-form request target, else ``http``
    (Traefik: the ``RequestURI``'s scheme, overridden by ``req.TLS``)."""
    if ex.scheme == "https":
        return "https"
    target = ex.msg.path
    if target[:1] != "/" and target.startswith("https://"):
        return "https"
    return "http"


def location(url: str) -> str | None:
    """``url`` as Go's ``url.Parse(...).String()`` writes it for ``Location``, or None where ``url.Parse``
    fails (a control character, a malformed escape before the query): Traefik answers 500 then."""
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        return None
    head = url.partition("?")[0].partition("#")[0]
    if path_unescape(head) is None:
        return None
    if url.isascii() and " " not in url:
        return url
    return "".join(
        c if c.isascii() and c != " " else "".join(f"%{b:02X}" for b in c.encode("utf-8", "surrogateescape"))
        for c in url
    )


async def redirect(
    ex: Exchange, rx: GoRe, tpl: Template, old: str, permanent: bool, next_handler: Handler
) -> None:
    """Traefik's ``redirect.ServeHTTP`` once the URL is known: pass on when ``rx`` does not match or the
    URL does not change, else answer the redirect."""
    if not rx.matches(old):
        await next_handler(ex)
        return
    new = rx.replace_all(old, tpl)
    if new == old:
        await next_handler(ex)
        return
    loc = location(new)
    if loc is None:
        await answer(ex, 500, "Internal Server Error\n", reason=f"redirect to an invalid URL {new!r}")
        return
    status = _STATUS[(permanent, ex.method == "GET")]
    await answer(ex, status, _TEXT[status], [("Location", loc)], reason=f"redirected to {loc}")


def build(options: RedirectRegex, ctx: BuildContext) -> object:
    rx = GoRe(options.regex, "regex")
    tpl = rx.template(options.replacement)
    permanent = options.permanent

    def wrap(next_handler: Handler) -> Handler:
        async def redirect_regex(ex: Exchange) -> None:
            old = f"{request_scheme(ex)}://{ex.host_header}{ex.target}"
            await redirect(ex, rx, tpl, old, permanent, next_handler)

        return redirect_regex

    return wrap
