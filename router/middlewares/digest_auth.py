"""``digestAuth``: HTTP Digest access authentication (RFC 7616 with MD5 and ``qop=auth``, as Traefik's).

The proxy hands out nonces in its 401 answers (``WWW-Authenticate: Digest realm=..., nonce=...,
opaque=..., algorithm="MD5", qop="auth"``) and remembers each with the last nonce count it saw, in a
bounded TTL cache: a nonce it does not know (never issued, expired, or pushed out by newer ones) with an
otherwise right answer gets a 401 with ``stale="true"``, on which browsers retry with a fresh nonce
without asking the user again; a nonce count that does not grow is a replay and is refused.

The checks are three MD5s over a few hundred bytes (microseconds), so unlike basicAuth's bcrypt they run
on the loop: a worker-thread hop would cost more than the hashing.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping

from cachetools import TTLCache

from discover.middlewares.auth import DigestAuth
from router.exchange import Exchange, Handler, answer
from router.middlewares import BuildContext
from router.middlewares.basic_auth import UNAUTHORIZED
from router.middlewares.htpasswd import UsersSource, digest_users, open_users, pass_user

__all__ = ["build", "parse_digest", "response_digest"]

NONCES = 10_000  # nonces remembered at most (per middleware)
NONCE_TTL = 3600.0  # seconds a nonce stays usable after its last use
_REQUIRED = ("username", "nonce", "uri", "response", "qop", "nc", "cnonce")


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8", "surrogateescape")).hexdigest()


def response_digest(
    ha1: str, method: str, uri: str, nonce: str, nc: str, cnonce: str, qop: str = "auth"
) -> str:
    """RFC 7616's ``response`` for ``qop=auth``: MD5(HA1:nonce:nc:cnonce:qop:MD5(method:uri))."""
    return _md5(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{_md5(f'{method}:{uri}')}")


def parse_digest(value: str | None) -> dict[str, str] | None:
    """The parameters of an ``Authorization: Digest k=v, k="v", ...`` value (names lower-cased), or
    None when it is not one. A hand-written scanner: linear, no regex."""
    if not value or len(value) < 7 or value[:7].lower() != "digest ":
        return None
    s, i, n = value, 7, len(value)
    params: dict[str, str] = {}
    while i < n:
        while i < n and s[i] in " \t,":
            i += 1
        if i >= n:
            break
        eq = s.find("=", i)
        if eq < 0:
            return None
        key = s[i:eq].strip().lower()
        i = eq + 1
        while i < n and s[i] in " \t":
            i += 1
        if i < n and s[i] == '"':
            i += 1
            out = []
            while i < n and s[i] != '"':
                if s[i] == "\\" and i + 1 < n:
                    i += 1
                out.append(s[i])
                i += 1
            if i >= n:
                return None  # unterminated quote
            i += 1
            val = "".join(out)
        else:
            end = s.find(",", i)
            end = n if end < 0 else end
            val = s[i:end].strip()
            i = end
        if not key:
            return None
        params[key] = val
    return params


class _Digest:
    """One digestAuth middleware: its users, realm, opaque value and the nonces it handed out."""

    def __init__(self, options: DigestAuth, source: UsersSource) -> None:
        self.source = source
        self.realm = options.realm
        self.opaque = secrets.token_hex(16)
        self.nonces: TTLCache[str, int] = TTLCache(maxsize=NONCES, ttl=NONCE_TTL)

    def challenge(self, stale: bool) -> tuple[tuple[str, str], ...]:
        nonce = secrets.token_hex(16)
        self.nonces[nonce] = 0
        value = (
            f'Digest realm="{self.realm}", nonce="{nonce}", opaque="{self.opaque}", algorithm="MD5", '
            f'qop="auth"'
        )
        return (("WWW-Authenticate", value + (', stale="true"' if stale else "")),)

    async def check(self, ex: Exchange) -> str | bool:
        """The user, or False (refused), or True (right answer but unknown nonce: stale)."""
        p = parse_digest(ex.header("Authorization"))
        if p is None or any(not p.get(k) for k in _REQUIRED):
            return False
        if p.get("algorithm", "MD5").upper() != "MD5" or p["qop"] != "auth" or p.get("opaque") != self.opaque:
            return False
        if p.get("realm", self.realm) != self.realm or p["uri"] != ex.msg.path:
            return False
        users: Mapping[str, str] = await self.source.current()
        ha1 = users.get(f"{p['username']}:{self.realm}")
        if ha1 is None:
            return False
        want = response_digest(ha1, ex.info.method, p["uri"], p["nonce"], p["nc"], p["cnonce"])
        if not hmac.compare_digest(want, p["response"].lower()):
            return False
        try:
            nc = int(p["nc"], 16)
        except ValueError:
            return False
        last = self.nonces.get(p["nonce"])
        if last is None:
            return True
        if nc <= last:
            return False  # a replayed (or reordered) request
        self.nonces[p["nonce"]] = nc
        return p["username"]


def build(options: DigestAuth, ctx: BuildContext) -> object:
    source = open_users(ctx.name, options, digest_users)
    digest = _Digest(options, source)
    header_field, remove = options.header_field, options.remove_header

    def wrap(next_handler: Handler) -> Handler:
        async def digest_auth(ex: Exchange) -> None:
            user = await digest.check(ex)
            if not isinstance(user, str):
                await answer(
                    ex,
                    401,
                    UNAUTHORIZED,
                    digest.challenge(user is True),
                    reason="digestAuth: not authenticated",
                )
                return
            await pass_user(ex, user, header_field, remove, next_handler)

        return digest_auth

    return wrap
