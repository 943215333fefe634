"""``basicAuth``: only requests with a user and password from the htpasswd list go on (Traefik's
``basicauth``).

Without credentials, or with wrong ones, the answer is 401 with ``WWW-Authenticate: Basic realm="..."``
and Traefik's body. Passwords are checked in worker threads (bcrypt costs milliseconds, which on the
event loop would stall every other client): see :mod:`router.middlewares.htpasswd`. Each check's result
is remembered in a small bounded cache so that a client sending the same credentials on every request
pays the hash once per ten minutes; its key is an HMAC of user, password and stored hash under a random
per-process key, so the cache holds no password, nothing a dictionary attack could start from, and a
changed hash (usersFile edited) never hits an old result.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import os
from collections.abc import Mapping

from cachetools import TTLCache

from discover.middlewares.auth import BasicAuth
from router.exchange import Exchange, Handler, answer
from router.middlewares import BuildContext, MiddlewareError
from router.middlewares.htpasswd import (
    UsersError,
    UsersSource,
    auth_executor,
    basic_users,
    check_password,
    valid_header_name,
)

__all__ = ["build", "parse_basic"]

UNAUTHORIZED = b"401 Unauthorized\n"  # Traefik's body
CACHE_SIZE = 1024
CACHE_TTL = 600.0


def parse_basic(value: str | None) -> tuple[str, bytes] | None:
    """(user, password) from an ``Authorization: Basic ...`` value, as Go's ``Request.BasicAuth``: the
    scheme in any case, standard base64, split at the first colon."""
    if not value or len(value) < 6 or value[:6].lower() != "basic ":
        return None
    try:
        raw = base64.b64decode(value[6:].strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, sep, password = raw.partition(b":")
    if not sep:
        return None
    return user.decode("utf-8", "surrogateescape"), password


class _Verifier:
    """Password checks off the loop, remembered in a bounded cache; concurrent checks of the same
    credentials share one computation."""

    def __init__(self) -> None:
        self.key = os.urandom(32)
        self.cache: TTLCache[bytes, bool] = TTLCache(maxsize=CACHE_SIZE, ttl=CACHE_TTL)
        self.pending: dict[bytes, asyncio.Future[bool]] = {}

    async def verify(self, user: str, password: bytes, secret: str) -> bool:
        mac = hmac.new(self.key, digestmod=hashlib.sha256)
        for part in (user.encode("utf-8", "surrogateescape"), password, secret.encode()):
            mac.update(len(part).to_bytes(4, "big") + part)
        key = mac.digest()
        known = self.cache.get(key)
        if known is not None:
            return known
        fut = self.pending.get(key)
        if fut is None:
            loop = asyncio.get_running_loop()
            fut = loop.run_in_executor(auth_executor(), check_password, password, secret)
            self.pending[key] = fut
            try:
                ok = await asyncio.shield(fut)
            finally:
                self.pending.pop(key, None)
            self.cache[key] = ok
            return ok
        return await asyncio.shield(fut)


def build(options: BasicAuth, ctx: BuildContext) -> object:
    try:
        source = UsersSource(ctx.name, options.users, options.users_file, basic_users)
    except UsersError as exc:
        raise MiddlewareError(exc.option, exc.message) from None
    if options.header_field and not valid_header_name(options.header_field):
        raise MiddlewareError("headerField", f"not a valid header name: {options.header_field!r}")
    challenge = (("WWW-Authenticate", f'Basic realm="{options.realm}"'),)
    verifier = _Verifier()
    header_field, remove = options.header_field, options.remove_header

    async def authenticate(ex: Exchange) -> str | None:
        creds = parse_basic(ex.header("Authorization"))
        if creds is None:
            return None
        user, password = creds
        users: Mapping[str, str] = await source.current()
        secret = users.get(user)
        if secret is None or not await verifier.verify(user, password, secret):
            return None
        return user

    def wrap(next_handler: Handler) -> Handler:
        async def basic_auth(ex: Exchange) -> None:
            user = await authenticate(ex)
            if user is None:
                await answer(ex, 401, UNAUTHORIZED, challenge, reason="basicAuth: no valid credentials")
                return
            if header_field:
                ex.set_header(header_field, user)
            if remove:
                ex.remove_header("Authorization")
            await next_handler(ex)

        return basic_auth

    return wrap
