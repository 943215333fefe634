"""Which stored certificate stands for a name set, and which ones a newer certificate makes useless.

A resolver keys its certificates by ``(main, *sans)`` as stored, and is asked for name sets (one per
router). The two need not match: a Traefik ``acme.json`` may hold ``main``/``sans`` in another order than
the set asked for, or a router may have dropped a host since. The certificate judged (and renewed) for a
set must then be the one that runs longest; judging an older one kept first would order a new
certificate on every check pass once it is due, and the CA counts duplicate certificates (Let's Encrypt:
5 a week). A certificate whose every name a later-expiring one covers is superseded: it is served,
reported and renewed no more.

Covering is by name as TLS clients match it (RFC 6125 section 6.4.3, as the router's SNI choice does): a
name is covered by itself or by a wildcard for exactly one label (``*.x`` covers ``a.x``, never ``x`` nor
``b.a.x``). So a wildcard certificate stands for a router's own host, and a wanted name set that wanted
wildcards already cover orders nothing of its own (:func:`prune_covered`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from acme_client.storage import StoredCertificate

__all__ = ["cover_keys", "covering", "covers", "prune_covered", "superseded"]


def _key(cert: StoredCertificate) -> tuple[str, ...]:
    return (cert.main, *cert.sans)


def cover_keys(name: str) -> tuple[str, ...]:
    """The certificate names that cover ``name`` (lower case, no trailing dot): itself, and the wildcard
    for its first label (``a.x`` → ``a.x``, ``*.x``). A wildcard, or a name of one label, only itself.
    For lookups keyed by certificate name: the certificates that may cover ``name`` are those naming one
    of these."""
    if name.startswith("*."):
        return (name,)
    _, dot, parent = name.partition(".")
    return (name, "*." + parent) if dot and parent else (name,)


def _normal(names: Iterable[str]) -> set[str]:
    return {n.lower().rstrip(".") for n in names}


def covers(cert_names: Iterable[str], name: str) -> bool:
    """Whether a certificate for ``cert_names`` is valid for ``name``: the name itself, or a wildcard for
    exactly its first label. Case and a trailing dot do not matter (DNS names compare without them)."""
    return _covered(_normal(cert_names), (name,))


def _covered(have: set[str], names: Iterable[str]) -> bool:
    """Whether every name of ``names`` is covered by the (normal) certificate names ``have``."""
    return all(any(k in have for k in cover_keys(n.lower().rstrip("."))) for n in names)


def covering(names: tuple[str, ...], certs: Iterable[StoredCertificate]) -> StoredCertificate | None:
    """The certificate of ``certs`` that covers every name of ``names`` (:func:`covers`: a wildcard
    certificate covers the names one label below it) and expires last; of two that expire together,
    the one stored under ``names`` itself. None when none covers them."""
    best: StoredCertificate | None = None
    best_rank: tuple[float, bool] = (0.0, False)
    for cert in certs:
        if not _covered(_normal(cert.names), names):
            continue
        rank = (cert.facts.not_after, _key(cert) == names)
        if best is None or rank > best_rank:
            best, best_rank = cert, rank
    return best


def superseded(certs: Mapping[tuple[str, ...], StoredCertificate]) -> list[tuple[str, ...]]:
    """The keys of ``certs`` whose certificate another one makes useless: it covers all its names (a
    wildcard covering them counts: SNI would otherwise keep choosing the exact, older certificate, up to
    its expiry) and expires later. Only certificates naming what covers the first name are compared
    (cheap on the event loop)."""
    holders: dict[str, list[StoredCertificate]] = {}
    for cert in certs.values():
        for n in cert.names:
            holders.setdefault(n.lower().rstrip("."), []).append(cert)
    out = []
    for key, cert in certs.items():
        if not cert.names:
            continue
        end = cert.facts.not_after
        first = cert.names[0].lower().rstrip(".")
        others = [o for k in cover_keys(first) for o in holders.get(k, ())]
        if any(
            o is not cert and o.facts.not_after > end and _covered(_normal(o.names), cert.names)
            for o in others
        ):
            out.append(key)
    return out


def prune_covered(sets: Iterable[tuple[str, ...]]) -> list[tuple[str, ...]]:
    """The wanted name sets (lower case, as the resolver keeps them) that order something of their own,
    in order: a set without a wildcard whose every name the wildcard-bearing wanted sets cover (a
    wildcard for its first label, or the name itself in such a set) is dropped, since the wildcard's
    certificate serves its hosts by SNI; ordering it too would spend the CA's rate limit on a duplicate.
    Sets holding a wildcard are always kept, so no two sets drop each other."""
    sets = list(sets)
    wild = _normal(n for names in sets if any(n.startswith("*.") for n in names) for n in names)
    if not wild:
        return sets
    return [names for names in sets if any(n.startswith("*.") for n in names) or not _covered(wild, names)]
