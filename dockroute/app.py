"""Wiring: static config → entry points, providers → merged snapshot → compiled routing tables.

This is the only place that knows every package. Providers publish their own config, at most once per
``providersThrottleDuration`` each (the newest wins); the app merges all of them, compiles new tables and
builds the certificate store in one worker thread (configurations published meanwhile are coalesced into
the next build), then swaps one reference per entry point on the event loop, so in-flight requests and
open WebSockets never notice a reload and no request waits for one.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from acme_client.resolver import AcmeResolver
from discover.docker_provider import DockerProvider
from discover.file_provider import FileProvider
from discover.kubernetes.provider import KubernetesIngressProvider
from discover.model import DynamicConfig, TLSConfig, merge
from discover.swarm_provider import SwarmProvider
from dockroute import __version__
from dockroute.certificates import (
    AlpnChallenges,
    CertificateReports,
    FileCertificates,
    HttpChallenges,
    Resolver,
    alpn_resolvers,
    build_resolvers,
    build_store,
    wanted_certificates,
)
from dockroute.fdlimit import raise_open_files_limit
from dockroute.internal import InternalServices, internal_config
from dockroute.logs import setup_logging
from dockroute.route_log import Routed, route_changes, routed_names
from dockroute.static import StaticConfig
from dockroute.throttle import ProviderThrottle
from router.accesslog import AccessLog
from router.api.state import ApiState
from router.compile import Compiled, compile_config, logged_once
from router.healthcheck import HealthChecker
from router.metrics_sources import open_connection_rows, server_up_rows
from router.proxy import EntryPointHandler
from router.server import EntryPointServer
from router.tcp.compile import compile_tcp_beside
from router.tls import CertificateStore, CertKeyPair, self_signed_default
from router.transports import Transports
from router.udp.group import UDPEntryPoints
from router.upstream import Pool

log = logging.getLogger("dockroute")

FIRST_FILE_WAIT = 30.0  # seconds start-up waits for the file provider's first configuration


class _QuietGC:
    """Automatic cyclic GC is off while reload work (parsing, compiling) runs in a worker thread.

    CPython's collector stops every thread, and its pauses grow with the young objects alive: parsing a
    2,000-router YAML file keeps a few hundred thousand of them (nodes, marks, events) alive at once, so the
    collections it triggers stopped the event loop for 10-70 ms each here (more on a busy machine). The
    request path makes few cycles, so deferring collection for the second a reload takes costs nothing;
    the parse's temporaries are freed by reference counting, and when collection resumes the young
    generation holds only what survived (a compiled config holds no reference cycles).
    """

    MAX_PAUSE = 10.0  # seconds: overlapping loads and builds never keep collection off for longer

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._depth = 0
        self._was_enabled = False
        self._since = 0.0

    def __enter__(self) -> None:
        with self._lock:
            if self._depth == 0:
                self._was_enabled = gc.isenabled()
                self._since = time.monotonic()
                gc.disable()
            elif self._was_enabled and time.monotonic() - self._since > self.MAX_PAUSE:
                # Reloads back to back (a file rewritten faster than it is built): let the collector run
                # again until this streak ends, so cyclic garbage cannot pile up for as long as it lasts.
                gc.enable()
                self._was_enabled = False
            self._depth += 1

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._depth -= 1
            if self._depth == 0 and self._was_enabled:
                gc.enable()


_quiet_gc = _QuietGC()


class _FileProvider(FileProvider):
    """The file provider, whose (threaded) loads run under :data:`_quiet_gc`."""

    def load(self) -> DynamicConfig:
        with _quiet_gc:
            return super().load()


@dataclass(frozen=True)
class _BuildInput:
    """Everything a build reads, captured on the loop: the worker thread touches nothing else of the app."""

    configs: Mapping[str, DynamicConfig]
    current: DynamicConfig | None
    current_tls: TLSConfig | None
    previous: Compiled | None
    ports: Mapping[str, int]
    tls_forced: bool  # certificates from a resolver changed: build the store even if tls did not
    resolver_pairs: tuple[CertKeyPair, ...]
    store: CertificateStore | None  # the store in use: its contexts are reused for unchanged pairs
    routed: Routed  # the routed hostnames of the configuration in use (the route log's previous state)


@dataclass
class _Snapshot:
    """What a build hands back to the loop; ``None`` parts did not change."""

    merged: DynamicConfig
    compiled: Compiled | None = None
    wanted: dict[str, list[tuple[str, ...]]] = field(default_factory=dict)
    pool_keys: set[tuple[Any, ...]] = field(default_factory=set)
    transports: Transports | None = None  # the pool's transport table, TLS contexts built in the thread
    store: CertificateStore | None = None
    file_certificates: FileCertificates = ()  # with ``store``: its file certificates, parsed (for the API)
    routed: Routed | None = None
    route_lines: list[str] = field(default_factory=list)  # what became routed or stopped being routed
    reported_only: bool = False  # only ``discovered`` changed: the API's state, nothing recompiled


class App:
    def __init__(self, static: StaticConfig) -> None:
        self.static = static
        self.pool = Pool(static.transport)
        al = static.access_log
        self.access_log = AccessLog(al.file_path, al.format, options=al.options) if al is not None else None
        # api@internal, dashboard@internal, ping@internal, prometheus@internal, noop@internal as the static
        # config turns them on, and the process's metrics (one instance every entry point counts into)
        self.internal = InternalServices(static)
        metrics = self.metrics = self.internal.metrics
        self.servers = [
            EntryPointServer(
                EntryPointHandler(ep, self.pool, self.access_log, metrics=metrics),
                EntryPointHandler(ep, self.pool, self.access_log, scheme="https", metrics=metrics),
            )
            for ep in static.entry_points
            if not ep.udp  # UDP entry points are datagram sockets (self.udp), not HTTP servers
        ]
        self.udp = UDPEntryPoints(static.entry_points)
        self.configs: dict[str, DynamicConfig] = {}
        self.current: DynamicConfig | None = None
        self.compiled: Compiled | None = None
        self.health = HealthChecker(tls_for=self.pool.tls_for)
        self.throttle: ProviderThrottle[DynamicConfig] = ProviderThrottle(
            static.providers_throttle_duration, self._accept
        )
        # Builds run one at a time in this thread; configurations published meanwhile are coalesced into
        # the next build, so the newest always wins and no intermediate one is built for nothing.
        self._builder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dockroute-build")
        self._build_task: asyncio.Task[None] | None = None
        self._dirty = False
        self._tls_forced = False
        self._tasks: list[asyncio.Task[None]] = []
        self._default_pair = self_signed_default()  # unknown names get this, never another site's
        self.resolvers: dict[str, Resolver] = build_resolvers(
            static.resolvers, self._certificates_changed, metrics.acme_failed if metrics is not None else None
        )
        self.certificate_reports = CertificateReports(self.resolvers)  # what the API lists, read when asked
        alpn = alpn_resolvers(self.resolvers)
        if alpn:
            for srv in self.servers:
                srv.alpn_challenges = AlpnChallenges(alpn)
        self.tls_store: CertificateStore | None = None
        self.current_tls: TLSConfig | None = None
        self._routed: Routed = {}
        # The HTTP-01 challenge router is there when an ACME resolver may need it (a built-in CA does not).
        self._http_challenges = any(isinstance(r, AcmeResolver) for r in self.resolvers.values())
        self._challenge = HttpChallenges(self.resolvers)  # what a replica sharing the store published too
        self.stopping = asyncio.Event()
        if metrics is not None:  # read when a scrape asks, on the loop
            metrics.sources.servers_up = lambda: server_up_rows(
                self.compiled.balancers if self.compiled else {}
            )
            metrics.sources.open_connections = lambda: open_connection_rows(self.servers)
        # The internal provider's routers are known now: every build includes them, the first one too
        # (whichever provider's configuration triggers it), so /ping and the API never miss a start.
        self.configs["internal"] = internal_config(static)

    # -- providers → tables ---------------------------------------------------------------------------

    def publish(self, provider: str, cfg: DynamicConfig) -> None:
        """Called by a provider with its whole config; throttled per provider (providersThrottleDuration)."""
        self.throttle.offer(provider, cfg)

    def _accept(self, provider: str, cfg: DynamicConfig) -> None:
        self.configs[provider] = cfg
        self._request_build()

    def _request_build(self) -> None:
        """Something changed: build once the running build (if any) is done."""
        self._dirty = True
        if self._build_task is None or self._build_task.done():
            self._build_task = asyncio.get_running_loop().create_task(self._build_loop(), name="config build")

    async def _build_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while self._dirty:
            self._dirty = False
            inp = _BuildInput(
                configs=dict(self.configs),
                current=self.current,
                current_tls=self.current_tls,
                previous=self.compiled,
                ports={srv.name: srv.port for srv in self.servers},
                tls_forced=self._tls_forced or self.tls_store is None,
                resolver_pairs=tuple(
                    CertKeyPair(c.certificate_pem, c.key_pem)
                    for r in self.resolvers.values()
                    for c in r.certificates()
                ),
                store=self.tls_store,
                routed=self._routed,
            )
            self._tls_forced = False
            try:
                snapshot = await loop.run_in_executor(self._builder, self._build, inp)
                if snapshot is not None:
                    self._apply(snapshot)
            except Exception as exc:  # never lose what works because of a bug on a new config
                # A resolver's new certificate that this build was to bring in is still owed to the store.
                self._tls_forced = self._tls_forced or inp.tls_forced
                log.error(
                    "could not build the new configuration (%s: %s); keeping the previous one",
                    type(exc).__name__,
                    exc,
                )
                log.debug("the build failed", exc_info=True)

    def _build(self, inp: _BuildInput) -> _Snapshot | None:
        """In the build thread: merge, compile, build the certificate store. Touches no app state."""
        with _quiet_gc:
            return self._build_quietly(inp)

    def _build_quietly(self, inp: _BuildInput) -> _Snapshot | None:
        merged = merge(inp.configs)
        routes_changed = merged != inp.current
        tls_changed = inp.tls_forced or merged.tls != (inp.current_tls or TLSConfig())
        if not routes_changed and not tls_changed:
            return None
        snap = _Snapshot(merged)
        compiled = inp.previous
        if routes_changed and compiled is not None and inp.current is not None:
            # A Docker event that changes only what the providers saw (a container stopped that was never
            # routed): the tables stay, only the API's records are new; nothing to recompile or re-log.
            same = replace(merged, discovered=()) == replace(inp.current, discovered=())
            snap.reported_only = same
            routes_changed = not same
        if routes_changed:
            compiled = compile_config(
                merged,
                self.static.entry_points,
                inp.previous.balancers if inp.previous else None,
                ports=inp.ports,
                challenge=self._challenge if self._http_challenges else None,
                known_rules=inp.previous.rules if inp.previous else None,
                previous_middlewares=inp.previous.middlewares if inp.previous else None,
                logged=inp.previous.logged if inp.previous else frozenset(),
                internal=self.internal.handlers,
            )
            st = self.static  # TCP routers, beside the HTTPS routes just compiled:
            compiled.tcp = compile_tcp_beside(
                merged, st.entry_points, compiled, inp.previous, st.tcp_transport
            )
            snap.compiled = compiled
            # "certificate resolver X does not exist" (logger dockroute) once per appearance, as the compile's
            with logged_once(inp.previous.logged if inp.previous else frozenset(), "dockroute") as repeats:
                snap.wanted = wanted_certificates(merged, compiled, self.static.entry_points, self.resolvers)
            compiled.logged |= repeats.seen
            snap.transports = self.pool.build_transports(merged.servers_transports)
            snap.pool_keys = {
                up.key for bal in compiled.balancers.values() for up in getattr(bal, "servers", ())
            }
            snap.routed = routed_names(merged, compiled)
            snap.route_lines = route_changes(inp.routed, snap.routed)
        per_ep = compiled.tls_options if compiled is not None else {}
        # The store picks handshake options by host: a new host map needs a new store, as new options do.
        if tls_changed or inp.store is None or inp.store.entry_point_options != per_ep:
            snap.store, snap.file_certificates = build_store(
                merged.tls, inp.resolver_pairs, inp.store, self._default_pair, per_ep
            )
        return snap

    def _apply(self, snap: _Snapshot) -> None:
        """On the loop: swap references. Nothing here is proportional to more than a dict walk."""
        merged, compiled = snap.merged, snap.compiled
        if snap.store is not None:
            retired = snap.store.supersede(self.tls_store)
            self.tls_store = snap.store
            self.certificate_reports.files = snap.file_certificates
            if self.metrics is not None:
                self.metrics.set_certificates(self.certificate_reports.not_after_samples())
            self.current_tls = merged.tls
            closed = 0
            for srv in self.servers:
                srv.tls_store = snap.store
                if compiled is None and self.compiled is not None:
                    srv.set_tls_options(self.compiled.tls_options.get(srv.name, {}))
                if retired:
                    closed += srv.close_retired_connections()
            if closed:
                log.info("TLS options changed: %d connections made under the old ones are closed", closed)
        if compiled is None:
            if snap.reported_only and self.compiled is not None:
                self.current = merged
                self.internal.state = self._api_state(merged, self.compiled)
            return
        if snap.transports is not None:
            self.pool.set_transports(snap.transports)
        self.current = merged
        compiled.tcp.take_over(self.compiled.tcp if self.compiled else None)  # TCP health checks
        self.compiled = compiled
        for srv in self.servers:
            srv.handler.table = compiled.tables[srv.name]
            if srv.tls_handler is not None:
                srv.tls_handler.table = compiled.tls_tables[srv.name]
            srv.set_tls_options(compiled.tls_options[srv.name])
            srv.tcp_table = compiled.tcp.tables.get(srv.name)
        for name, resolver in self.resolvers.items():
            resolver.want(snap.wanted.get(name, []))
        kept, started = self.health.update(compiled.balancers, merged.services, merged.servers_transports)
        self.internal.state = self._api_state(merged, compiled)
        if self.metrics is not None:
            self.metrics.config_reloaded()
            # series of routers and services gone from the configuration are dropped after one more scrape
            self.metrics.set_configuration(merged.routers.keys(), (*merged.services, *self.internal.names))
        self.pool.retain(snap.pool_keys)
        self.udp.apply(compiled.udp)
        log.info(
            "configuration applied: %d routers, %d services%s%s%s%s",
            len(merged.routers) - len(compiled.errors),
            len(compiled.balancers),
            f", {len(compiled.errors)} routers left out" if compiled.errors else "",
            f"; TCP: {len(compiled.tcp.entry_points)} routers" if compiled.tcp and merged.tcp.routers else "",
            f"; UDP: {len(compiled.udp.entry_points)} routers" if compiled.udp and merged.udp.routers else "",
            f"; health checks: {kept} kept, {started} started" if kept or started else "",
        )
        if snap.routed is not None:
            self._routed = snap.routed
        for line in snap.route_lines:
            log.info("%s", line)

    def _api_state(self, merged: DynamicConfig, compiled: Compiled) -> ApiState | None:
        """What the API shows of this configuration: references to what was just applied, no copies."""
        if self.static.api is None:
            return None
        return ApiState(
            version=__version__,
            settings=self.static.api,
            entry_points=self.static.entry_points,
            addresses={
                srv.name: tuple(f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in srv.addresses)
                for srv in self.servers
            },
            config=merged,
            errors=compiled.errors,
            service_errors=compiled.service_errors,
            middleware_errors=compiled.middleware_errors,
            udp=compiled.udp,
            tcp=compiled.tcp,
            routed_on=compiled.entry_points,
            balancers=compiled.balancers,
            internal_services=self.internal.names,
            certificates=self.certificate_reports,
            applied_at=time.time(),
            providers=tuple(sorted(self.configs)),
        )

    def _certificates_changed(self) -> None:
        """A resolver stored a certificate: a new store is built (off the loop) with it."""
        self._tls_forced = True
        self._request_build()

    # -- lifecycle -------------------------------------------------------------------------------------

    async def start(self) -> None:
        for srv in self.servers:
            try:
                await srv.start()
            except OSError as exc:
                address = srv.handler.entry_point.address
                msg = f"dockroute: cannot listen on entry point {srv.name} ({address}): {exc}"
                raise SystemExit(msg) from exc
        await self.udp.start()
        self._start_providers()
        if self._file_loaded is not None:
            # The file is read in a thread: wait for it (bounded) so that the first configuration applied
            # is the file's, not an empty one that would answer 404 for a moment at every start.
            try:
                await asyncio.wait_for(self._file_loaded.wait(), timeout=FIRST_FILE_WAIT)
            except TimeoutError:
                log.warning("provider file: still reading after %ss; starting without it", FIRST_FILE_WAIT)
        self.publish("internal", self.configs["internal"])  # a first build even without providers
        for resolver in self.resolvers.values():
            self._tasks.append(asyncio.get_running_loop().create_task(resolver.run()))
        self._summary()

    def _start_providers(self) -> None:
        fp = self.static.file_provider
        self._file_loaded: asyncio.Event | None = None
        if fp is not None:
            provider = _FileProvider(filename=fp.filename, directory=fp.directory, watch=fp.watch)
            self._file_loaded = loaded = asyncio.Event()
            publish_file = self._publisher("file")

            def publish(cfg: DynamicConfig) -> None:
                publish_file(cfg)
                loaded.set()

            self._tasks.append(asyncio.get_running_loop().create_task(provider.run(publish)))
        dp = self.static.docker_provider
        self.docker = None
        if dp is not None:
            path = dp.endpoint.removeprefix("unix://")
            if dp.explicit or not dp.endpoint.startswith("unix://") or os.path.exists(path):
                self.docker = DockerProvider(dp)
                task = asyncio.get_running_loop().create_task(self.docker.run(self._publisher("docker")))
                self._tasks.append(task)
                self._docker_line = (
                    f"provider docker: {dp.endpoint}"
                    + (" (watching events)" if dp.watch else "")
                    + (
                        ""
                        if dp.exposed_by_default
                        else "; only containers with traefik.enable=true or dockroute.enable=true are routed"
                    )
                )
            else:
                self._docker_line = f"provider docker: off (no Docker socket at {path})"
        else:
            self._docker_line = "provider docker: off"
        self._start_kubernetes()
        sp = self.static.swarm_provider  # providers.swarm: routers <name>@swarm; off unless configured
        self.swarm = SwarmProvider(sp) if sp is not None else None
        if self.swarm is not None:
            self._tasks.append(asyncio.create_task(self.swarm.run(self._publisher("swarm"))))

    def _start_kubernetes(self) -> None:
        """``providers.kubernetesIngress``: routers ``<name>@kubernetes``, as Traefik names them."""
        ks = self.static.kubernetes_ingress
        self.kubernetes = KubernetesIngressProvider(ks) if ks is not None else None
        if self.kubernetes is not None:
            run = self.kubernetes.run(self._publisher("kubernetes"))
            self._tasks.append(asyncio.get_running_loop().create_task(run))

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
        if self.kubernetes is not None:
            log.info("%s", self.kubernetes.describe())
        if self.swarm is not None:
            log.info("%s", self.swarm.describe())
        for key in self.static.ignored:
            log.warning("static configuration %s is not supported yet and was ignored", key)
        for message in self.static.warnings:
            log.warning("static configuration %s", message)

    async def shutdown(self) -> None:
        # /ping answers terminatingStatusCode from now on, while the entry points still serve (Traefik)
        self.internal.terminate()
        grace = max((ep.grace_timeout for ep in self.static.entry_points), default=10.0)
        accept = max((ep.request_accept_grace_timeout for ep in self.static.entry_points), default=0.0)
        if accept:
            # lifeCycle.requestAcceptGraceTimeout: keep accepting while a load balancer in front notices.
            log.info("shutting down: still accepting requests for %ss", accept)
            await asyncio.sleep(accept)
        log.info("shutting down: waiting up to %ss for in-flight requests", grace)
        for srv in self.servers:
            srv.stop_accepting()
        self.udp.stop_accepting()
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(
            *(srv.shutdown(grace) for srv in self.servers), self.udp.shutdown(), return_exceptions=True
        )
        self.throttle.close()
        if self._build_task is not None:
            self._build_task.cancel()  # a build in the thread finishes on its own; its result is dropped
        self._builder.shutdown(wait=False, cancel_futures=True)
        await self.health.stop()
        self.pool.close()
        if self.access_log is not None:
            self.access_log.close()
        log.info("stopped")


def _tune_runtime() -> None:
    """uvloop when installed; a calmer cyclic GC (the request path makes few cycles); and a shorter GIL
    switch interval (0.5 ms, Python's is 5 ms): the loop shares the GIL with worker threads (compression,
    compiling a configuration, file reads), and neither should wait 5 ms for the other."""
    try:
        import uvloop  # noqa: PLC0415

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    gc.set_threshold(50_000, 50, 100)
    sys.setswitchinterval(0.0005)


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
    raise_open_files_limit()  # before any socket, and before the UDP session cap is taken from it
    _tune_runtime()
    try:
        return asyncio.run(_main(static))
    except SystemExit as exc:
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
            return 1
        raise
