"""``basicAuth``: only requests with a user and password from the htpasswd list go on (Traefik's
``basicauth``).

Without credentials, or with wrong ones, the answer is 401 with ``WWW-Authenticate: Basic realm="..."``
and Traefik's body. Passwords are checked in worker threads (bcrypt costs milliseconds, which on the
event loop would stall every other client): see :mod:`router.middlewares.htpasswd`. Each check's result
is remembered in a small bounded cache so that a client sending the same credentials on every request
pays the hash once per ten minutes; its key is an HMAC of user, password and stored hash under a random
per-process key, so the cache holds no password, nothing a dictionary attack could start from, and a
changed hash (usersFile edited) never hits an old result.

Checks waiting for a thread are bounded per middleware (:data:`MAX_PENDING`, four per worker thread):
beyond that a request gets 503 with ``Retry-After: 1`` instead of queueing, so a flood of bad logins
cannot make a real login wait behind minutes of bcrypt. Requests with the same credentials share one
check, and a check not yet started whose requests have all gone (the clients hung up) is dropped, never
run.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import logging
import math
import os
import time
from collections.abc import Mapping
from concurrent.futures import Future
from functools import partial

from cachetools import TTLCache

from discover.middlewares.auth import BasicAuth
from router.exchange import Exchange, Handler, answer
from router.middlewares import BuildContext
from router.middlewares.htpasswd import (
    AUTH_WORKERS,
    auth_executor,
    basic_users,
    check_password,
    open_users,
    pass_user,
)

__all__ = ["build", "parse_basic"]

log = logging.getLogger("dockroute.router")

UNAUTHORIZED = b"401 Unauthorized\n"  # Traefik's body
BUSY = b"503 Service Unavailable\n"
CACHE_SIZE = 1024
CACHE_TTL = 600.0
MAX_PENDING = 4 * AUTH_WORKERS  # password checks queued or running per middleware
BUSY_LOG_INTERVAL = 10.0  # seconds between two log lines about refused checks
_RETRY = (("Retry-After", "1"),)


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


class _Check:
    """One password check handed to the auth executor, shared by the requests sending the same
    credentials; ``waiters`` counts those still waiting for it."""

    __slots__ = ("work", "result", "waiters")

    def __init__(self, work: Future[bool]) -> None:
        self.work = work
        self.result = asyncio.wrap_future(work)
        self.waiters = 0


class _Verifier:
    """Password checks off the loop, remembered in a bounded cache; concurrent checks of the same
    credentials share one computation; at most ``max_pending`` checks queued or running."""

    def __init__(self, name: str, max_pending: int = MAX_PENDING) -> None:
        self.name = name
        self.key = os.urandom(32)
        self.cache: TTLCache[bytes, bool] = TTLCache(maxsize=CACHE_SIZE, ttl=CACHE_TTL)
        self.pending: dict[bytes, _Check] = {}
        self.max_pending = max_pending
        self.busy_logged = -math.inf
        self.busy_count = 0

    async def verify(self, user: str, password: bytes, secret: str) -> bool | None:
        """Whether the password matches; None when too many checks are pending (answer 503)."""
        mac = hmac.new(self.key, digestmod=hashlib.sha256)
        for part in (user.encode("utf-8", "surrogateescape"), password, secret.encode()):
            mac.update(len(part).to_bytes(4, "big") + part)
        key = mac.digest()
        known = self.cache.get(key)
        if known is not None:
            return known
        check = self.pending.get(key)
        if check is None:
            if len(self.pending) >= self.max_pending:
                self._busy()
                return None
            # submit, not run_in_executor + shield: a check not started can still be cancelled below
            check = _Check(auth_executor().submit(check_password, password, secret))
            self.pending[key] = check
            check.result.add_done_callback(partial(self._finished, key, check))
        check.waiters += 1
        try:
            return await asyncio.shield(check.result)
        finally:
            check.waiters -= 1
            if check.waiters == 0 and check.work.cancel():  # every requester left before it started
                self._finished(key, check, check.result)

    def _finished(self, key: bytes, check: _Check, result: asyncio.Future[bool]) -> None:
        """A check ended (or was dropped): it no longer counts as pending; its answer is remembered."""
        if self.pending.get(key) is check:
            del self.pending[key]
        if result.done() and not result.cancelled() and result.exception() is None:
            self.cache[key] = result.result()

    def _busy(self) -> None:
        self.busy_count += 1
        now = time.monotonic()
        if now - self.busy_logged >= BUSY_LOG_INTERVAL:
            log.warning(
                "middleware %s: %d password checks pending (the most allowed): %d login(s) answered 503 "
                "with Retry-After: 1 (a flood of bad logins?)",
                self.name,
                len(self.pending),
                self.busy_count,
            )
            self.busy_logged, self.busy_count = now, 0


def build(options: BasicAuth, ctx: BuildContext) -> object:
    source = open_users(ctx.name, options, basic_users)
    challenge = (("WWW-Authenticate", f'Basic realm="{options.realm}"'),)
    verifier = _Verifier(ctx.name)
    header_field, remove = options.header_field, options.remove_header

    async def authenticate(ex: Exchange) -> str | int:
        """The user, or the status to answer (401, or 503 when too many checks are pending)."""
        creds = parse_basic(ex.header("Authorization"))
        if creds is None:
            return 401
        user, password = creds
        users: Mapping[str, str] = await source.current()
        secret = users.get(user)
        if secret is None:
            return 401
        ok = await verifier.verify(user, password, secret)
        if ok is None:
            return 503
        return user if ok else 401

    def wrap(next_handler: Handler) -> Handler:
        async def basic_auth(ex: Exchange) -> None:
            user = await authenticate(ex)
            if user == 503:
                await answer(ex, 503, BUSY, _RETRY, reason="basicAuth: too many password checks pending")
                return
            if not isinstance(user, str):
                await answer(ex, 401, UNAUTHORIZED, challenge, reason="basicAuth: no valid credentials")
                return
            await pass_user(ex, user, header_field, remove, next_handler)

        return basic_auth

    return wrap
