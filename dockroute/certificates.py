"""Certificate resolvers in the app: built from the typed static settings, and told what to certify.

The app owns a dict of resolvers by name: an ACME resolver (:class:`~acme_client.resolver.AcmeResolver`)
or the built-in CA (:class:`~acme_client.internal_ca.InternalCA`), both with the same surface
(``certificates()``, ``want()``, ``run()``, ``key_authorization()``, ``alpn_challenge()``). Which names
each one is asked for follows Traefik: every routed router with a ``certResolver`` in its effective tls
(its own, or its entry point's ``http.tls``) wants its ``domains``, else the hosts of its rule.

What the API and the metrics show of certificates is gathered here too (:class:`CertificateReports`):
the resolvers' reports (``acme_client`` records) and the file certificates (read in the build thread,
:func:`read_file_certificates`), turned into the router's :class:`~router.api.state.CertificateReport`,
so neither package learns of the other.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping

from acme_client.internal_ca import InternalCA
from acme_client.report import CertificateFacts, CertificateStatus, read_facts
from acme_client.resolver import AcmeResolver
from acme_client.settings import InternalCASettings, ResolverSettings
from acme_client.shared_challenges import valid_key
from acme_client.storage import AcmeStorage
from discover.model import DynamicConfig, TLSConfig
from dockroute.kubernetes_certs import acme_storage
from router.api.state import CertificateReport
from router.compile import Compiled, effective_tls
from router.settings import EntryPoint
from router.tls import CertificateStore, CertKeyPair, load_pem_files

__all__ = [
    "AlpnChallenges",
    "CertificateReports",
    "HttpChallenges",
    "Resolver",
    "build_resolvers",
    "build_store",
    "FileCertificates",
    "read_file_certificates",
    "wanted_certificates",
]

log = logging.getLogger("dockroute")

Resolver = AcmeResolver | InternalCA


def build_resolvers(
    settings: Mapping[str, ResolverSettings | InternalCASettings],
    on_change: Callable[[], None],
    on_failure: Callable[[str], None] | None = None,
) -> dict[str, Resolver]:
    """One resolver per ``certificatesResolvers`` entry (already validated at start by the static
    configuration); ``on_change`` is called when one stores a certificate, ``on_failure`` with the
    resolver's name each time one of its orders (or an internal CA's issue) fails: the metrics' ACME
    failure counter (on the event loop, like ``on_change``)."""
    resolvers: dict[str, Resolver] = {}
    for name, s in settings.items():
        if isinstance(s, InternalCASettings):
            resolvers[name] = InternalCA(name, s, on_change)
        else:
            resolvers[name] = AcmeResolver(name, s, on_change, storage=acme_storage(s))
        resolvers[name].failure_log.on_failure = on_failure
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
        return any(r.alpn_certs or r.shared_alpn for r in self._resolvers)

    def alpn_challenge(self, server_name: str) -> CertKeyPair | None:
        for resolver in self._resolvers:
            found = resolver.alpn_challenge(server_name)
            if found is not None:
                return CertKeyPair(*found)
        return None


class HttpChallenges:
    """The router's HTTP-01 lookup (token → key authorization) over every ACME resolver: from their memory
    when this process ordered; else, as another replica sharing the store may have (a load balancer spreads
    the CA's requests over replicas), from the answers published beside their stores. What is no token is
    answered None at once, and never becomes a file name.

    Anyone may ask for any token-shaped path, so a token this process does not hold is never a store read
    of its own (a Kubernetes Secret store answers with a GET of every certificate): each store's answers
    are read whole, in a thread, by one read that concurrent lookups share (:class:`_AnswerSnapshot`)."""

    def __init__(self, resolvers: Mapping[str, Resolver], clock: Callable[[], float] | None = None) -> None:
        self._resolvers = [r for r in resolvers.values() if isinstance(r, AcmeResolver)]
        stores: dict[int, _AnswerSnapshot] = {}
        for r in self._resolvers:
            stores.setdefault(id(r.storage), _AnswerSnapshot(r.storage, clock))
        self._snapshots = list(stores.values())

    def __call__(self, token: str) -> str | None | Awaitable[str | None]:
        for resolver in self._resolvers:
            answer = resolver.key_authorization(token)
            if answer is not None:
                return answer
        if not self._resolvers or not valid_key("http-01", token):
            return None
        pending = []
        for snapshot in self._snapshots:
            answer = snapshot.lookup(token)
            if isinstance(answer, str):
                return answer
            if answer is not None:
                pending.append(answer)
        return self._first(pending) if pending else None

    @staticmethod
    async def _first(pending: list[Awaitable[str | None]]) -> str | None:
        for answer in await asyncio.gather(*pending):
            if answer is not None:
                return answer
        return None


class _AnswerSnapshot:
    """One store's published HTTP-01 answers, all read at once and kept ``LIFETIME`` seconds: a flood of
    lookups of unknown tokens costs at most one read per ``REFRESH_AFTER`` seconds, shared by every
    lookup waiting meanwhile, and the read runs in a thread (it may be a network volume or an API call).
    A token published after the snapshot was read is found by a lookup at most ``REFRESH_AFTER`` seconds
    later (a miss on an older snapshot reads again); a withdrawn answer may be given ``LIFETIME`` seconds
    longer, which is harmless (a key authorization is public)."""

    LIFETIME = 1.0
    REFRESH_AFTER = 0.5

    def __init__(self, storage: AcmeStorage, clock: Callable[[], float] | None = None) -> None:
        self._storage = storage
        self._clock = clock or time.monotonic
        self._answers: dict[str, str] = {}
        self._read_at = float("-inf")  # when the last read started (the clock's time)
        self._reading: asyncio.Future[dict[str, str]] | None = None

    def lookup(self, token: str) -> str | None | Awaitable[str | None]:
        """The answer at once when the snapshot holds it (or is too young to read again), else an
        awaitable of the one read in flight (started here when none is)."""
        age = self._clock() - self._read_at
        answer = self._answers.get(token) if age < self.LIFETIME else None
        if answer is not None:
            return answer
        if self._reading is None:
            if age < self.REFRESH_AFTER:
                return None
            self._read_at = self._clock()
            loop = asyncio.get_running_loop()
            self._reading = loop.run_in_executor(None, self._storage.read_answers, "http-01")
            self._reading.add_done_callback(self._took)
        return self._after(self._reading, token)

    def _took(self, reading: asyncio.Future[dict[str, str]]) -> None:
        self._reading = None
        if not reading.cancelled() and reading.exception() is None:
            self._answers = reading.result()
        else:
            self._answers = {}

    @staticmethod
    async def _after(reading: asyncio.Future[dict[str, str]], token: str) -> str | None:
        try:
            return (await asyncio.shield(reading)).get(token)
        except Exception:
            log.debug("reading the published HTTP-01 answers failed", exc_info=True)
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
    _wanted_tcp(merged, compiled, wanted)
    return {name: list(sets) for name, sets in wanted.items()}


def _wanted_tcp(
    merged: DynamicConfig, compiled: Compiled, wanted: dict[str, dict[tuple[str, ...], None]]
) -> None:
    """As Traefik's ACME provider for TCP routers: each routed TCP router whose tls names a certResolver
    wants its ``domains``, else the names of its rule's HostSNI() (one certificate; ``*`` is no name)."""
    tcp = compiled.tcp
    for name in tcp.entry_points if tcp is not None else ():
        router = merged.tcp.routers.get(name)
        resolver = router.tls.cert_resolver if router is not None and router.tls is not None else None
        if not resolver:
            continue
        if resolver not in wanted:
            log.error("TCP router %s: certificate resolver %s does not exist", name, resolver)
            continue
        if router.tls.domains:
            sets = [(d.main, *d.sans) for d in router.tls.domains]
        else:
            names = sorted({n for n in tcp.rules[name].sni_names if n != "*"})
            sets = [tuple(names)] if names else []
        for names in sets:
            wanted[resolver].setdefault(names, None)


def build_store(
    tls: TLSConfig,
    resolver_pairs: tuple[CertKeyPair, ...],
    previous: CertificateStore | None,
    default: CertKeyPair,
    entry_point_options: Mapping[str, Mapping[str, str]] | None = None,
) -> tuple[CertificateStore, FileCertificates]:
    """A new certificate store from ``tls.certificates`` and the resolvers' certificates (in the build
    thread: it reads files and builds SSLContexts), with the TLS options and which hosts use which, and
    the file certificates' facts for the API (parsed here, never on the loop). Connections already open
    keep their context. ``default`` is served to unknown names unless ``tls`` configures one."""
    pairs = []
    for cf in tls.certificates:
        try:
            pairs.append(load_pem_files(cf.cert_file, cf.key_file))
        except OSError as exc:
            log.error("tls certificate %s: cannot read it (%s); left out", cf.cert_file, exc)
    file_pairs = tuple(pairs)
    pairs.extend(resolver_pairs)
    if tls.default_certificate is not None:
        try:
            default = load_pem_files(tls.default_certificate.cert_file, tls.default_certificate.key_file)
        except OSError as exc:
            log.error("tls default certificate: cannot read it (%s); using the generated one", exc)
    files = read_file_certificates(file_pairs, default)  # the default too, generated or configured
    store = CertificateStore(
        pairs,
        default=default,
        previous=previous,
        options=tls.options,
        entry_point_options=entry_point_options or {},
    )
    return store, files


# -- what the API and the metrics show -------------------------------------------------------------------


# (source, facts) per file certificate: "file" for ``tls.certificates``, "default" for the default one
FileCertificates = tuple[tuple[str, CertificateFacts], ...]


def read_file_certificates(files: Iterable[CertKeyPair], default: CertKeyPair | None) -> FileCertificates:
    """The ``tls.certificates`` served and the default certificate, parsed here: call it in the build
    thread, with the pairs the store is built from. A PEM that holds no certificate is left out (the
    store says why it refuses it)."""
    out = []
    for source, pairs in (("file", files), ("default", [default] if default is not None else [])):
        for pair in pairs:
            try:
                out.append((source, read_facts(pair.cert_pem)))
            except ValueError:
                continue
    return tuple(out)


def _from_file(source: str, facts: CertificateFacts) -> CertificateReport:
    return CertificateReport(
        domains=facts.names,
        resolver="",
        source=source,
        issuer=facts.issuer,
        not_after=facts.not_after,
        not_before=facts.not_before,
    )


def _from_status(status: CertificateStatus) -> CertificateReport:
    facts, failure = status.facts, status.last_error
    return CertificateReport(
        domains=status.domains,
        resolver=status.resolver,
        source=status.source,
        issuer=facts.issuer if facts is not None else "",
        not_after=facts.not_after if facts is not None else 0.0,  # 0: not issued yet
        not_before=facts.not_before if facts is not None else 0.0,
        next_renewal=status.next_renewal,
        last_error=failure.message if failure is not None else "",
        last_error_at=failure.at if failure is not None else None,
    )


class CertificateReports:
    """Every certificate dockroute serves, for the API (``ApiState.certificates`` is this object) and
    the metrics. Called on the event loop: nothing is parsed here (the resolvers read their certificates
    when they got them, the build thread the files: ``files`` is replaced, from
    :func:`read_file_certificates`, after each store is built).

    A resolver's name set with no certificate yet (its first order under way or failing) is reported
    with ``not_after`` 0 and its ``last_error``, so the user sees why a router has no certificate."""

    def __init__(self, resolvers: Mapping[str, Resolver]) -> None:
        self.resolvers = resolvers
        self.files: FileCertificates = ()

    def __call__(self) -> tuple[CertificateReport, ...]:
        from_resolvers = [_from_status(s) for r in self.resolvers.values() for s in r.reports()]
        return (*from_resolvers, *(_from_file(source, facts) for source, facts in self.files))

    def failures(self) -> dict[str, int]:
        """Resolver name → failed orders since start (``dockroute_acme_failures_total``-style counter)."""
        return {name: r.failure_log.count for name, r in self.resolvers.items()}

    def not_after_samples(self) -> list[tuple[str, str, str, float]]:
        """``(cn, serial, sans, not_after)`` per certificate served, the labels and value of Traefik's
        ``tls_certs_not_after`` gauge (``sans``: the DNS names sorted, comma-joined). As Traefik, the
        store's certificates only: not the default one."""
        facts = [s.facts for r in self.resolvers.values() for s in r.reports() if s.facts is not None]
        facts += [f for source, f in self.files if source != "default"]
        return [(f.common_name, f.serial, ",".join(sorted(f.dns_names)), f.not_after) for f in facts]
