"""``dashboard@internal``: the dashboard page, three static files shipped in the package
(``router/api/dashboard/``) that poll the API from the browser.

The files are read once, when the handler is built (the first time: they never change while the process
runs), with their ETag worked out then, so a request costs a dictionary lookup and no file I/O on the
event loop. The page finds the API relative to its own address, so it works under ``api.basePath`` and
behind a user's router that strips a prefix; everything it shows goes into the page as text, never as
markup, and the strict ``Content-Security-Policy`` sent with it allows only its own script and style.

Paths: Traefik's internal router strips ``<basePath>dashboard`` before the handler; a handler reached
without that strip (``api@internal`` serving ``/dashboard/`` itself, or a user's router) gets the whole
path, which is stripped here too. ``.../dashboard`` (no slash) is redirected to ``dashboard/`` so the
page's relative addresses resolve under it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from importlib import resources

from router.exchange import Exchange, Handler, Headers, answer

__all__ = ["ASSETS", "dashboard_handler"]

# file name → Content-Type; the index is also served for the directory itself
ASSETS = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
_INDEX = "index.html"

# Only the page's own script, style and API calls; no framing, no forms, no inline anything.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_COMMON = (
    ("Content-Security-Policy", CSP),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    # revalidate every time: a new dockroute version ships new files under the same names, and the
    # ETag makes the revalidation a bodiless 304
    ("Cache-Control", "no-cache"),
)


@dataclass(frozen=True, slots=True)
class Asset:
    """One file of the page as it is served: its bytes, their type and their strong ETag."""

    body: bytes
    content_type: str
    etag: str


@cache
def load_assets() -> dict[str, Asset]:
    """Read the page's files from the installed package (once per process: ``cache``)."""
    folder = resources.files("router.api").joinpath("dashboard")
    out = {}
    for name, ctype in ASSETS.items():
        body = folder.joinpath(name).read_bytes()
        out[name] = Asset(body, ctype, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')
    return out


def _normal_base(base_path: str) -> str:
    """``api.basePath`` as a prefix ending in one slash (``/``, ``/traefik/``)."""
    return "/" + base_path.strip("/") + "/" if base_path.strip("/") else "/"


def asset_name(path: str, base: str) -> str | None:
    """The asset a (possibly unstripped) request path names; None when it names none. ``base`` is the
    normalised base path."""
    path = path.split("?", 1)[0]
    for prefix in (base + "dashboard", "/dashboard"):
        if path == prefix or path.startswith(prefix + "/"):
            path = path[len(prefix) :]
            break
    name = path.lstrip("/")
    if name == "":
        return _INDEX
    return name if name in ASSETS else None


def _wants_slash(client_path: str) -> bool:
    """True for ``.../dashboard`` as the client wrote it: the page must be reached as ``dashboard/`` so
    that its relative addresses (``app.js``, ``../api/``) resolve under it."""
    return client_path.rstrip("/") == client_path and client_path.rsplit("/", 1)[-1] == "dashboard"


def _matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    tags = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
    return "*" in tags or etag in tags


def dashboard_handler(base_path: str = "/") -> Handler:
    """The exchange handler of ``dashboard@internal`` for an API under ``base_path`` (``api.basePath``).
    Reads the page's files now (the first call in the process), never per request."""
    base = _normal_base(base_path)
    assets = load_assets()

    async def serve(ex: Exchange) -> None:
        if ex.method not in ("GET", "HEAD"):
            await answer(ex, 405, "method not allowed\n", headers=(("Allow", "GET, HEAD"),))
            return
        if _wants_slash(ex.info.path):
            # relative, so it holds behind any prefix a proxy in front added or removed
            target = ex.info.path.rsplit("/", 1)[-1] + "/" + ("?" + ex.raw_query if ex.raw_query else "")
            await answer(ex, 301, b"", headers=(("Location", target),), content_type=None)
            return
        name = asset_name(ex.path, base)
        if name is None:
            await answer(ex, 404, "404 page not found\n")
            return
        asset = assets[name]
        head = Headers(_COMMON)
        head["ETag"] = asset.etag
        if _matches(ex.header("If-None-Match"), asset.etag):
            await ex.sink.start(304, head)
            await ex.sink.end()
            return
        await answer(ex, 200, asset.body, headers=head, content_type=asset.content_type)

    return serve
