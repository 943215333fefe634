"""``encodedCharacters`` (Traefik v3.7): a router refuses request paths holding encoded characters that a
backend may read as structure, ``%2F`` ``%5C`` ``%00`` ``%3B`` ``%25`` ``%3F`` ``%23``, each unless its
``allow*`` option is true (all false by default). Answered 400 before the service is asked, as Traefik's
middleware does; only the path is checked, never the query.

It runs after the entry point's own check (``entryPoints.<ep>.http.encodedCharacters``, which refuses
``%2F`` ``%5C`` ``%00`` ``%3B`` ``%23`` by default in dockroute), so it can only refuse more: on an entry
point that allows ``%2F`` for one application, the other routers can keep refusing it. The path checked is
the one the service will be asked for at that point of the chain (after a ``replacePath`` before it, say),
both cases of each escape. A literal backslash counts as ``%5C``.
"""

from __future__ import annotations

from collections.abc import Awaitable

from discover.middlewares.paths import EncodedCharacters
from router.exchange import Exchange, answer
from router.middlewares import Before, BuildContext
from router.paths import ENCODED_ESCAPES, denied_escape


def denied(options: EncodedCharacters) -> frozenset[str]:
    """The escapes the options refuse, in both cases (a path rewritten by a middleware may hold ``%2f``)."""
    refused = (esc for key, esc in ENCODED_ESCAPES.items() if not getattr(options, key))
    return frozenset(form for esc in refused for form in (esc, esc.lower()))


def build(options: EncodedCharacters, ctx: BuildContext) -> object:
    refused = denied(options)

    def check(ex: Exchange) -> Awaitable[None] | None:
        path = ex.path
        if "%" not in path and "\\" not in path:  # a literal backslash counts as %5C (router.paths)
            return None
        esc = denied_escape(path, refused)
        if esc is None:
            return None
        return answer(ex, 400, "Bad Request\n", reason=f"encoded character {esc} in the path")

    return Before(check)
