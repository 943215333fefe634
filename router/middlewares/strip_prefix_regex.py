"""``stripPrefixRegex``: the first ``regex`` (in order) whose leftmost match is a non-empty prefix of the
decoded path has that match removed, and ``X-Forwarded-Prefix`` names it (Traefik's
``stripprefixregex``). Regexes are Go's (RE2), compiled when the middleware is built; like Traefik's they
are not anchored: ``/api/v[0-9]+`` must match at the start of the path to count.
"""

from __future__ import annotations

from discover.middlewares.paths import StripPrefixRegex
from router.exchange import Exchange, Handler
from router.middlewares import BuildContext
from router.middlewares.paths_common import GoRe
from router.middlewares.strip_prefix import FORWARDED_PREFIX, bad_path, decoded_path, stripped


def build(options: StripPrefixRegex, ctx: BuildContext) -> object:
    regexes = tuple(GoRe(r.strip(), f"regex[{k}]") for k, r in enumerate(options.regex))

    def wrap(next_handler: Handler) -> Handler:
        async def strip_prefix_regex(ex: Exchange) -> None:
            raw = ex.path
            decoded = decoded_path(raw)
            for rx in regexes:
                prefix = rx.find(decoded)
                if not prefix or not decoded.startswith(prefix):
                    continue
                wire = stripped(raw, decoded, prefix)
                if wire is None:
                    await bad_path(ex, f"stripPrefixRegex {rx.pattern!r} leaves a path that is not clean")
                    return
                ex.set_header(FORWARDED_PREFIX, prefix)
                ex.path = wire or "/"
                break
            await next_handler(ex)

        return strip_prefix_regex

    return wrap
