"""Which stored certificate stands for a name set, and which ones a newer certificate makes useless.

A resolver keys its certificates by ``(main, *sans)`` as stored, and is asked for name sets (one per
router). The two need not match: a Traefik ``acme.json`` may hold ``main``/``sans`` in another order than
the set asked for, or a router may have dropped a host since. The certificate judged (and renewed) for a
set must then be the one that runs longest; judging an older one kept first would order a new
certificate on every check pass once it is due, and the CA counts duplicate certificates (Let's Encrypt:
5 a week). A certificate whose every name a later-expiring one covers is superseded: it is served,
reported and renewed no more.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from acme_client.storage import StoredCertificate

__all__ = ["covering", "superseded"]


def _key(cert: StoredCertificate) -> tuple[str, ...]:
    return (cert.main, *cert.sans)


def covering(names: tuple[str, ...], certs: Iterable[StoredCertificate]) -> StoredCertificate | None:
    """The certificate of ``certs`` that covers every name of ``names`` and expires last; of two that
    expire together, the one stored under ``names`` itself. None when none covers them."""
    want = set(names)
    best: StoredCertificate | None = None
    best_rank: tuple[float, bool] = (0.0, False)
    for cert in certs:
        if not want <= set(cert.names):
            continue
        rank = (cert.facts.not_after, _key(cert) == names)
        if best is None or rank > best_rank:
            best, best_rank = cert, rank
    return best


def superseded(certs: Mapping[tuple[str, ...], StoredCertificate]) -> list[tuple[str, ...]]:
    """The keys of ``certs`` whose certificate another one makes useless: it covers all its names and
    expires later. Only certificates sharing a first name are compared (cheap on the event loop)."""
    holders: dict[str, list[StoredCertificate]] = {}
    for cert in certs.values():
        for n in cert.names:
            holders.setdefault(n, []).append(cert)
    out = []
    for key, cert in certs.items():
        if not cert.names:
            continue
        mine, end = set(cert.names), cert.facts.not_after
        if any(
            o is not cert and o.facts.not_after > end and mine <= set(o.names) for o in holders[cert.names[0]]
        ):
            out.append(key)
    return out
