"""The Kubernetes Ingress provider: list + watch the API, build the configuration, update Ingress status.

The client library is synchronous, so the API lives in threads, as the Docker provider's engine does: one
thread per watched kind (and namespace) lists, then watches from the list's ``resourceVersion`` with
bookmarks, keeping a store of plain records. A ``410 Gone`` (as an HTTP status or as an ERROR event) means
the version is too old: that thread lists again, nothing else happens. A dropped connection is watched
again from the last version seen, after a backoff with jitter; while the API cannot be reached the last
routes keep serving and one line says so. The asyncio side only coalesces wake-ups: a burst of events
(a Deployment rolling 20 pods) costs one rebuild, and building, comparing and the status calls run in an
executor; a configuration is published only when it changed, and only once every kind has been listed.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from discover.bursts import settle
from discover.kubernetes.builder import BuildResult, Cluster, build_ingress_config
from discover.kubernetes.client import RESOURCES, ApiError, Gone, KubeApi, Resource
from discover.kubernetes.records import (
    LoadBalancerIngress,
    ingress_class_from_api,
    ingress_from_api,
    secret_from_api,
    service_from_api,
    slice_from_api,
)
from discover.kubernetes.settings import KubernetesIngressSettings
from discover.model import DynamicConfig

__all__ = ["KubernetesIngressProvider"]

log = logging.getLogger("dockroute.kubernetes")

_CONVERT: dict[str, Callable[[Mapping[str, Any]], Any]] = {
    "ingresses": ingress_from_api,
    "ingressclasses": ingress_class_from_api,
    "services": service_from_api,
    "endpointslices": slice_from_api,
    "secrets": secret_from_api,
}
# A watch (or a list and its watch) ending sooner than this is retried after the backoff, not at once: a
# proxy that closes every stream, or a version expired again right after the list, never spins.
_QUICK = 1.0
# Secrets Helm keeps its releases in are never TLS certificates: left out of the list, as Traefik does.
_SECRET_SELECTOR = "owner!=helm"


def _cut(resp: Any) -> None:
    """Ends a watch another thread is reading: the socket is shut down, not closed (closing it waits for
    the reading thread's lock, and that thread waits for data that will not come)."""
    try:
        sock = getattr(getattr(resp, "connection", None), "sock", None)
        if sock is not None:
            sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _key(kind: str, obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    name = str(meta.get("name") or "")
    return name if kind == "ingressclasses" else f"{meta.get('namespace') or 'default'}/{name}"


class KubernetesIngressProvider:
    def __init__(
        self,
        settings: KubernetesIngressSettings,
        api_factory: Callable[[KubernetesIngressSettings], Any] = KubeApi,
        quiet: float = 0.05,
        max_wait: float = 1.0,
        backoff: tuple[float, float] = (0.25, 10.0),
        watch_timeout: int = 300,
    ) -> None:
        self.settings = settings
        self.api_factory = api_factory
        self.quiet = quiet
        self.max_wait = max_wait
        self.backoff = backoff
        self.watch_timeout = watch_timeout
        self.api: Any = None
        self.rebuilds = 0
        self.lists: dict[str, int] = {}  # kind → lists made (a relist after 410 counts)
        self.status_updates = 0
        self._stores: dict[str, dict[str, Any]] = {kind: {} for kind in _CONVERT}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._unsynced: set[tuple[str, str]] = set()
        self._down = False
        self._responses: dict[tuple[str, str], Any] = {}  # each watch thread's open response (to cut)
        self._last: DynamicConfig | None = None
        self._logged: set[tuple[int, str]] = set()
        self._patched: dict[str, tuple[tuple[LoadBalancerIngress, ...], str]] = {}
        self._last_build = 0.0
        self._refusals: set[tuple[str, str, str]] = set()  # 4xx answers said (kind, namespace, error)

    def describe(self) -> str:
        """The start line: what this provider watches."""
        s = self.settings
        return (
            f"provider kubernetes: Ingresses of class {s.ingress_class!r}"
            + (f" in namespaces {', '.join(s.namespaces)}" if s.namespaces else " in every namespace")
            + (f" (endpoint {s.endpoint})" if s.endpoint else "")
            + (", status.loadBalancer from ingressEndpoint" if s.ingress_endpoint else "")
        )

    # -- which watches ------------------------------------------------------------------------------

    def _watches(self) -> list[tuple[Resource, str]]:
        namespaces = self.settings.namespaces or ("",)
        out = [
            (RESOURCES[kind], ns)
            for kind in ("ingresses", "services", "endpointslices", "secrets")
            for ns in namespaces
        ]
        if self.settings.lookup_classes:
            out.append((RESOURCES["ingressclasses"], ""))
        return out

    def _selector(self, kind: str) -> str:
        if kind == "ingresses":
            return self.settings.label_selector
        return _SECRET_SELECTOR if kind == "secrets" else ""

    # -- threads ------------------------------------------------------------------------------------

    def _watch_thread(self, res: Resource, namespace: str) -> None:
        """List, then watch from the list's version; 410 → list again; a drop → watch again after a
        backoff (from the last version seen: a 410 then says whether a list is needed)."""
        version: str | None = None
        delay = self.backoff[0]
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                if version is None:
                    version = self._relist(res, namespace)
                for event in self.api.watch(
                    res,
                    namespace,
                    version,
                    self._selector(res.kind),
                    timeout=self.watch_timeout,
                    opened=lambda resp: self._responses.__setitem__((res.kind, namespace), resp),
                ):
                    version = self._apply(res.kind, event) or version
                    self._up()
                    delay = self.backoff[0]
                    if self._stop.is_set():
                        return
                if time.monotonic() - started > _QUICK:
                    continue  # the server ended the watch (its timeout): watch again from the same version
                # ended at once (a proxy closing streams, a server in trouble): wait as after an error
            except Gone:
                log.info(
                    "provider kubernetes: %s: resourceVersion %s is gone (410); listing again",
                    res.kind,
                    version,
                )
                version = None
                if time.monotonic() - started > _QUICK:
                    continue  # an expired version after a while of watching: list at once
            except ApiError as exc:
                if self._stop.is_set():
                    return
                if 400 <= exc.status < 500:  # the API answers, and refuses: no "cannot reach" here
                    self._refused(res, namespace, exc)
                else:
                    self._went_down(res, exc)
            except Exception as exc:  # the client raises many types: all mean "not reachable now"
                if self._stop.is_set():
                    return
                self._went_down(res, exc)
            self._stop.wait(random.uniform(delay / 2, delay))  # backoff with full jitter
            delay = min(delay * 2, self.backoff[1])

    def _relist(self, res: Resource, namespace: str) -> str:
        listed = self.api.list(res, namespace, self._selector(res.kind))
        convert = _CONVERT[res.kind]
        items = {_key(res.kind, obj): convert(obj) for obj in listed.get("items") or ()}
        with self._lock:
            store = self._stores[res.kind]
            for key in [k for k in store if not namespace or k.startswith(f"{namespace}/")]:
                del store[key]
            store.update(items)
            self.lists[res.kind] = self.lists.get(res.kind, 0) + 1
        self._unsynced.discard((res.kind, namespace))
        self._refusals = {r for r in self._refusals if r[:2] != (res.kind, namespace)}
        self._up()
        self._trigger()
        return str((listed.get("metadata") or {}).get("resourceVersion") or "")

    def _apply(self, kind: str, event: Mapping[str, Any]) -> str | None:
        """One watch event into the store; the version it carries (bookmarks too)."""
        obj = event.get("object") or {}
        version = (obj.get("metadata") or {}).get("resourceVersion")
        kind_of_event = event.get("type")
        if kind_of_event in ("ADDED", "MODIFIED", "DELETED"):
            key = _key(kind, obj)
            with self._lock:
                if kind_of_event == "DELETED":
                    self._stores[kind].pop(key, None)
                else:
                    self._stores[kind][key] = _CONVERT[kind](obj)
            self._trigger()
        return str(version) if version else None

    def _went_down(self, res: Resource, exc: Exception) -> None:
        with self._lock:
            first, self._down = not self._down, True
        if first:
            log.warning(
                "provider kubernetes: cannot reach the API at %s (%s: %s); retrying, the last routes keep "
                "serving",
                getattr(self.api, "host", "?"),
                res.kind,
                exc,
            )

    def _refused(self, res: Resource, namespace: str, exc: ApiError) -> None:
        """A 4xx answer to a list or watch (a bad selector, missing RBAC, credentials refused): an ERROR
        with the status and the API's reason, once while it holds; retried at the backoff's pace (an RBAC
        rule may be added meanwhile)."""
        said = (res.kind, namespace, str(exc))
        if said in self._refusals:
            return
        self._refusals.add(said)
        hint = {
            401: "the credentials are not accepted (token, client certificate)",
            403: f"add the RBAC rule: list and watch on {res.kind}"
            + (f" in namespace {namespace}" if namespace else " (cluster-wide)"),
            400: "check providers.kubernetesIngress.labelSelector" if res.kind == "ingresses" else "",
        }.get(exc.status, "")
        log.error(
            "provider kubernetes: the API at %s refuses to list/watch %s%s: %s%s; retrying",
            getattr(self.api, "host", "?"),
            res.kind,
            f" in namespace {namespace}" if namespace else "",
            exc,
            f": {hint}" if hint else "",
        )

    def _up(self) -> None:
        if self._down:
            with self._lock:
                was, self._down = self._down, False
            if was:
                log.info("provider kubernetes: the API at %s answers again", getattr(self.api, "host", "?"))

    def _trigger(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            try:
                loop.call_soon_threadsafe(wake.set)
            except RuntimeError:  # the loop closed during shutdown
                pass

    # -- asyncio side -------------------------------------------------------------------------------

    async def run(self, publish: Callable[[DynamicConfig], None]) -> None:
        self._loop = loop = asyncio.get_running_loop()
        self._wake = wake = asyncio.Event()
        self.api = await self._connect(loop)
        log.info(
            "provider kubernetes: watching Ingresses of class %r through %s",
            self.settings.ingress_class,
            getattr(self.api, "source", "the API"),
        )
        watches = self._watches()
        self._unsynced = {(res.kind, ns) for res, ns in watches}
        for res, ns in watches:
            name = f"kube-{res.kind}" + (f"-{ns}" if ns else "")
            threading.Thread(target=self._watch_thread, args=(res, ns), name=name, daemon=True).start()
        try:
            while True:
                await wake.wait()
                await self._settle(loop, wake)
                if self._unsynced:
                    continue  # publish only once every kind was listed: never routes without services
                await self._rebuild(loop, publish)
        finally:
            self._stop.set()
            for resp in list(self._responses.values()):
                _cut(resp)

    async def _connect(self, loop: asyncio.AbstractEventLoop) -> Any:
        """The API client; credentials that cannot be loaded (no kubeconfig, a broken one, not in a pod)
        are said once, naming the problem, and tried again every ``backoff[1]`` seconds."""
        said = False
        while True:
            try:
                return await loop.run_in_executor(None, self.api_factory, self.settings)
            except Exception as exc:
                if not said:
                    log.error(
                        "provider kubernetes: cannot load the API credentials (%s: %s); set endpoint and "
                        "token, KUBECONFIG, or run in a pod; retrying every %gs",
                        type(exc).__name__,
                        exc,
                        self.backoff[1],
                    )
                    said = True
            await asyncio.sleep(self.backoff[1])

    async def _settle(self, loop: asyncio.AbstractEventLoop, wake: asyncio.Event) -> None:
        """A burst of events costs one rebuild: wait until `quiet` passes without one (at most
        `max_wait`), and no sooner than ``throttleDuration`` after the last rebuild."""
        await settle(wake, self.quiet, self.max_wait)
        throttle = self._last_build + self.settings.throttle_duration - loop.time()
        if throttle > 0:
            await asyncio.sleep(throttle)
            wake.clear()

    async def _rebuild(
        self, loop: asyncio.AbstractEventLoop, publish: Callable[[DynamicConfig], None]
    ) -> None:
        """Build, publish, then patch the statuses in a second executor call: routing never waits for
        the API's answers to the PATCHes (one per Ingress whose status changed)."""
        t0 = time.monotonic()
        self._last_build = loop.time()
        cfg, built = await loop.run_in_executor(None, self._build)
        self.rebuilds += 1
        log.debug(
            "provider kubernetes: rebuilt in %.1f ms (rebuild %d)",
            (time.monotonic() - t0) * 1000,
            self.rebuilds,
        )
        if cfg is not None:
            self._last = cfg
            publish(cfg)
        if built is not None and built[1].statuses:
            await loop.run_in_executor(None, self._update_statuses, *built)

    def _build(self) -> tuple[DynamicConfig | None, tuple[Cluster, BuildResult] | None]:
        """In a worker thread: build from a copy of the stores and log what is new; the new configuration
        (None when it is the last one again, or the build failed), and what was built (for the statuses)."""
        with self._lock:
            stores = {kind: dict(store) for kind, store in self._stores.items()}
        cluster = Cluster(
            ingresses=stores["ingresses"],
            classes=stores["ingressclasses"],
            services=stores["services"],
            slices=stores["endpointslices"],
            secrets=stores["secrets"],
        )
        try:
            result = build_ingress_config(cluster, self.settings)
        except Exception:
            log.exception("provider kubernetes: could not build a configuration; keeping the last routes")
            return None, None
        self._report(result)
        return (result.config if result.config != self._last else None), (cluster, result)

    def _report(self, result: BuildResult) -> None:
        """Each line once while it holds: said when it first appears, forgotten when it is gone."""
        lines = set(result.lines)
        for level, line in result.lines:
            if (level, line) not in self._logged:
                log.log(level, "provider kubernetes: %s", line)
        self._logged = lines

    def _update_statuses(self, cluster: Cluster, result: BuildResult) -> None:
        for key, status in result.statuses.items():
            ing = cluster.ingresses[key]
            if self._patched.get(key) == (status, ing.resource_version):
                continue  # patched already; the watch has not brought the new version yet
            try:
                self.api.patch_ingress_status(ing.namespace, ing.name, [s.to_api() for s in status])
            except Exception as exc:
                log.error("provider kubernetes: ingress %s: cannot update its status (%s)", key, exc)
                continue
            self._patched[key] = (status, ing.resource_version)
            self.status_updates += 1
            log.info("provider kubernetes: ingress %s: status.loadBalancer updated", key)
