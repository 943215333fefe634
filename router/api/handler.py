"""``api@internal``: the exchange handler serving Traefik's API paths (and the dashboard's, handed to the
dashboard handler), reading the latest :class:`~router.api.state.ApiState`.

Off the hot path: nothing is computed until a request asks. The configuration's JSON (every router,
service and middleware, :class:`~router.api.render.Runtime`) is built on the first request after a new
state and reused until the state object changes; a request then only filters, cuts its page, reads the
servers' health and encodes. Measured for 1000 routers and 1000 services (``tests/unit/test_api_shapes``
prints it): building the view is a few milliseconds, once per configuration; a default page of
``/api/http/routers`` well under a millisecond after that.
"""

from __future__ import annotations

import asyncio
import gc
import resource
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import unquote

from router.api import query as q
from router.api.render import Runtime, encode
from router.api.report import certificates, discovery, entry_point_json, overview, version
from router.api.state import ApiSource, ApiState
from router.api.tcp import LISTS as TCP_LISTS
from router.api.tcp import TCPView
from router.api.udp import LISTS as UDP_LISTS
from router.api.udp import UDPView
from router.exchange import Exchange, Handler, answer

__all__ = ["DEFAULT_FEATURES", "api_handler"]

JSON = "application/json"
# Traefik's overview "features" when the app says nothing: no tracing, no metrics, no access log
DEFAULT_FEATURES: Mapping[str, Any] = {"tracing": "", "metrics": "", "accessLog": False}
# list path → (kind in the Runtime, how items are kept by a criterion, Traefik's not-found noun)
_LISTS: dict[str, tuple[str, Callable[..., bool], str]] = {
    "http/routers": ("routers", q.keep_router, "router"),
    "http/services": ("services", q.keep_named, "service"),
    "http/middlewares": ("middlewares", q.keep_named, "middleware"),
}
# the paths of Traefik's API router that dockroute serves: fixed ones, and lists with a ``/{name}`` each
_NAMED = frozenset({*_LISTS, *TCP_LISTS, *UDP_LISTS, "entrypoints", "certificates"})
_FIXED = frozenset({*_NAMED, "rawdata", "overview", "version", "discovery"})
NOT_FOUND = b"404 page not found\n"  # Go's http.NotFound, what gorilla/mux answers for an unknown path


async def reply(ex: Exchange, status: int, value: Any, headers: tuple[tuple[str, str], ...] = ()) -> None:
    """``value`` as JSON (bytes: already encoded), ended by a newline as Go's encoder ends it."""
    data = value if isinstance(value, bytes) else encode(value)
    await answer(ex, status, data + b"\n", headers, content_type=JSON)


async def error(ex: Exchange, status: int, message: str) -> None:
    """Traefik's ``writeError``: ``{"message": ...}``."""
    await reply(ex, status, {"message": message})


async def not_found(ex: Exchange) -> None:
    """A path Traefik's API router does not know: Go's ``http.NotFound``, plain text."""
    headers = (("X-Content-Type-Options", "nosniff"),)
    await answer(ex, 404, NOT_FOUND, headers, content_type="text/plain; charset=utf-8")


def known_path(rest: str, debug: bool) -> bool:
    """Whether ``rest`` (the path under ``api.basePath``) is one of the API's routes."""
    if rest == "/debug/vars":
        return debug
    if not rest.startswith("/api/"):
        return False
    sub = rest[len("/api/") :]
    head, _, name = sub.rpartition("/")
    return sub in _FIXED or (head in _NAMED and name != "")


def build_view(state: ApiState) -> Runtime:
    """Everything the API serves from one state that does not change with server health, built and
    encoded at once (in a worker thread): the routers', services' and middlewares' JSON, rawdata's
    routers and middlewares, and ``/api/discovery``'s whole document."""
    runtime = Runtime(state)
    runtime.udp = UDPView(state.config.udp, state.udp)  # type: ignore[attr-defined]
    runtime.tcp = TCPView(state.config.tcp, state.tcp)  # type: ignore[attr-defined]
    runtime.documents["discovery"] = encode(discovery(runtime))
    return runtime


class ApiHandler:
    """The handler's state: the source of snapshots, the last view built and the dashboard's handler."""

    def __init__(
        self, source: ApiSource, dashboard: Handler | None, features: Mapping[str, Any] | None
    ) -> None:
        self.source = source
        self.dashboard = dashboard
        self.features = dict(features if features is not None else DEFAULT_FEATURES)
        self.started = time.time()
        self._last: tuple[ApiState, Runtime] | None = None
        self._building: tuple[ApiState, asyncio.Future[Runtime]] | None = None

    async def runtime(self, state: ApiState) -> Runtime:
        """The view of ``state``, built on the first request that needs it and kept for the next ones.
        It is built (and its JSON encoded) in a worker thread: a few milliseconds of Python per thousand
        routers that the event loop, switching with it every half millisecond, never waits for at once;
        requests arriving meanwhile wait for the same build."""
        last = self._last
        if last is not None and last[0] is state:
            return last[1]
        building = self._building
        if building is None or building[0] is not state:
            future = asyncio.ensure_future(asyncio.to_thread(build_view, state))
            building = self._building = (state, future)
        try:
            # shielded: a client going away must not cancel the build the other requests wait for
            runtime = await asyncio.shield(building[1])
        finally:
            if self._building is building and building[1].done():
                self._building = None  # built (kept below), or failed: the next request tries again
        self._last = (state, runtime)
        return runtime

    async def __call__(self, ex: Exchange) -> None:
        """Route by path as Traefik's API router does: everything under ``api.basePath``."""
        state = self.source()
        base = state.settings.base_path.rstrip("/") if state is not None else ""
        path = ex.path
        if base and not (path == base or path.startswith(base + "/")):
            await not_found(ex)
            return
        rest = path[len(base) :]
        if rest == "/dashboard" or rest.startswith("/dashboard/"):
            if self.dashboard is not None:
                await self.dashboard(ex)
            else:
                await not_found(ex)
            return
        if ex.method != "GET":  # gorilla/mux: 405 for a path it routes (GET only), 404 for any other
            debug = state is not None and state.settings.debug
            if known_path(rest, debug):
                await answer(ex, 405, b"", content_type=None)
            else:
                await not_found(ex)
            return
        if state is None:  # before the first configuration: Traefik's empty runtime
            await error(ex, 503, "no configuration applied yet")
            return
        if rest.startswith("/api/"):
            await self.api(ex, state, rest[len("/api/") :], q.parse_query(ex.raw_query))
        elif rest == "/debug/vars" and state.settings.debug:
            await reply(ex, 200, debug_vars(self.started))
        else:
            await not_found(ex)

    async def api(self, ex: Exchange, state: ApiState, sub: str, query: q.Query) -> None:
        """``/api/<sub>``."""
        if sub in _LISTS:
            await self.listing(ex, await self.runtime(state), sub, query)
        elif sub.count("/") == 2 and sub.rpartition("/")[0] in _LISTS and not sub.endswith("/"):
            await self.detail(ex, await self.runtime(state), *sub.rsplit("/", 1))
        elif sub == "entrypoints":
            items = sorted((entry_point_json(ep) for ep in state.entry_points), key=lambda e: e["name"])
            await self.paged(ex, items, query)
        elif sub.startswith("entrypoints/") and sub.count("/") == 1 and not sub.endswith("/"):
            name = unquote(sub.partition("/")[2])
            found = [ep for ep in state.entry_points if ep.name == name]
            if found:
                await reply(ex, 200, entry_point_json(found[0]))
            else:
                await error(ex, 404, f"entry point not found: {name}")
        elif sub == "overview":
            await reply(ex, 200, overview(await self.runtime(state), certificates(state), self.features))
        elif sub == "rawdata":
            await reply(ex, 200, rawdata(await self.runtime(state)))
        elif sub == "version":
            await reply(ex, 200, version(state, self.started))
        elif sub == "certificates":
            items = certificates(state, query=query)
            c = q.Criterion.of(query)
            if c is not None:
                items = [
                    i for i in items if c.with_status(i["status"]) and c.search_in(*i["sans"], i["issuer"])
                ]
            await self.paged(ex, items, query)
        elif sub.startswith("certificates/") and sub.count("/") == 1 and not sub.endswith("/"):
            # Traefik's id is the certificate's SHA-256 fingerprint, which dockroute's reports do not carry
            await error(ex, 404, f"certificate not found: {unquote(sub.partition('/')[2])}")
        elif sub == "discovery":
            await reply(ex, 200, (await self.runtime(state)).documents["discovery"])
        elif sub.partition("/")[0] in ("udp", "tcp") and _layer4_path(sub):
            view = getattr(await self.runtime(state), sub.partition("/")[0])
            await self.layer4(ex, view, UDP_LISTS if sub.startswith("udp") else TCP_LISTS, sub, query)
        else:
            await not_found(ex)

    async def listing(self, ex: Exchange, runtime: Runtime, sub: str, query: q.Query) -> None:
        kind, keep, _ = _LISTS[sub]
        criterion = q.Criterion.of(query)
        items = [i for i in getattr(runtime, kind) if keep(i, criterion)]
        if query.get("sortBy") or query.get("direction"):
            items = q.sort_items(items, query, kind)
        try:
            shown, next_page = q.page(items, query)
        except q.PageError as exc:
            await error(ex, 400, str(exc))
            return
        body = runtime.encoded_list(kind, shown, time.monotonic())  # health of this page only
        await reply(ex, 200, body, ((q.NEXT_PAGE_HEADER, str(next_page)),))

    async def detail(self, ex: Exchange, runtime: Runtime, sub: str, raw_name: str) -> None:
        kind, _, noun = _LISTS[sub]
        name = unquote(raw_name)
        item = runtime.by_name[kind].get(name)
        if item is None:
            await error(ex, 404, f"{noun} not found: {name}")
            return
        await reply(ex, 200, runtime.encoded(kind, name, item, time.monotonic()))

    async def layer4(
        self, ex: Exchange, view: UDPView | TCPView, lists: Mapping[str, str], sub: str, query: q.Query
    ) -> None:
        """``/api/udp/*`` and ``/api/tcp/*``: a list, or one of its items by name."""
        if sub in lists:
            await self.paged(ex, view.listing(sub, query), query)
            return
        path, _, raw_name = sub.rpartition("/")
        name = unquote(raw_name)
        item = view.by_name[path].get(name)
        if item is None:
            await error(ex, 404, f"{lists[path]} not found: {name}")
        else:
            await reply(ex, 200, view.live(path, item))

    async def paged(self, ex: Exchange, items: list[Any], query: q.Query) -> None:
        try:
            shown, next_page = q.page(items, query)
        except q.PageError as exc:
            await error(ex, 400, str(exc))
            return
        await reply(ex, 200, list(shown), ((q.NEXT_PAGE_HEADER, str(next_page)),))


def rawdata(runtime: Runtime) -> bytes:
    """``/api/rawdata``: Traefik's ``RunTimeRepresentation`` (empty kinds left out), from the cached
    encodings of its items."""
    now = time.monotonic()
    parts = [
        b'"%s":%s' % (kind.encode(), runtime.encoded_map(kind, now))
        for kind in ("routers", "middlewares", "services")
        if getattr(runtime, f"raw_{kind}")
    ]
    layer4 = {**runtime.tcp.rawdata(), **runtime.udp.rawdata()}  # type: ignore[attr-defined]
    parts += [b'"%s":%s' % (kind.encode(), encode(value)) for kind, value in layer4.items()]
    return b"{%s}" % b",".join(parts)


def _layer4_path(sub: str) -> bool:
    """``udp/routers``-like lists, or one item of them (``tcp/routers/<name>``)."""
    lists = {*UDP_LISTS, *TCP_LISTS}
    return sub in lists or (sub.count("/") == 2 and sub.rpartition("/")[0] in lists and not sub.endswith("/"))


def debug_vars(started: float) -> dict[str, Any]:
    """``/debug/vars`` (``api.debug``), in the spirit of Go's expvar: the command line and the process's
    memory and collector figures (no blocking call: getrusage and the collector's counters)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "cmdline": list(sys.argv),
        "uptimeSeconds": round(time.time() - started, 3),
        "maxRSSKiB": usage.ru_maxrss,
        "gc": {"counts": list(gc.get_count()), "collections": [s["collections"] for s in gc.get_stats()]},
        "threads": threading.active_count(),
    }


def api_handler(
    source: ApiSource, dashboard: Handler | None = None, *, features: Mapping[str, Any] | None = None
) -> Handler:
    """The handler of ``api@internal``: ``/api/...`` from ``source()`` (the latest state, ``None``
    before the first configuration), ``<basePath>dashboard/...`` handed to ``dashboard`` when given
    (404 otherwise), ``/debug/vars`` with ``api.debug``. ``features`` is the overview's Traefik
    ``features`` object (``tracing``, ``metrics``: ``"Prometheus"`` or ``""``, ``accessLog``), which
    the static configuration decides."""
    return ApiHandler(source, dashboard, features)
