"""htpasswd and htdigest user lists for ``basicAuth``/``digestAuth``: parsing, the hash schemes, the file.

Lines come from ``users`` and ``usersFile`` and are merged as Traefik does: the file's lines first, then
``users``, so a name in both takes its ``users`` entry; blank lines and lines starting with ``#`` in the
file are skipped. A basicAuth line is ``user:hash`` where the hash is one of

- bcrypt: ``$2y$``, ``$2a$``, ``$2b$`` (the ``bcrypt`` package),
- Apache's MD5: ``$apr1$`` (and md5-crypt's ``$1$``, the same algorithm with another magic), in
  :func:`md5_crypt` below,
- SHA-1: ``{SHA}`` + base64 of the digest.

Anything else (a plain-text password, crypt(3) DES, SHA-crypt, ``$2x$``) is refused naming the line,
when the configuration is compiled: Traefik's library treats an unknown scheme as a hash that never
matches, which leaves a user wondering why a login fails, or worse, believing a plain-text line works.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor

import bcrypt

from discover.middlewares.auth import BasicAuth, DigestAuth
from router.exchange import Exchange, Handler
from router.middlewares import MiddlewareError

__all__ = [
    "AUTH_WORKERS",
    "UsersSource",
    "UsersError",
    "auth_executor",
    "basic_users",
    "check_password",
    "valid_header_name",
    "open_users",
    "pass_user",
    "digest_users",
    "md5_crypt",
    "read_lines",
    "scheme_of",
]

log = logging.getLogger("dockroute.router")

_BCRYPT = ("$2y$", "$2a$", "$2b$")
REFRESH_INTERVAL = 1.0  # seconds between two looks at a usersFile (a stat in a worker thread)
_ITOA64 = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


class UsersError(ValueError):
    """A user line that cannot be used; ``option`` is ``users[i]`` or ``usersFile`` (line ``n``)."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(f"{option}: {message}")
        self.option = option
        self.message = message


def read_lines(path: str) -> tuple[list[str], tuple[int, int, int]]:
    """The usable lines of a users file and its stamp; raises ``OSError``. Blocking: call it from a
    worker thread (``build`` runs in one; the refresh goes through the loop's executor)."""
    with open(path, "rb") as f:
        st = os.fstat(f.fileno())
        data = f.read()
    text = data.decode("utf-8", "replace")
    lines = [ln.strip() for ln in text.splitlines()]
    return [ln for ln in lines if ln and not ln.startswith("#")], file_stamp(st)


def file_stamp(st: os.stat_result) -> tuple[int, int, int]:
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def _sources(file_lines: Iterable[str], users: Iterable[str], file_name: str) -> list[tuple[str, str]]:
    """(where, line) pairs, the file's first, so that ``users`` overrides it name by name."""
    out = [(f"usersFile {file_name} line {i + 1}", ln) for i, ln in enumerate(file_lines)]
    out.extend((f"users[{i}]", ln.strip()) for i, ln in enumerate(users))
    return out


def scheme_of(secret: str) -> str | None:
    """The hash scheme of an htpasswd secret, or None when dockroute refuses it."""
    if secret.startswith(_BCRYPT):
        return "bcrypt"
    if secret.startswith("$apr1$") or secret.startswith("$1$"):
        return "md5"
    if secret.startswith("{SHA}"):
        return "sha1"
    return None


def _check_secret(secret: str) -> str | None:
    """Why ``secret`` is unusable, or None."""
    scheme = scheme_of(secret)
    if scheme is None:
        if secret.startswith("$2x$"):
            return "bcrypt $2x$ hashes are refused (a known-buggy variant): rehash with htpasswd -B"
        return "not a bcrypt ($2y$), apr1 ($apr1$) or SHA1 ({SHA}) hash (plain-text passwords are refused)"
    if scheme == "bcrypt":
        parts = secret.split("$")
        if len(secret) != 60 or len(parts) != 4 or not parts[2].isdigit() or not 4 <= int(parts[2]) <= 31:
            return "malformed bcrypt hash (expected $2y$NN$ and 53 more characters)"
    elif scheme == "md5":
        parts = secret.split("$")
        if len(parts) != 4 or not parts[2] or len(parts[2]) > 8 or len(parts[3]) != 22:
            return "malformed MD5 hash (expected $apr1$salt$ and 22 characters)"
    else:
        try:
            if len(base64.b64decode(secret[5:], validate=True)) != 20:
                raise ValueError
        except ValueError:
            return "malformed {SHA} hash (expected base64 of 20 bytes)"
    return None


def basic_users(file_lines: Iterable[str], users: Iterable[str], file_name: str = "") -> dict[str, str]:
    """basicAuth's name → hash; raises :class:`UsersError` naming the first unusable line."""
    out: dict[str, str] = {}
    for where, line in _sources(file_lines, users, file_name):
        name, sep, secret = line.partition(":")
        if not sep or not name or ":" in secret:
            raise UsersError(where, "expected user:hash")
        why = _check_secret(secret)
        if why is not None:
            raise UsersError(where, f"user {name!r}: {why}")
        out[name] = secret
    return out


def digest_users(file_lines: Iterable[str], users: Iterable[str], file_name: str = "") -> dict[str, str]:
    """digestAuth's ``user:realm`` → HA1 (hex MD5 of ``user:realm:password``, htdigest's form); raises
    :class:`UsersError` naming the first unusable line."""
    out: dict[str, str] = {}
    for where, line in _sources(file_lines, users, file_name):
        parts = line.split(":")
        if len(parts) != 3 or not parts[0]:
            raise UsersError(where, "expected user:realm:HA1")
        ha1 = parts[2].lower()
        if len(ha1) != 32 or any(c not in "0123456789abcdef" for c in ha1):
            raise UsersError(where, f"user {parts[0]!r}: HA1 must be 32 hex digits (htdigest's MD5)")
        out[f"{parts[0]}:{parts[1]}"] = ha1
    return out


def check_password(password: bytes, secret: str) -> bool:
    """Whether ``password`` matches the htpasswd ``secret``. bcrypt costs milliseconds and apr1 a
    thousand MD5 rounds: run it in a worker thread, never on the event loop."""
    scheme = scheme_of(secret)
    if scheme == "bcrypt":
        try:
            return bcrypt.checkpw(password, secret.encode("ascii"))
        except ValueError:
            return False
    if scheme == "md5":
        magic = "$apr1$" if secret.startswith("$apr1$") else "$1$"
        salt = secret[len(magic) :].split("$", 1)[0]
        return hmac.compare_digest(md5_crypt(password, salt.encode(), magic).encode(), secret.encode())
    if scheme == "sha1":
        digest = base64.b64encode(hashlib.sha1(password).digest()).decode()
        return hmac.compare_digest(digest, secret[5:])
    return False


def md5_crypt(password: bytes, salt: bytes, magic: str = "$apr1$") -> str:
    """Poul-Henning Kamp's md5-crypt, which Apache's ``$apr1$`` is with its own magic string: the salt
    (at most 8 characters) and password stirred through 1000 MD5 rounds, then base64 in crypt's
    alphabet."""
    salt = salt[:8]
    m = magic.encode()
    alt = hashlib.md5(password + salt + password).digest()
    ctx = hashlib.md5(password + m + salt)
    n = len(password)
    while n > 0:
        ctx.update(alt[: min(16, n)])
        n -= 16
    i = len(password)
    while i:
        ctx.update(b"\0" if i & 1 else password[:1])
        i >>= 1
    final = ctx.digest()
    for r in range(1000):
        h = hashlib.md5()
        h.update(password if r & 1 else final)
        if r % 3:
            h.update(salt)
        if r % 7:
            h.update(password)
        h.update(final if r & 1 else password)
        final = h.digest()
    out = []
    for a, b, c in ((0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5)):
        out.append(_to64((final[a] << 16) | (final[b] << 8) | final[c], 4))
    out.append(_to64(final[11], 2))
    return f"{magic}{salt.decode('ascii', 'replace')}${''.join(out)}"


def _to64(v: int, n: int) -> str:
    chars = []
    for _ in range(n):
        chars.append(_ITOA64[v & 0x3F])
        v >>= 6
    return "".join(chars)


# Password checks and users-file reads run here, not in the loop's default executor: a flood of bad
# bcrypt logins then waits its turn on these threads instead of starving every other use of the default
# one. Created on first use (build runs in a worker thread; the first request on the loop).
_executor: ThreadPoolExecutor | None = None
AUTH_WORKERS = min(4, os.cpu_count() or 1)  # threads of the auth executor


def auth_executor() -> ThreadPoolExecutor:
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(max_workers=AUTH_WORKERS, thread_name_prefix="dr-auth")
    return _executor


Parse = Callable[[Iterable[str], Iterable[str], str], dict[str, str]]


class UsersSource:
    """The users of one middleware: ``users`` plus ``usersFile``, the file read when the configuration is
    compiled and read again when it changes.

    The file is looked at (one ``stat`` in a worker thread) at most every :data:`REFRESH_INTERVAL`
    seconds, by the first request after that interval, which waits for the look so that a user removed
    from the file is refused from then on; concurrent requests share the one look. Nothing touches the
    disk on the loop. A file that cannot be read (deleted, no permission) or holds a bad line fails
    closed: none of its users is accepted (``users`` still are) until it is fixed, with one log line per
    distinct problem. Keeping the users read before would keep a revocation from taking effect: a user
    removed in the same edit that broke a line, or every user of a deleted file, would still get in.
    """

    def __init__(self, name: str, users: tuple[str, ...], users_file: str, parse: Parse) -> None:
        """Reads ``users_file`` now (``build`` runs in a worker thread); raises :class:`UsersError`."""
        self.name = name
        self.inline = users
        self.path = users_file
        self.parse = parse
        self.stamp: tuple[int, int, int] | None = None
        file_lines: list[str] = []
        if users_file:
            try:
                file_lines, self.stamp = read_lines(users_file)
            except OSError as exc:
                raise UsersError("usersFile", f"{users_file}: {exc.strerror or exc}") from None
        self.users: Mapping[str, str] = parse(file_lines, users, users_file)
        self.next_check = time.monotonic() + REFRESH_INTERVAL
        self._pending: asyncio.Future[None] | None = None
        self._last_problem = ""

    async def current(self) -> Mapping[str, str]:
        """The users now (after looking at the file when it is due)."""
        if self.path and time.monotonic() >= self.next_check:
            if self._pending is None:
                self._pending = asyncio.ensure_future(self._refresh())
            await asyncio.shield(self._pending)
        return self.users

    async def _refresh(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(auth_executor(), self._reload, self.stamp)
        finally:
            self.next_check = time.monotonic() + REFRESH_INTERVAL
            self._pending = None
        if result is None:
            return
        users, self.stamp, problem = result
        if problem:
            self.users = users
            if problem != self._last_problem:
                self._last_problem = problem
                log.error(
                    "middleware %s: %s; none of the file's users is accepted until it is fixed "
                    "(%d inline users still are)",
                    self.name,
                    problem,
                    len(users),
                )
            return
        self._last_problem = ""
        self.users = users
        log.info("middleware %s: usersFile %s read again (%d users)", self.name, self.path, len(users))

    def _reload(
        self, stamp: tuple[int, int, int] | None
    ) -> tuple[Mapping[str, str], tuple[int, int, int] | None, str] | None:
        """In a worker thread: (the users, the file's stamp, why the file cannot be used or ""), or None
        when the file did not change. An unusable file gives the inline users alone (fail closed); an
        unreadable one has no stamp, so it is tried again at the next look."""
        try:
            if file_stamp(os.stat(self.path)) == stamp:
                return None
            lines, new_stamp = read_lines(self.path)
        except OSError as exc:
            return self.parse([], self.inline, ""), None, f"usersFile {self.path}: {exc.strerror or exc}"
        try:
            return self.parse(lines, self.inline, self.path), new_stamp, ""
        except UsersError as exc:
            return self.parse([], self.inline, ""), new_stamp, str(exc)


def valid_header_name(name: str) -> bool:
    """Whether ``name`` can be a header name (RFC 9110 token characters), for ``headerField``."""
    return bool(name) and all(c.isascii() and (c.isalnum() or c in "!#$%&'*+-.^_`|~") for c in name)


def open_users(
    name: str, options: BasicAuth | DigestAuth, parse: Callable[..., dict[str, str]]
) -> UsersSource:
    """The users of a basicAuth or digestAuth middleware; a bad users/usersFile entry or headerField is
    refused by name when the configuration is compiled."""
    try:
        source = UsersSource(name, options.users, options.users_file, parse)
    except UsersError as exc:
        raise MiddlewareError(exc.option, exc.message) from None
    if options.header_field and not valid_header_name(options.header_field):
        raise MiddlewareError("headerField", f"not a valid header name: {options.header_field!r}")
    return source


async def pass_user(ex: Exchange, user: str, header_field: str, remove: bool, next_handler: Handler) -> None:
    """An authenticated request goes on, the user named in ``headerField`` and, with ``removeHeader``, its
    credentials dropped (Traefik's behaviour for both auth middlewares)."""
    if header_field:
        ex.set_header(header_field, user)
    if remove:
        ex.remove_header("Authorization")
    await next_handler(ex)
