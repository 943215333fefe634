"""``replacePathRegex``: when ``regex`` matches the (escaped) path, every match is replaced with
``replacement`` (Go's ``ReplaceAllString``: ``$1``, ``${1}``, ``${name}``, ``$$``), the service is asked
for the result and ``X-Replaced-Path`` carries the path before (Traefik's ``replacepathregex``).

The regex is Go's (RE2), compiled when the middleware is built; both options are trimmed of spaces as in
Traefik. A result with a malformed escape is answered 500 and one that ``path.Join`` would change
(``//x``, ``/../x``) 400, as Traefik does.
"""

from __future__ import annotations

from collections.abc import Awaitable

from discover.middlewares.paths import ReplacePathRegex
from router.exchange import Exchange, answer
from router.middlewares import Before, BuildContext
from router.middlewares.paths_common import GoRe, ensure_leading_slash, is_clean, path_unescape, wire_path
from router.middlewares.replace_path import REPLACED_PATH


def rewrite(rx: GoRe, tpl: tuple[str | int, ...], current: str) -> str | int:
    """The escaped path for ``current`` once replaced, or the status to answer (500, 400)."""
    new_raw = rx.replace_all(current, tpl)
    new_path = path_unescape(new_raw)
    if new_path is None:
        return 500
    wire = wire_path(new_raw) or ""
    if new_path and not is_clean(wire):
        return 400
    return ensure_leading_slash(wire) or "/"


def build(options: ReplacePathRegex, ctx: BuildContext) -> object:
    rx = GoRe(options.regex.strip(), "regex")
    tpl = rx.template(options.replacement.strip())

    def replace_path_regex(ex: Exchange) -> Awaitable[None] | None:
        current = ex.path
        if rx.matches(current):
            result = rewrite(rx, tpl, current)
            if isinstance(result, int):
                text = "Internal Server Error\n" if result == 500 else "Bad Request\n"
                return answer(ex, result, text, reason=f"replacePathRegex gave a bad path ({result})")
            ex.set_header(REPLACED_PATH, current)
            ex.path = result
        return None

    return Before(replace_path_regex)
