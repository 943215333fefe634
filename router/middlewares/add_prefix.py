"""``addPrefix``: the service is asked for ``prefix`` + the path (Traefik's ``addprefix``).

The worked example of a middleware module: ``build`` checks what the options dataclass could not and
returns the wrap; the wrap returns the handler; the handler changes the exchange and calls the next one.

As in Traefik the prefix is taken as it is: ``/api/`` before ``/x`` gives ``/api//x``, and a prefix
without a leading ``/`` gets one (``api`` → ``/api/x``). It is decoded text, as Go's ``URL.Path``: a
character a path cannot carry is escaped once, at build time (``/a b`` → ``/a%20b``).
"""

from __future__ import annotations

from discover.middlewares.paths import AddPrefix
from router.exchange import Exchange, Handler
from router.middlewares import BuildContext, MiddlewareError
from router.middlewares.paths_common import ensure_leading_slash, escape_path


def build(options: AddPrefix, ctx: BuildContext) -> object:
    if not options.prefix:
        raise MiddlewareError("prefix", "cannot be empty")
    prefix = escape_path(options.prefix)

    def wrap(next_handler: Handler) -> Handler:
        async def add_prefix(ex: Exchange) -> None:
            ex.path = ensure_leading_slash(prefix + ex.path)
            await next_handler(ex)

        return add_prefix

    return wrap
