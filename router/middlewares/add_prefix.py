"""``addPrefix``: the service is asked for ``prefix`` + the path (Traefik's ``addprefix``).

The worked example of a middleware module: ``build`` checks what the options dataclass could not and
returns what runs per request. A middleware that acts only before the request goes on, as this one, is a
:class:`~router.middlewares.Before` step: a plain function that changes the exchange (or returns an
answer's awaitable to stop there). One that must see the answer, or wait for its end, returns a wrap: it
takes the next handler and returns the coroutine function that runs first and awaits it.

As in Traefik the prefix is taken as it is: ``/api/`` before ``/x`` gives ``/api//x``, and a prefix
without a leading ``/`` gets one (``api`` → ``/api/x``). It is decoded text, as Go's ``URL.Path``: a
character a path cannot carry is escaped once, at build time (``/a b`` → ``/a%20b``).
"""

from __future__ import annotations

from discover.middlewares.paths import AddPrefix
from router.exchange import Exchange
from router.middlewares import Before, BuildContext, MiddlewareError
from router.middlewares.paths_common import ensure_leading_slash, escape_path


def build(options: AddPrefix, ctx: BuildContext) -> object:
    if not options.prefix:
        raise MiddlewareError("prefix", "cannot be empty")
    prefix = escape_path(options.prefix)

    def add_prefix(ex: Exchange) -> None:
        ex.path = ensure_leading_slash(prefix + ex.path)

    return Before(add_prefix)
