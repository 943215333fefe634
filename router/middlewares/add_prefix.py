"""``addPrefix``: the service is asked for ``prefix`` + the path (Traefik's ``addprefix``).

The worked example of a middleware module: ``build`` checks what the options dataclass could not and
returns the wrap; the wrap returns the handler; the handler changes the exchange and calls the next one.
"""

from __future__ import annotations

from discover.middlewares.paths import AddPrefix
from router.exchange import Exchange, Handler
from router.middlewares import BuildContext, MiddlewareError


def build(options: AddPrefix, ctx: BuildContext) -> object:
    if not options.prefix:
        raise MiddlewareError("prefix", "must not be empty")
    prefix = options.prefix.rstrip("/")

    def wrap(next_handler: Handler) -> Handler:
        async def add_prefix(ex: Exchange) -> None:
            ex.path = prefix + ex.path
            await next_handler(ex)

        return add_prefix

    return wrap
