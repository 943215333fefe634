"""Wiring: static config → entry points, providers → merged snapshot → compiled routing tables.

This is the only place that knows every package. Providers publish their own config; the app merges all
of them (coalescing bursts into one rebuild), compiles new tables off to the side and swaps one reference
per entry point, so in-flight requests and open WebSockets never notice a reload.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import sys
from collections.abc import Mapping

from acme_client.resolver import AcmeResolver, ResolverSettings
from discover.docker_provider import DockerProvider
from discover.file_provider import FileProvider
from discover.model import DynamicConfig, TLSConfig, merge
from dockroute import __version__
from dockroute.logs import setup_logging
from dockroute.static import StaticConfig
from router.accesslog import AccessLog
from router.compile import Compiled, compile_config
from router.healthcheck import HealthChecker
from router.proxy import EntryPointHandler
from router.rules import RuleError, parse_rule
from router.server import EntryPointServer
from router.tls import CertificateStore, CertKeyPair, load_pem_files, self_signed_default
from router.upstream import Pool

log = logging.getLogger("dockroute")


class _AlpnChallenges:
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


class App:
    def __init__(self, static: StaticConfig) -> None:
        self.static = static
        self.pool = Pool(static.transport)
        self.access_log = (
            AccessLog(static.access_log.file_path, static.access_log.format) if static.access_log else None
        )
        self.servers = [
            EntryPointServer(
                EntryPointHandler(ep, self.pool, self.access_log),
                EntryPointHandler(ep, self.pool, self.access_log, scheme="https"),
            )
            for ep in static.entry_points
        ]
        self.configs: dict[str, DynamicConfig] = {}
        self.current: DynamicConfig | None = None
        self.compiled: Compiled | None = None
        self.health: HealthChecker | None = None
        self._rebuild_scheduled = False
        self._tasks: list[asyncio.Task[None]] = []
        self._default_pair = self_signed_default()  # unknown names get this, never another site's
        self.resolvers: dict[str, AcmeResolver] = {}
        for name, raw in (static.certificates_resolvers or {}).items():
            acme = (
                next((v for k, v in raw.items() if k.lower() == "acme"), None)
                if isinstance(raw, Mapping)
                else None
            )
            if isinstance(acme, Mapping):
                self.resolvers[name] = AcmeResolver(
                    name, ResolverSettings.from_raw(acme), self._certificates_changed
                )
            else:
                log.warning("certificate resolver %s: only acme resolvers are supported; ignored", name)
        alpn = [r for r in self.resolvers.values() if r.settings.tls_challenge]
        if alpn:
            for srv in self.servers:
                srv.alpn_challenges = _AlpnChallenges(alpn)
        self.tls_store: CertificateStore | None = None
        self.current_tls: TLSConfig | None = None
        self.stopping = asyncio.Event()

    # -- providers → tables ---------------------------------------------------------------------------

    def publish(self, provider: str, cfg: DynamicConfig) -> None:
        """Called by a provider with its whole config; rebuilds are coalesced to one per loop turn."""
        self.configs[provider] = cfg
        if not self._rebuild_scheduled:
            self._rebuild_scheduled = True
            asyncio.get_running_loop().call_soon(self._rebuild)

    def _rebuild(self) -> None:
        self._rebuild_scheduled = False
        merged = merge(self.configs)
        if merged == self.current:
            return
        try:
            compiled = compile_config(
                merged,
                self.static.entry_points,
                self.compiled.balancers if self.compiled else None,
                ports={srv.name: srv.port for srv in self.servers},
                challenge=self._challenge if self.resolvers else None,
            )
        except Exception:  # never lose what works because of a bug on a new config
            log.exception("could not compile the new configuration; keeping the previous one")
            return
        self.current = merged
        self.compiled = compiled
        for srv in self.servers:
            srv.handler.table = compiled.tables[srv.name]
            if srv.tls_handler is not None:
                srv.tls_handler.table = compiled.tls_tables[srv.name]
        if self.tls_store is None or merged.tls != (self.current_tls or TLSConfig()):
            self._apply_tls(merged.tls)
        self._want_certificates(merged)
        self._restart_health(compiled, merged)
        self.pool.retain(
            {up.key for bal in compiled.balancers.values() for up in getattr(bal, "servers", ())}
        )
        log.info(
            "configuration applied: %d routers, %d services%s",
            len(merged.routers) - len(compiled.errors),
            len(compiled.balancers),
            f", {len(compiled.errors)} routers left out" if compiled.errors else "",
        )

    def _challenge(self, token: str) -> str | None:
        for resolver in self.resolvers.values():
            answer = resolver.key_authorization(token)
            if answer is not None:
                return answer
        return None

    def _want_certificates(self, merged: DynamicConfig) -> None:
        """Each router with tls.certResolver wants one certificate: its tls.domains, else its rule's hosts."""
        wanted: dict[str, list[tuple[str, ...]]] = {name: [] for name in self.resolvers}
        for router in merged.routers.values():
            tls = router.tls
            if tls is None or not tls.cert_resolver:
                continue
            if tls.cert_resolver not in self.resolvers:
                log.error("router %s: certificate resolver %s does not exist", router.name, tls.cert_resolver)
                continue
            if tls.domains:
                sets = [(d.main, *d.sans) for d in tls.domains]
            else:
                try:
                    hosts = parse_rule(router.rule).hosts
                except RuleError:
                    continue
                sets = [tuple(sorted(hosts))] if hosts else []
            wanted[tls.cert_resolver].extend(sets)
        for name, resolver in self.resolvers.items():
            resolver.want(wanted[name])

    def _certificates_changed(self) -> None:
        self._apply_tls(self.current_tls or TLSConfig())

    def _apply_tls(self, tls: TLSConfig) -> None:
        """A new certificate store from ``tls.certificates``: built off the handshake path, swapped whole.
        Connections already open keep the context they were handed."""
        pairs = []
        for cf in tls.certificates:
            try:
                pairs.append(load_pem_files(cf.cert_file, cf.key_file))
            except OSError as exc:
                log.error("tls certificate %s: cannot read it (%s); left out", cf.cert_file, exc)
        for resolver in self.resolvers.values():
            pairs.extend(CertKeyPair(c.certificate_pem, c.key_pem) for c in resolver.certificates())
        default = self._default_pair
        if tls.default_certificate is not None:
            try:
                default = load_pem_files(tls.default_certificate.cert_file, tls.default_certificate.key_file)
            except OSError as exc:
                log.error("tls default certificate: cannot read it (%s); using the generated one", exc)
        self.tls_store = CertificateStore(pairs, default=default)
        self.current_tls = tls
        for srv in self.servers:
            srv.tls_store = self.tls_store

    def _restart_health(self, compiled: Compiled, merged: DynamicConfig) -> None:
        old = self.health
        self.health = HealthChecker(compiled.balancers, merged.services)
        self.health.start()
        if old is not None:
            asyncio.get_running_loop().create_task(old.stop())

    # -- lifecycle -------------------------------------------------------------------------------------

    async def start(self) -> None:
        for srv in self.servers:
            try:
                await srv.start()
            except OSError as exc:
                address = srv.handler.entry_point.address
                msg = f"dockroute: cannot listen on entry point {srv.name} ({address}): {exc}"
                raise SystemExit(msg) from exc
        self.publish("internal", DynamicConfig())
        self._start_providers()
        for resolver in self.resolvers.values():
            self._tasks.append(asyncio.get_running_loop().create_task(resolver.run()))
        self._summary()

    def _start_providers(self) -> None:
        fp = self.static.file_provider
        if fp is not None:
            provider = FileProvider(filename=fp.filename, directory=fp.directory, watch=fp.watch)
            self._tasks.append(asyncio.get_running_loop().create_task(provider.run(self._publisher("file"))))
        dp = self.static.docker_provider
        self.docker = None
        if dp is not None:
            path = dp.endpoint.removeprefix("unix://")
            if dp.explicit or not dp.endpoint.startswith("unix://") or os.path.exists(path):
                self.docker = DockerProvider(dp)
                task = asyncio.get_running_loop().create_task(self.docker.run(self._publisher("docker")))
                self._tasks.append(task)
                self._docker_line = f"provider docker: {dp.endpoint}" + (
                    " (watching events)" if dp.watch else ""
                )
            else:
                self._docker_line = f"provider docker: off (no Docker socket at {path})"
        else:
            self._docker_line = "provider docker: off"

    def _publisher(self, provider: str):  # noqa: ANN202 - a closure handed to a provider
        def publish(cfg: DynamicConfig) -> None:
            self.publish(provider, cfg)

        return publish

    def _summary(self) -> None:
        log.info(
            "dockroute %s started%s",
            __version__,
            f" (config {self.static.source})" if self.static.source else "",
        )
        for srv in self.servers:
            ep = srv.handler.entry_point
            extra = ""
            if ep.redirection is not None:
                extra = f", redirecting to {ep.redirection.scheme}://…{ep.redirection.to}"
            for host, port in srv.addresses:
                log.info("entrypoint %s listening on %s:%d (http, https%s)", srv.name, host, port, extra)
        fp = self.static.file_provider
        if fp is not None:
            log.info(
                "provider file: %s%s",
                fp.filename or fp.directory,
                " (watching for changes)" if fp.watch else "",
            )
        else:
            log.info("provider file: off")
        log.info("%s", self._docker_line)
        for section in self.static.ignored:
            log.warning("static configuration section %s is not supported yet and was ignored", section)

    async def shutdown(self) -> None:
        grace = max((ep.grace_timeout for ep in self.static.entry_points), default=10.0)
        accept = max((ep.request_accept_grace_timeout for ep in self.static.entry_points), default=0.0)
        if accept:
            # lifeCycle.requestAcceptGraceTimeout: keep accepting while a load balancer in front notices.
            log.info("shutting down: still accepting requests for %ss", accept)
            await asyncio.sleep(accept)
        log.info("shutting down: waiting up to %ss for in-flight requests", grace)
        for srv in self.servers:
            srv.stop_accepting()
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*(srv.shutdown(grace) for srv in self.servers), return_exceptions=True)
        if self.health is not None:
            await self.health.stop()
        self.pool.close()
        if self.access_log is not None:
            self.access_log.close()
        log.info("stopped")


def _tune_runtime() -> None:
    """uvloop when installed; and a calmer cyclic GC (the request path makes few cycles)."""
    try:
        import uvloop  # noqa: PLC0415

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    gc.set_threshold(50_000, 50, 100)


async def _main(static: StaticConfig) -> int:
    app = App(static)
    await app.start()
    gc.collect()
    gc.freeze()  # start-up objects never need scanning again
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await app.shutdown()
    return 0


def run(static: StaticConfig, environ: Mapping[str, str] | None = None) -> int:
    setup_logging(static.log)
    _tune_runtime()
    try:
        return asyncio.run(_main(static))
    except SystemExit as exc:
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
            return 1
        raise
