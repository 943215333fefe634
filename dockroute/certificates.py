"""Certificate resolvers in the app: built from the typed static settings, and told what to certify.

The app owns a dict of resolvers by name: an ACME resolver (:class:`~acme_client.resolver.AcmeResolver`)
or the built-in CA (:class:`~acme_client.internal_ca.InternalCA`), both with the same surface
(``certificates()``, ``want()``, ``run()``, ``key_authorization()``, ``alpn_challenge()``). Which names
each one is asked for follows Traefik: every routed router with a ``certResolver`` in its effective tls
(its own, or its entry point's ``http.tls``) wants its ``domains``, else the hosts of its rule.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from acme_client.internal_ca import InternalCA
from acme_client.resolver import AcmeResolver
from acme_client.settings import InternalCASettings, ResolverSettings
from discover.model import DynamicConfig
from router.compile import Compiled, effective_tls
from router.settings import EntryPoint
from router.tls import CertKeyPair

__all__ = ["AlpnChallenges", "Resolver", "build_resolvers", "wanted_certificates"]

log = logging.getLogger("dockroute")

Resolver = AcmeResolver | InternalCA


def build_resolvers(
    settings: Mapping[str, ResolverSettings | InternalCASettings], on_change: Callable[[], None]
) -> dict[str, Resolver]:
    """One resolver per ``certificatesResolvers`` entry (already validated at start by the static
    configuration); ``on_change`` is called when one stores a certificate."""
    resolvers: dict[str, Resolver] = {}
    for name, s in settings.items():
        if isinstance(s, InternalCASettings):
            resolvers[name] = InternalCA(name, s, on_change)
        else:
            resolvers[name] = AcmeResolver(name, s, on_change)
    return resolvers


def alpn_resolvers(resolvers: Mapping[str, Resolver]) -> list[AcmeResolver]:
    """The resolvers answering TLS-ALPN-01 challenges: ACME ones with ``tlsChallenge``. A built-in CA
    validates nothing, so it never answers a handshake."""
    return [r for r in resolvers.values() if isinstance(r, AcmeResolver) and r.settings.tls_challenge]


class AlpnChallenges:
    """The router's ``ChallengeCertificates`` over every resolver that answers TLS-ALPN-01."""

    def __init__(self, resolvers: list[AcmeResolver]) -> None:
        self._resolvers = resolvers

    def pending(self) -> bool:
        return any(r.alpn_certs for r in self._resolvers)

    def alpn_challenge(self, server_name: str) -> CertKeyPair | None:
        for resolver in self._resolvers:
            found = resolver.alpn_challenge(server_name)
            if found is not None:
                return CertKeyPair(*found)
        return None


def wanted_certificates(
    merged: DynamicConfig,
    compiled: Compiled,
    entry_points: tuple[EntryPoint, ...],
    resolvers: Mapping[str, object],
) -> dict[str, list[tuple[str, ...]]]:
    """Resolver name → the name sets it is asked to certify (each set is one certificate), de-duplicated.

    For each routed router and each entry point it is routed on, the certResolver of its effective tls
    wants the tls's ``domains`` (``main`` and ``sans`` together: one certificate carrying them all), else
    the ``Host()`` names of the router's rule as just compiled (``Rule.domains``: wherever they stand in
    the rule, as Traefik's ``ParseDomains``). A router that is not routed wants nothing. A resolver
    that does not exist is reported once per router.
    """
    by_name = {ep.name: ep for ep in entry_points}
    wanted: dict[str, dict[tuple[str, ...], None]] = {name: {} for name in resolvers}
    for name, eps in compiled.entry_points.items():
        router = merged.routers.get(name)
        if router is None:
            continue
        missing: set[str] = set()
        for ep_name in eps:
            tls = effective_tls(router, by_name.get(ep_name))
            if tls is None or not tls.cert_resolver:
                continue
            if tls.cert_resolver not in wanted:
                if tls.cert_resolver not in missing:
                    missing.add(tls.cert_resolver)
                    log.error("router %s: certificate resolver %s does not exist", name, tls.cert_resolver)
                continue
            if tls.domains:
                sets = [(d.main, *d.sans) for d in tls.domains]
            else:
                rule = compiled.rules.get((router.rule, router.rule_syntax or "v3"))
                domains = rule.domains if rule is not None else None
                sets = [tuple(sorted(domains))] if domains else []
            for names in sets:
                wanted[tls.cert_resolver].setdefault(names, None)
    return {name: list(sets) for name, sets in wanted.items()}
