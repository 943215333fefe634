"""TLS-ALPN-01 answers shared between the replicas of one store.

An HTTP-01 answer another replica published is read when the CA asks for it. A TLS-ALPN-01 answer cannot
be: the proxy decides whether to peek a connection's ClientHello from an in-memory check on the event
loop (no challenge pending: no peek, nothing spent on ordinary connections), so a replica must already
hold the answer's certificate when the CA connects. So it is pushed: the orderer publishes the answer
beside the store (:mod:`acme_client.shared_challenges`); each replica's store watch finds it at its next
look (one ``stat`` of the folder every 2 s), builds the certificate in its thread, hands it to the event
loop and then acknowledges it with a file; the orderer tells the CA only once every live replica has
acknowledged (at most :data:`ACK_WAIT` seconds, else it says which did not and goes ahead).

Live replicas: each process watching a store holds a shared ``flock`` on its own file,
``.<store>.replica.<id>``, for as long as it runs. The kernel drops the lock when the process dies,
however it dies, so a file whose lock can be taken is a dead replica's: it is removed, never waited for.
A process alone on its store waits for nothing.

Everything here blocks: worker threads only.
"""

from __future__ import annotations

import fcntl
import logging
import os
import secrets
import tempfile
import threading
import time

from acme_client.shared_challenges import read_answer, valid_key

log = logging.getLogger("dockroute.acme")

__all__ = [
    "ACK_WAIT",
    "acknowledge",
    "join",
    "leave",
    "live_others",
    "pending_answers",
    "published",
    "wait_for_replicas",
]

PROCESS_ID = f"{os.getpid()}-{secrets.token_hex(4)}"  # digits, '-' and hex: never '_' nor a '.'
ACK_WAIT = 10.0  # seconds the orderer waits for the replicas' acknowledgements
_POLL = 0.05
_KIND = "tls-alpn-01"
_members: dict[str, tuple[int, int]] = {}  # this process's membership file → (fd, watches using it)
_members_lock = threading.Lock()
# (store, domain) of the answers this process published: its own watches leave them alone (its resolver
# holds them already, and must stop presenting them the moment it withdraws them)
_own: set[tuple[str, str]] = set()


def published(store: str, domain: str, mine: bool) -> None:
    """Note (before its file is written) or forget (after its file is removed) an answer of this process."""
    key = (os.path.realpath(os.fspath(store)), domain)
    with _members_lock:
        if mine:
            _own.add(key)
        else:
            _own.discard(key)


def _place(store: str, what: str) -> tuple[str, str]:
    """The store's folder, and the prefix of its ``what`` files."""
    folder, base = os.path.split(os.path.realpath(os.fspath(store)))
    return folder or ".", f".{base}.{what}."


def _ack_path(store: str, domain: str, process: str = PROCESS_ID) -> str:
    folder, prefix = _place(store, "ack")
    return os.path.join(folder, f"{prefix}{domain}_{process}")


def join(store: str) -> None:
    """Count this process among the replicas of ``store`` (until :func:`leave`). The file is locked
    before it is renamed into place, so no other replica ever sees it unlocked and takes it for dead's."""
    folder, prefix = _place(store, "replica")
    path = os.path.join(folder, prefix + PROCESS_ID)
    with _members_lock:
        fd, users = _members.get(path, (-1, 0))
        if fd < 0:
            try:
                fd, tmp = tempfile.mkstemp(prefix=".replica.", suffix=".tmp", dir=folder)
            except OSError as exc:  # a folder not ours: the orderers there will not wait for us
                log.debug("cannot join the replicas of %s: %s", store, exc)
                return
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                os.replace(tmp, path)
            except OSError as exc:
                log.debug("cannot join the replicas of %s: %s", store, exc)
                os.close(fd)
                os.unlink(tmp)
                return
        _members[path] = (fd, users + 1)


def leave(store: str) -> None:
    folder, prefix = _place(store, "replica")
    path = os.path.join(folder, prefix + PROCESS_ID)
    with _members_lock:
        fd, users = _members.pop(path, (-1, 0))
        if users > 1:
            _members[path] = (fd, users - 1)
        elif fd >= 0:
            try:
                os.unlink(path)
            except OSError:
                pass
            os.close(fd)


def live_others(store: str) -> list[str]:
    """The ids of the other live processes watching ``store``; the files of dead ones are removed."""
    folder, prefix = _place(store, "replica")
    try:
        names = [n for n in os.listdir(folder) if n.startswith(prefix) and n != prefix + PROCESS_ID]
    except OSError:
        return []
    alive = []
    for name in names:
        path = os.path.join(folder, name)
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.unlink(path)  # nobody holds it: its process is gone
        except BlockingIOError:
            alive.append(name[len(prefix) :])
        except OSError:
            pass
        finally:
            os.close(fd)
    return alive


def pending_answers(store: str) -> dict[str, str]:
    """Domain → key authorization of every TLS-ALPN-01 answer other processes published beside ``store``."""
    folder, prefix = _place(store, f"challenge.{_KIND}")
    real = os.path.realpath(os.fspath(store))
    try:
        domains = [n[len(prefix) :] for n in os.listdir(folder) if n.startswith(prefix)]
    except OSError:
        return {}
    with _members_lock:
        domains = [d for d in domains if (real, d) not in _own]
    out = {}
    for domain in domains:
        answer = read_answer(store, _KIND, domain) if valid_key(_KIND, domain) else None
        if answer is not None:
            out[domain] = answer
    return out


def acknowledge(store: str, domain: str, key_authorization: str) -> None:
    """Tell the orderer this process serves ``key_authorization`` for ``domain`` now."""
    path = _ack_path(store, domain)
    try:
        fd, tmp = tempfile.mkstemp(prefix=".ack.", suffix=".tmp", dir=os.path.dirname(path))
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(key_authorization)
        os.replace(tmp, path)
    except OSError as exc:
        log.debug("cannot acknowledge the TLS-ALPN-01 answer for %s beside %s: %s", domain, store, exc)


def wait_for_replicas(store: str, domain: str, key_authorization: str, timeout: float = ACK_WAIT) -> None:
    """Return once every other live replica acknowledged this answer, or after ``timeout`` (said)."""
    missing = live_others(store)
    deadline = time.monotonic() + timeout
    while missing:
        missing = [p for p in missing if _read(_ack_path(store, domain, p)) != key_authorization]
        if missing and time.monotonic() >= deadline:
            log.warning(
                "TLS-ALPN-01 answer for %s: replicas %s sharing %s did not take it within %.0fs; "
                "the CA is told anyway",
                domain,
                ", ".join(missing),
                store,
                timeout,
            )
            return
        if missing:
            time.sleep(_POLL)


def withdraw_acks(store: str, domain: str) -> None:
    folder, prefix = _place(store, "ack")
    try:
        names = [n for n in os.listdir(folder) if n.startswith(f"{prefix}{domain}_")]
    except OSError:
        return
    for name in names:
        try:
            os.unlink(os.path.join(folder, name))
        except OSError:
            pass


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii") as f:
            return f.read(1025)
    except (OSError, UnicodeDecodeError):
        return None
