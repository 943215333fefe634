"""Pending challenge answers shared between the processes sharing one ``acme.json``.

Behind a load balancer the CA's validation requests reach any replica, not only the one that ordered
(certmagic's "distributed solving"). So the orderer writes each answer to a small file beside the store
before it tells the CA to validate, and removes it once the challenge is over; a replica asked for a token
it does not hold in memory reads that file (in a thread: the folder may be a network volume).

One file per answer: ``.<store>.challenge.<type>.<key>``, where ``key`` is the HTTP-01 token or the
TLS-ALPN-01 domain, holding the key authorization (public by design: the CA fetches it over plain HTTP).
Keys are checked against what a token or a DNS name may hold before they become a path, since a token
comes from the request path of whoever asks. Files are written to a temporary name and renamed (a reader
never sees half of one), and one left by an orderer that died (older than ``_STALE_AFTER``) is removed at
the next write: no CA asks about a challenge that old.

Everything here blocks: worker threads only.
"""

from __future__ import annotations

import logging
import os
import re
import time
from typing import TYPE_CHECKING, Protocol

from acme_client.dns.solver import DnsSolver
from acme_client.issuer import Solver
from acme_client.settings import ResolverSettings
from acme_client.side_files import replace_file
from acme_client.tls_alpn import challenge_certificate

if TYPE_CHECKING:
    from acme_client.storage import AcmeStorage

log = logging.getLogger("dockroute.acme")

__all__ = [
    "answer_path",
    "make_solvers",
    "publish_answer",
    "read_answer",
    "read_answers",
    "valid_key",
    "withdraw_answer",
]

_KEY = {
    "http-01": re.compile(r"[A-Za-z0-9_-]{1,256}"),  # base64url, RFC 8555 section 8.3
    "tls-alpn-01": re.compile(r"[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?"),  # a DNS name, lower case
}
_STALE_AFTER = 3600.0
_MAX_ANSWER = 1024  # a key authorization is ~87 bytes: a bigger file is not one of ours
_warned: set[str] = set()


def _folder_and_prefix(store: str) -> tuple[str, str]:
    folder, base = os.path.split(os.path.realpath(os.fspath(store)))
    return folder or ".", f".{base}.challenge."


def valid_key(kind: str, key: str) -> bool:
    """Whether ``key`` is what a ``kind`` challenge is keyed by (a token, a DNS name), and so may be
    part of a file name."""
    pattern = _KEY.get(kind)
    return pattern is not None and pattern.fullmatch(key) is not None


def answer_path(store: str, kind: str, key: str) -> str | None:
    """The file of the answer for ``key`` (None when ``key`` is no token or name of that type)."""
    if not valid_key(kind, key):
        return None
    folder, prefix = _folder_and_prefix(store)
    return os.path.join(folder, f"{prefix}{kind}.{key}")


def publish_answer(store: str, kind: str, key: str, key_authorization: str) -> None:
    """Write the answer for the other replicas. A folder we cannot write in is said once: the answer is
    then in this process's memory only, as with a single replica."""
    path = answer_path(store, kind, key)
    if path is None:
        return
    folder = os.path.dirname(path)
    _remove_stale(folder, os.path.basename(path).split(kind, 1)[0])
    try:
        replace_file(path, key_authorization, ".challenge.")
    except OSError as exc:
        if folder not in _warned:
            _warned.add(folder)
            log.warning("cannot write challenge answers beside %s (%s): only this one answers", store, exc)


def withdraw_answer(store: str, kind: str, key: str) -> None:
    path = answer_path(store, kind, key)
    if path is not None:
        try:
            os.unlink(path)
        except OSError:
            pass  # never written (a folder not ours), or gone: nothing to withdraw


def read_answer(store: str, kind: str, key: str) -> str | None:
    """The key authorization another replica published for ``key``, or None."""
    path = answer_path(store, kind, key)
    return None if path is None else _read_file(path)


def read_answers(store: str, kind: str) -> dict[str, str]:
    """Every ``kind`` answer published beside ``store`` (key → key authorization): one listing of the
    folder, so that a lookup of many tokens costs one read, whatever the tokens."""
    folder, prefix = _folder_and_prefix(store)
    prefix = f"{prefix}{kind}."
    try:
        names = [n for n in os.listdir(folder) if n.startswith(prefix)]
    except OSError:
        return {}
    answers = {}
    for name in names:
        key = name[len(prefix) :]
        answer = _read_file(os.path.join(folder, name)) if valid_key(kind, key) else None
        if answer is not None:
            answers[key] = answer
    return answers


def _read_file(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            data = f.read(_MAX_ANSWER + 1)
    except OSError:
        return None
    if len(data) > _MAX_ANSWER:
        return None
    try:
        return data.decode("ascii").strip() or None
    except UnicodeDecodeError:
        return None


def _remove_stale(folder: str, prefix: str) -> None:
    limit = time.time() - _STALE_AFTER
    try:
        names = [n for n in os.listdir(folder) if n.startswith(prefix)]
    except OSError:
        return
    for name in names:
        try:
            path = os.path.join(folder, name)
            if os.lstat(path).st_mtime < limit:
                os.unlink(path)
        except OSError:
            pass


class _Holder(Protocol):
    """Where a resolver keeps the answers the proxy reads (attributes: tests may swap the dicts)."""

    tokens: dict[str, str]
    alpn_certs: dict[str, tuple[bytes, bytes]]
    storage: AcmeStorage


def make_solvers(settings: ResolverSettings, holder: _Holder) -> list[Solver]:
    """A resolver's solvers: each answer in the resolver's memory (``tokens``, ``alpn_certs``: what the
    proxy reads) and published beside its store for the other replicas.

    In lego's order (Traefik's ACME library: its solver manager sorts an authorization's challenges by
    type, descending, and takes the first it has a solver for): TLS-ALPN-01, then HTTP-01, then DNS-01.
    The issuer takes, per authorization, the first of these the CA offers, so a resolver with
    ``httpChallenge`` and ``dnsChallenge`` proves a plain name over HTTP-01 (no propagation wait, no DNS
    API call) and a wildcard, for which a CA offers DNS-01 only, over DNS-01. HTTP-01 is added only
    when ``httpChallenge`` is configured, or when no other challenge is."""

    def publish_http(domain: str, token: str, key_authorization: str) -> None:
        holder.tokens[token] = key_authorization
        holder.storage.publish_answer("http-01", token, key_authorization)

    def withdraw_http(domain: str, token: str) -> None:
        holder.tokens.pop(token, None)
        holder.storage.withdraw_answer("http-01", token)

    def publish_alpn(domain: str, token: str, key_authorization: str) -> None:
        holder.alpn_certs[domain] = challenge_certificate(domain, key_authorization)
        holder.storage.publish_answer("tls-alpn-01", domain, key_authorization)

    def withdraw_alpn(domain: str, token: str) -> None:
        holder.alpn_certs.pop(domain, None)
        holder.storage.withdraw_answer("tls-alpn-01", domain)

    solvers = []
    if settings.tls_challenge:
        solvers.append(Solver("tls-alpn-01", publish_alpn, withdraw_alpn))
    if settings.http_entry_point or not (settings.tls_challenge or settings.dns_challenge):
        solvers.append(Solver("http-01", publish_http, withdraw_http))
    if settings.dns_challenge is not None:
        store = holder.storage.path if holder.storage.shares_files else None
        label = f"resolver {getattr(holder, 'name', '?')}"
        solvers.append(DnsSolver(settings.dns_challenge, store, label).solver())
    return solvers
