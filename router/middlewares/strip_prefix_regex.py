"""``stripPrefixRegex``: the first ``regex`` (in order) whose leftmost match is a non-empty prefix of the
decoded path has that match removed, and ``X-Forwarded-Prefix`` names it (Traefik's
``stripprefixregex``). Regexes are Go's (RE2), compiled when the middleware is built; like Traefik's they
are not anchored: ``/api/v[0-9]+`` must match at the start of the path to count.
"""

from __future__ import annotations

from discover.middlewares.paths import StripPrefixRegex
from router.middlewares import BuildContext
from router.middlewares.paths_common import GoRe
from router.middlewares.strip_prefix import strip_with


def build(options: StripPrefixRegex, ctx: BuildContext) -> object:
    regexes = tuple(GoRe(r.strip(), f"regex[{k}]") for k, r in enumerate(options.regex))

    def find(decoded: str) -> tuple[str, str] | None:
        for rx in regexes:
            prefix = rx.find(decoded)
            if prefix and decoded.startswith(prefix):
                return prefix, rx.pattern
        return None

    return strip_with(find, "stripPrefixRegex")
