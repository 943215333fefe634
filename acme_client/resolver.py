"""One ``certificatesResolvers.<name>.acme``: keeps a certificate for every name set it is asked for.

The proxy tells the resolver which name sets it wants (one per router with ``tls.certResolver``); the
resolver orders what is missing or due for renewal, missing certificates first, up to :data:`PARALLEL_ORDERS`
at a time in a pool of worker threads (the ``acme`` library blocks; each thread has its own ``Issuer``, since
a ``ClientNetwork`` keeps nonces), never two at once that share a name (two orders for one name would
spend the CA's rate limit twice, and two TLS-ALPN-01 answers for one name cannot be presented together).
Issued certificates go to ``acme.json`` first, then ``on_change`` tells the proxy to rebuild its
certificate store, once per certificate. Failures back off per name set from 1 minute to 6 hours, so an
unreachable or refusing CA sees a few attempts, never a loop.

Which names are ordered: a public CA (``is_public_ca``) is never asked for names it refuses by policy
(``.lan``, ``.home.arpa``, single labels); a private ACME CA (step-ca, Pebble) is asked for any DNS name.
A wildcard only with ``dnsChallenge``, and then a name set a wanted wildcard covers orders nothing itself.

Renewal: where the CA publishes ACME Renewal Information (RFC 9773), its suggested window decides, else a
third of the lifetime left (:mod:`acme_client.renewal_info`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable, Iterable

from acme_client.covering import cover_keys, covering, prune_covered, superseded
from acme_client.issuer import AcmeError, Issuer, generate_key
from acme_client.issuer import ca_bundle as _ca_bundle
from acme_client.order_lock import OrderLockTimeout
from acme_client.ordered_names import why_left_out, why_not_public
from acme_client.renewal_info import RenewalInfo
from acme_client.report import CertificateStatus, FailureLog
from acme_client.settings import ResolverSettings, is_public_ca, renewal_check_interval
from acme_client.shared_challenges import make_solvers
from acme_client.shared_store import StoreWatch, newer_in_store, stored_account, with_newer
from acme_client.storage import AcmeStorage, ResolverState, StorageError, StoredAccount, StoredCertificate

log = logging.getLogger("dockroute.acme")

__all__ = ["PARALLEL_ORDERS", "AcmeResolver", "why_not_public"]

# Orders in flight at once, per resolver: 30 names at first start take seconds instead of minutes, while a
# CA sees a handful of concurrent orders from one account (Let's Encrypt allows 300 new orders per 3 hours
# and far more requests per second than these make).
PARALLEL_ORDERS = 4

_BACKOFF_MIN, _BACKOFF_MAX = 60.0, 6 * 3600.0
_AFTER_FAILED_VALIDATION = 3600.0
# How long a process waits for another one ordering the same names (the holder's every request has a
# deadline: only a hung holder makes a waiter give up and back off).
_ORDER_LOCK_WAIT = 600.0
_ACCOUNT = "<account>"  # the lock name for registering the resolver's account: never a DNS name
# Problem types that mean "the CA looked and your proof was wrong", as opposed to the CA being unreachable,
# overloaded or rate limiting.
_VALIDATION_PROBLEMS = (
    "unauthorized",
    "incorrectResponse",
    "connection",
    "dns",
    "caa",
    "rejectedIdentifier",
    "tls",
)


def _validation_failed(exc: BaseException) -> bool:
    text = str(exc)
    return any(f"urn:ietf:params:acme:error:{p}" in text for p in _VALIDATION_PROBLEMS)


class AcmeResolver:
    def __init__(
        self,
        name: str,
        settings: ResolverSettings,
        on_change: Callable[[], None],
        storage: AcmeStorage | None = None,  # another store than the acme.json file ``settings`` names
    ) -> None:
        self.name = name
        self.settings = settings
        self.on_change = on_change
        self.check_interval = renewal_check_interval(settings.certificates_duration)
        self.storage = storage if storage is not None else AcmeStorage(settings.storage)
        self.tokens: dict[str, str] = {}  # HTTP-01: token → key authorization, read by the proxy
        # TLS-ALPN-01: name → (certificate, key) to present to acme-tls/1 clients, read by the proxy
        self.alpn_certs: dict[str, tuple[bytes, bytes]] = {}
        self.shared_alpn: dict[str, tuple[bytes, bytes]] = {}  # the same, published by other replicas
        self._solvers = make_solvers(settings, self)
        self._certs: dict[tuple[str, ...], StoredCertificate] = {}
        self._account: StoredAccount | None = None
        self._wanted: list[tuple[str, ...]] = []
        self._failures: dict[tuple[str, ...], tuple[float, float]] = {}  # names → (retry at, delay)
        self._retry_timers: dict[tuple[str, ...], asyncio.TimerHandle] = {}  # one wake-up per name set
        # Issued but not yet in acme.json (disk full, read-only): served from memory, written again each
        # pass. Never re-ordered: the CA counts duplicate certificates.
        self._unsaved: dict[tuple[str, ...], StoredCertificate] = {}
        self._read_back: dict[tuple[str, ...], StoredCertificate] = {}  # ordered by another process
        self._renewal = RenewalInfo(name)
        self._reported: set[str] = set()
        self.failure_log = FailureLog(name)  # failed orders: the last per name set, and how many
        self._reports: tuple[CertificateStatus, ...] | None = None  # cached until something changes
        self._executor = concurrent.futures.ThreadPoolExecutor(
            PARALLEL_ORDERS, thread_name_prefix=f"acme-{name}"
        )
        self._local = threading.local()  # each worker thread's Issuer
        self._account_lock = threading.Lock()  # one worker thread registers the account, the others wait
        self._said: set[str] = set()  # notes the worker threads' issuers logged: each said once
        self._task: asyncio.Task[None] | None = None
        self._kick: asyncio.Event | None = None
        self._load()

    def _load(self) -> None:
        try:
            state = self.storage.load().get(self.name)
        except Exception as exc:
            log.error("resolver %s: %s; starting without stored certificates", self.name, exc)
            return
        if state is not None:
            self._account = state.account
            for cert in state.certificates:
                self._certs[(cert.main, *cert.sans)] = cert
            self._drop_superseded()

    # -- what the proxy reads (structurally the router's CertificateSource) ----------------------------

    def certificates(self) -> list[StoredCertificate]:
        return list(self._certs.values())

    def key_authorization(self, token: str) -> str | None:
        return self.tokens.get(token)

    def reports(self) -> tuple[CertificateStatus, ...]:
        """Every certificate this resolver serves, then every name set it is asked for and has none for
        yet. Cheap (asked on the event loop, by the API and metrics): built from facts parsed when each
        certificate was obtained or loaded, and kept until a certificate, a failure, a renewal-information
        answer or the wanted names change."""
        if self._reports is None:
            self._reports = self._make_reports()
        return self._reports

    def _make_reports(self) -> tuple[CertificateStatus, ...]:
        covered: dict[int, list[tuple[str, ...]]] = {}  # id(certificate) → the wanted name sets it covers
        pending: list[tuple[str, ...]] = []
        holders: dict[str, list[StoredCertificate]] = {}  # name → the certificates naming it, in order
        for held in self._certs.values():
            for n in held.names:
                holders.setdefault(n.lower().rstrip("."), []).append(held)
        for names in self._wanted:  # as _covering, without its walk over every certificate per name set
            # The certificates that may cover the first name: those naming it, or the wildcard above it.
            cert = covering(names, [c for k in cover_keys(names[0]) for c in holders.get(k, ())])
            if cert is None:
                pending.append(names)
            else:
                covered.setdefault(id(cert), []).append(names)
        out = []
        for cert in self._certs.values():
            sets = covered.get(id(cert), [])
            failures = [f for f in map(self.failure_log.last, sets) if f is not None]
            out.append(
                CertificateStatus(
                    domains=(cert.main, *cert.sans),
                    resolver=self.name,
                    source="acme",
                    facts=cert.facts,
                    # Not wanted any more: the loop never renews it (None).
                    next_renewal=min((self._next_attempt(names, cert) for names in sets), default=None),
                    last_error=max(failures, key=lambda f: f.at, default=None),
                )
            )
        for names in pending:
            failure = self.failure_log.last(names)
            retry = failure.retry_at if failure is not None else None
            out.append(CertificateStatus(names, self.name, "acme", None, retry, failure))
        return tuple(out)

    def _next_attempt(self, names: tuple[str, ...], cert: StoredCertificate) -> float:
        """When the loop orders ``names`` again: once ``cert`` falls due, not before a failure's retry."""
        at = self._renewal.renewal_time(names, cert)[0]
        failure = self.failure_log.last(names)
        return max(at, failure.retry_at) if failure is not None else at

    def alpn_challenge(self, server_name: str) -> tuple[bytes, bytes] | None:
        """The TLS-ALPN-01 certificate and key pending for ``server_name``, if any."""
        return self.alpn_certs.get(server_name) or self.shared_alpn.get(server_name)

    # -- what the proxy asks for ------------------------------------------------------------------------

    def want(self, name_sets: Iterable[tuple[str, ...]]) -> None:
        """The name sets to keep certificates for. A public CA (Let's Encrypt, ZeroSSL...) is never asked
        for a name it refuses by policy (``.lan``, single labels...): the default certificate serves it. A
        private CA (step-ca, Pebble, a company's own) is asked for any DNS name: it is its policy that
        decides. IP addresses are left out for every CA: they need IP identifiers (RFC 8738) in the order
        and, for TLS-ALPN-01, a reverse-DNS SNI, neither of which this client does yet. A wildcard is
        ordered only with ``dnsChallenge`` (DNS-01 alone can prove one), and then a name set whose every
        name a wanted wildcard set covers orders nothing of its own: the wildcard certificate serves it."""
        public = is_public_ca(self.settings.ca_server)
        dns01 = self.settings.dns_challenge is not None
        wanted = []
        for names in name_sets:
            keep = []
            for n in names:
                why = why_left_out(n, public, dns01=dns01)
                if why is None:
                    keep.append(n.lower().rstrip("."))
                elif n not in self._reported:
                    self._reported.add(n)
                    log.info(
                        "resolver %s: no certificate ordered for %s (%s): the default one serves it",
                        self.name,
                        n,
                        why,
                    )
            if keep:
                wanted.append(tuple(dict.fromkeys(keep)))
        pruned = prune_covered(wanted)
        for names in wanted:
            if names not in pruned:
                log.debug("resolver %s: %s served by a wanted wildcard", self.name, ", ".join(names))
        self._reports = None
        self._wanted = pruned
        if self._kick is not None:
            self._kick.set()

    async def run(self) -> None:
        """Check at once, on every change of wanted names, and every ``check_interval`` seconds (at most
        10 minutes): orders for missing certificates, then renewal information, then renewals. Each
        check starts with the solvers cleaning up what orders that no longer run left published
        (:meth:`_recover`): a run that died, before the first order, and later a failed cleanup."""
        self._kick = asyncio.Event()
        self._kick.set()
        loop = asyncio.get_running_loop()
        alpn = self._alpn_elsewhere if self.settings.tls_challenge else None
        watch = StoreWatch(self.storage, self.name, loop, self._stored_elsewhere, alpn=alpn)
        watch.start()
        try:
            while True:
                try:
                    async with asyncio.timeout(self.check_interval):
                        await self._kick.wait()
                except TimeoutError:
                    pass
                self._kick.clear()
                await loop.run_in_executor(self._executor, self._recover)
                await self._save_unsaved(loop)
                wanted = list(self._wanted)
                # Missing certificates first (a new router waits for nothing), then renewal information,
                # then renewals.
                await self._check_all(loop, [names for names in wanted if self._covering(names) is None])
                await self._refresh_renewal_info(loop)
                await self._check_all(loop, [names for names in wanted if self._covering(names) is not None])
        finally:
            watch.stop()
            for timer in self._retry_timers.values():
                timer.cancel()
            self._retry_timers.clear()
            self._executor.shutdown(wait=False, cancel_futures=True)

    def _stored_elsewhere(self, state: ResolverState) -> None:
        """Another process wrote the store (:class:`StoreWatch`): its newer certificates are served now."""
        certs = with_newer(self._certs, state.certificates, self.name, self.storage.path)
        if certs is not None:
            self._certs = certs  # a new dict: the worker thread may be walking the old one
            self._drop_superseded()
            self._reports = None
            self.on_change()

    def _alpn_elsewhere(self, certs: dict[str, tuple[bytes, bytes]]) -> None:
        self.shared_alpn = certs  # a new dict: the loop reads it, never changed in place

    async def _check_all(self, loop: asyncio.AbstractEventLoop, sets: list[tuple[str, ...]]) -> None:
        """:meth:`_check` every name set of ``sets``, up to :data:`PARALLEL_ORDERS` at once and never two
        sharing a name; a set waiting for a name in use lets the next ones go first, keeping their order
        otherwise. Returns once all are done; cancelled (shutdown), it cancels those in flight."""
        pending = list(sets)
        running: dict[asyncio.Task[None], tuple[str, ...]] = {}
        busy: set[str] = set()  # the names of the sets in flight
        try:
            while pending or running:
                for names in list(pending):
                    if len(running) >= PARALLEL_ORDERS:
                        break
                    if busy.isdisjoint(names):
                        pending.remove(names)
                        busy.update(names)
                        running[asyncio.ensure_future(self._check(loop, names))] = names
                done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    busy.difference_update(running.pop(task))
        finally:
            for task in running:
                task.cancel()

    def _backing_off(self, names: tuple[str, ...]) -> bool:
        return time.monotonic() < self._failures.get(names, (0.0, 0.0))[0]

    async def _check(self, loop: asyncio.AbstractEventLoop, names: tuple[str, ...]) -> None:
        """Order ``names`` if missing or due, unless backing off after a failure. Never raises but for
        cancellation: one name set's trouble must not stop the others or the loop."""
        retry_at, delay = self._failures.get(names, (0.0, 0.0))
        if time.monotonic() < retry_at:
            assert self._kick is not None
            timer = self._retry_timers.get(names)
            # One wake-up per backoff, however many passes meanwhile; again if it came a tick early.
            if timer is None or timer.when() <= loop.time():
                self._retry_timers[names] = loop.call_later(retry_at - time.monotonic(), self._kick.set)
            return
        timer = self._retry_timers.pop(names, None)
        if timer is not None:
            timer.cancel()
        try:
            due, why = self._due(names)
            if not due:
                log.debug("resolver %s: certificate for %s not due: %s", self.name, ", ".join(names), why)
                return
            cert = await loop.run_in_executor(self._executor, self._order, names)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # AcmeError, storage trouble, a lock held too long, a bug: go on
            self._failed(names, delay, exc)
            return
        ordered = self._read_back.pop(names, None) is not cert
        self._failures.pop(names, None)
        self.failure_log.succeeded(names)
        # A new dict, never this one changed in place: other worker threads may be walking it (_covering).
        self._certs = {**self._certs, names: cert}
        self._drop_superseded()
        self._reports = None
        log.info(
            "resolver %s: certificate for %s %s, valid until %s",
            self.name,
            ", ".join(names),
            "obtained" if ordered else f"ordered by another process, read from {self.storage.path}",
            cert.not_after,
        )
        self.on_change()

    def _failed(self, names: tuple[str, ...], delay: float, exc: Exception) -> None:
        if not isinstance(exc, (AcmeError, StorageError, OrderLockTimeout)):
            log.error("resolver %s: unexpected error for %s", self.name, ", ".join(names), exc_info=exc)
        delay = min(max(delay * 2, _BACKOFF_MIN), _BACKOFF_MAX)
        if _validation_failed(exc):
            # Let's Encrypt's failed-validation limit: no new order for these names within the hour,
            # however the backoff stands.
            delay = max(delay, _AFTER_FAILED_VALIDATION)
        self._failures[names] = (time.monotonic() + delay, delay)
        if self._kick is not None and names not in self._retry_timers:
            # The next try when the backoff ends, not at the next check (up to 10 minutes later).
            self._retry_timers[names] = asyncio.get_running_loop().call_later(delay, self._kick.set)
        self.failure_log.failed(names, str(exc) or type(exc).__name__, delay)
        self._reports = None
        log.error(
            "resolver %s: order for %s failed: %s; next try in %ds",
            self.name,
            ", ".join(names),
            exc,
            delay,
        )

    def _covering(self, names: tuple[str, ...]) -> StoredCertificate | None:
        """The certificate judged, renewed and reported for ``names``: see :func:`covering`."""
        return covering(names, self._certs.values())

    def _drop_superseded(self) -> None:
        """Forget certificates a later-expiring one covers (a renewal stored under another key, an
        ``acme.json`` entry with its names in another order): never served, judged or renewed again."""
        gone = superseded(self._certs)
        for key in gone:
            log.info("resolver %s: certificate for %s superseded by a newer one", self.name, ", ".join(key))
            self._unsaved.pop(key, None)
        if gone:  # a new dict, never one changed in place: the worker thread may be walking the old one
            self._certs = {key: cert for key, cert in self._certs.items() if key not in gone}

    def _due(self, names: tuple[str, ...]) -> tuple[bool, str]:
        """Whether ``names`` needs an order, and why (or why not): no certificate covering them, an
        expired one, or one whose renewal time (:meth:`_renewal_time`) has come."""
        cert = self._covering(names)
        if cert is None:
            return True, "no certificate"
        now = time.time()
        if cert.facts.not_after <= now:
            return True, "expired"
        at, why = self._renewal.renewal_time(names, cert)
        return at <= now, why

    # -- ACME Renewal Information (RFC 9773) --------------------------------------------------------------

    async def _refresh_renewal_info(self, loop: asyncio.AbstractEventLoop) -> None:
        """Ask the CA's ARI, in the worker thread, about every stored certificate whose last answer
        allows asking again. Never raises but for cancellation (ARI trouble only means the one-third
        rule decides)."""
        questions = self._ari_questions()
        if not questions:
            return
        try:
            answers = await loop.run_in_executor(self._executor, self._ask_ari, questions)
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug: say so, and let the one-third rule decide
            log.exception("resolver %s: unexpected error while checking renewal information", self.name)
            return
        self._renewal.take(answers, self._wanted)
        self._reports = None

    def _ari_questions(self) -> list[tuple[tuple[str, ...], StoredCertificate]]:
        return self._renewal.questions(self._wanted, self._covering, self._backing_off)

    def _ask_ari(self, questions: list[tuple[tuple[str, ...], StoredCertificate]]) -> dict | None:
        """Worker thread: :meth:`RenewalInfo.ask` with this thread's issuer."""
        return self._renewal.ask(self._issuer(), questions)

    # -- the worker thread --------------------------------------------------------------------------------

    def _recover(self) -> None:
        """Worker thread, at the start of every check (so before the first order): each solver withdraws
        what orders that no longer run left published (DNS-01: TXT records journaled beside the store, by
        a run that died or a cleanup that failed; one listdir when there are none). Never fatal: what it
        cannot withdraw is logged, tried again at the next check, and orders go ahead."""
        for solver in self._solvers:
            recover = getattr(solver, "recover", None)
            if recover is None:
                continue
            try:
                recover()
            except Exception:  # a bug in a solver must not stop the check or the orders after it
                log.exception("resolver %s: cleaning up %s answers left over failed", self.name, solver.typ)

    def _issuer(self) -> Issuer:
        """This worker thread's issuer, made with the account's key (again once another thread has
        registered or read back the account: one made before with a key of its own must not register)."""
        issuer = getattr(self._local, "issuer", None)
        account = self._account
        if issuer is not None and account is not None and issuer.account_key_pem != account.private_key_pem:
            issuer = None
        if issuer is None:
            s = self.settings
            ca_bundle = _ca_bundle(s.ca_certificates)
            # An RSA account key: the only kind Traefik can read back from acme.json.
            key = self._account.private_key_pem if self._account is not None else generate_key("RSA2048")
            issuer = Issuer(
                s.ca_server,
                key,
                s.email,
                ca_bundle=ca_bundle,
                key_type=s.key_type,
                eab=s.eab,
                profile=s.profile,
                label=f"resolver {self.name}",
                said=self._said,
            )
            self._local.issuer = issuer
        return issuer

    def _order(self, names: tuple[str, ...]) -> StoredCertificate:
        """Worker thread: the certificate for ``names``. Processes sharing acme.json order under the lock for
        (resolver, names) (:mod:`acme_client.order_lock`) and read the store again once they hold it: one
        another process stored meanwhile is taken (and noted in ``_read_back``), never ordered again."""
        # An acme.json we may not use (mode too open, unreadable) refuses the order before the CA is
        # asked for anything: an account or a certificate we could not keep would be wasted.
        self.storage.load()
        current = self._covering(names)
        with self.storage.order_lock(self.name, names, timeout=_ORDER_LOCK_WAIT):
            stored = newer_in_store(self.storage, self.name, names, current)
            if stored is not None:
                self._read_back[names] = stored
                return stored
            return self._issue(names, current)

    def _register(self) -> Issuer:
        """Worker thread: the issuer, its account registered. The first of the processes sharing the store
        to register stores the account; the others, waiting on the account's lock, read it back. Within
        this process, one worker thread at a time (the others then look up the account it made)."""
        with self._account_lock:
            if self._account is not None:
                return self._register_locked()
            with self.storage.order_lock(self.name, (_ACCOUNT,), timeout=_ORDER_LOCK_WAIT):
                self._account = stored_account(self.storage, self.name)
                self._local.issuer = None  # made with a key of its own: made again with the stored one
                return self._register_locked()

    def _register_locked(self) -> Issuer:
        issuer = self._issuer()
        if self._account is None or issuer.registration_uri is None:
            issuer.register(known=self._account is not None)
            if self._account is None or self._account.registration_uri != issuer.registration_uri:
                self._account = StoredAccount(
                    email=self.settings.email or "",
                    registration_uri=issuer.registration_uri,
                    registration_body={},
                    private_key_pem=issuer.account_key_pem,
                    key_type=self.settings.key_type,
                )
                self.storage.put_account(self.name, self._account)
        return issuer

    def _issue(self, names: tuple[str, ...], renewing: StoredCertificate | None) -> StoredCertificate:
        issuer = self._register()
        issued = issuer.issue(
            list(names), self._solvers, replaces=renewing.certificate_pem if renewing is not None else None
        )
        cert = StoredCertificate(
            main=names[0],
            sans=tuple(names[1:]),
            certificate_pem=issued.fullchain_pem,
            key_pem=issued.key_pem,
        )
        cert.facts, cert.names  # noqa: B018 - parsed here, in the worker thread, not on the event loop
        try:
            self.storage.put_certificate(self.name, cert)  # on disk before it is served, when it can be
        except StorageError as exc:
            self._unsaved[names] = cert
            log.error(
                "resolver %s: certificate for %s obtained but not stored: %s; serving it from memory "
                "and writing it again on every check",
                self.name,
                ", ".join(names),
                exc,
            )
        return cert

    async def _save_unsaved(self, loop: asyncio.AbstractEventLoop) -> None:
        """Write certificates that could not be stored when issued (worker thread: the file is shared)."""
        for names, cert in list(self._unsaved.items()):
            try:
                await loop.run_in_executor(self._executor, self.storage.put_certificate, self.name, cert)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # still failing: said once at issue time, keep quiet until it works
                log.debug("resolver %s: certificate for %s still not stored: %s", self.name, names, exc)
                continue
            if self._unsaved.get(names) is cert:
                del self._unsaved[names]
            log.info(
                "resolver %s: certificate for %s now stored in %s",
                self.name,
                ", ".join(names),
                self.storage.path,
            )
