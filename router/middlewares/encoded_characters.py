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
from router.paths import ENCODED_ESCAPES, denied_escape, denied_escapes


def denied(options: EncodedCharacters) -> frozenset[str]:
    """The escapes the options refuse, in both cases (a path rewritten by a middleware may hold ``%2f``)."""
    return denied_escapes((key for key in ENCODED_ESCAPES if getattr(options, key)), both_cases=True)


def build(options: EncodedCharacters, ctx: BuildContext) -> object:
    refused = denied(options)

    def check(ex: Exchange) -> Awaitable[None] | None:
        esc = denied_escape(ex.path, refused)  # a literal backslash counts as %5C (router.paths)
        if esc is None:
            return None
        return answer(ex, 400, "Bad Request\n", reason=f"encoded character {esc} in the path")

    return Before(check)
