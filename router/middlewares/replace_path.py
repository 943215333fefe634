"""``replacePath``: the service is asked for ``path`` instead, and ``X-Replaced-Path`` carries the path
the request had (escaped), as Traefik's ``replacepath``.

``path`` may hold percent-escapes (``/a%2Fb`` keeps its encoded slash); characters a path cannot carry
are escaped as Go's ``URL.EscapedPath`` would. A ``path`` with a malformed escape (``%zz``) is refused
when the middleware is built: Traefik accepts it and answers 500 to every request.
"""

from __future__ import annotations

from discover.middlewares.paths import ReplacePath
from router.exchange import Exchange
from router.middlewares import Before, BuildContext, MiddlewareError
from router.middlewares.paths_common import ensure_leading_slash, wire_path

REPLACED_PATH = "X-Replaced-Path"


def build(options: ReplacePath, ctx: BuildContext) -> object:
    wire = wire_path(options.path)
    if wire is None:
        raise MiddlewareError("path", f"invalid percent-escape in {options.path!r}")
    new_path = ensure_leading_slash(wire) or "/"

    def replace_path(ex: Exchange) -> None:
        ex.set_header(REPLACED_PATH, ex.path)
        ex.path = new_path

    return Before(replace_path)
