"""``mirroring`` services: every request goes to the main service; copies go to mirrors, answers dropped.

Traefik's behaviour, kept:

- which requests a mirror gets is counted, not drawn: request ``n`` of the service (counted from 1) goes
  to a mirror that has had ``count`` copies when ``count * 100 < n * percent`` (50 % → requests 1, 3,
  5...; 200 requests → exactly 100 copies);
- the copies leave after the main service's answer is over, one mirror after the other, with the method,
  path, query and headers the main service got (after the router's middlewares); none is sent when the
  request was cancelled meanwhile (the client went away);
- ``mirrorBody`` (default true) buffers the request body so the mirrors get it too; false sends them the
  request without a body (``Content-Length: 0``). A body over ``maxBodySize`` bytes (default -1: no
  limit) goes to the main service whole and the request is not mirrored;
- a mirror's answer is read and dropped; a dead, failing or hanging mirror changes nothing for the client.

Dockroute's own bounds: the copies of a mirroring service run in background tasks, at most
:data:`MAX_PENDING` at a time; a copy that would exceed it is dropped (a warning names the service, once
per overflow), so a mirror that hangs cannot grow memory or tasks without end. The copies still running
at shutdown are cancelled (:func:`cancel_copies`). A WebSocket upgrade is not mirrored (a tunnel is not
a request to copy).

A mirroring service is a *target* (:mod:`router.targets`), not a balancer: a router's requests reach it, it
hands them to its main service's target. A route to another service never meets this module.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any

from discover.model import Mirroring, Service
from router.exchange import Exchange, Headers, Sink
from router.replies import Sent
from router.rules import RequestInfo
from router.targets import MiddlewareTarget

if TYPE_CHECKING:
    from router.proxy import EntryPointHandler

__all__ = ["MAX_PENDING", "MirroringTarget", "Mirrors", "cancel_copies", "check_mirroring"]

log = logging.getLogger("dockroute.mirroring")
_compile_log = logging.getLogger("dockroute.router")  # the compile's: a line is not repeated per reload

MAX_PENDING = 256  # copies of one mirroring service in flight at once; more are dropped

_TASKS: set[asyncio.Task[None]] = (
    set()
)  # every copy in flight: held (asyncio keeps weak ones) and cancellable


def cancel_copies() -> None:
    """Cancel the copies still in flight (shutdown): nobody waits for a mirror's answer."""
    for task in list(_TASKS):
        task.cancel()


class _Mirror:
    __slots__ = ("name", "percent", "count")

    def __init__(self, name: str, percent: int) -> None:
        self.name = name
        self.percent = percent
        self.count = 0


class Mirrors:
    """The state of one mirroring service, shared by every router using it (as Traefik's one handler per
    service): the request counter, each mirror's copies so far, the copies in flight."""

    def __init__(self, service: str, spec: Mirroring) -> None:
        self.service = service
        self.spec = spec
        self.mirrors = tuple(_Mirror(m.name, m.percent) for m in spec.mirrors if m.percent > 0)
        self.total = 0
        self.pending = 0
        self.dropping = False

    def active(self) -> list[str] | None:
        """The mirrors this request is copied to (Traefik's ``getActiveMirrors``), or None: none."""
        self.total += 1
        total = self.total
        out: list[str] | None = None
        for m in self.mirrors:
            if m.count * 100 < total * m.percent:
                m.count += 1
                if out is None:
                    out = []
                out.append(m.name)
        return out

    def launch(self, copies: Callable[[], Awaitable[None]]) -> None:
        """Run ``copies`` in the background unless :data:`MAX_PENDING` are already in flight."""
        if self.pending >= MAX_PENDING:
            if not self.dropping:
                self.dropping = True
                log.warning(
                    "service %s: %d mirrored requests still in flight (a mirror is slow or hangs); "
                    "copies are dropped until they finish",
                    self.service,
                    MAX_PENDING,
                )
            return
        self.dropping = False
        self.pending += 1
        task = asyncio.get_running_loop().create_task(copies())
        _TASKS.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self.pending -= 1
        _TASKS.discard(task)


class MirroringTarget:
    """A router's target when its service is a mirroring one: ``main`` and each mirror are the targets of
    those services (built by :class:`router.chains.Chains`)."""

    __slots__ = ("router", "service", "main", "mirrors", "state")

    def __init__(
        self, router: str, service: str, main: Any, mirrors: Mapping[str, Any], state: Mirrors
    ) -> None:
        self.router = router
        self.service = service
        self.main = main
        self.mirrors = mirrors  # mirror service name → its target
        self.state = state

    def handle(
        self,
        ep: EntryPointHandler,
        request: Any,
        transport: Any,
        msg: Any,
        info: RequestInfo,
        host_header: str,
        close: bool,
    ) -> Awaitable[Sent]:
        """A router without middlewares: a request no mirror gets goes straight to the main service; one
        to copy becomes an exchange (its body may have to be buffered, its head is copied)."""
        names = self.state.active()
        if names is None:
            return self.main.handle(ep, request, transport, msg, info, host_header, close)
        chain = MiddlewareTarget(self.router, partial(self._mirrored, names), self)
        return chain.handle(ep, request, transport, msg, info, host_header, close)

    async def serve(self, ex: Exchange) -> None:
        """The end of a middleware chain (or the main service of another mirroring service)."""
        names = self.state.active()
        if names is None:
            await self.main.serve(ex)
        else:
            await self._mirrored(names, ex)

    async def _mirrored(self, names: list[str], ex: Exchange) -> None:
        spec = self.state.spec
        msg = ex.msg
        if msg.upgrade:
            await self.main.serve(ex)
            return
        if spec.mirror_body and ex.body is None and _has_body(msg):
            limit = spec.max_body_size
            length = msg.headers.get("Content-Length")
            if limit >= 0 and length is not None and length.isdigit() and int(length) > limit:
                log.debug("service %s: body over maxBodySize, not mirrored", self.service)
                await self.main.serve(ex)
                return
            body = await ex.read_body()  # the whole body, as Traefik buffers it (chunked: measured here)
            if limit >= 0 and body is not None and len(body) > limit:
                log.debug("service %s: body over maxBodySize, not mirrored", self.service)
                await self.main.serve(ex)
                return
        await self.main.serve(ex)
        copy = _Copy(ex, spec.mirror_body)
        self.state.launch(partial(self._copies, names, copy))

    async def _copies(self, names: list[str], copy: _Copy) -> None:
        """Send the copy to each mirror in turn, answers dropped; a failing mirror is only logged (debug)."""
        for name in names:
            target = self.mirrors.get(name)
            if target is None:
                continue
            ex = copy.exchange(self.router)
            try:
                await target.serve(ex)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a mirror never fails anything but its own copy
                log.debug("service %s: mirror %s failed: %s", self.service, name, exc)
            finally:
                ex.release()  # its sinks hold it: freed now, not by the (tuned down) cyclic GC


def _has_body(msg: Any) -> bool:
    if msg.chunked:
        return True
    length = msg.headers.get("Content-Length")
    return length is not None and length != "0"


class _Copy:
    """What a mirror is sent: the request as the main service got it (method, path, query, the
    middlewares' header edits, the client's headers and address) and the body, or none."""

    __slots__ = ("ep", "msg", "info", "host_header", "method", "path", "raw_query", "edits", "body")

    def __init__(self, ex: Exchange, with_body: bool) -> None:
        self.ep = ex.ep
        self.msg = ex.msg
        self.info = ex.info
        self.host_header = ex.host_header
        self.method = ex.method
        self.path = ex.path
        self.raw_query = ex.raw_query
        self.edits = dict(ex.header_edits)
        self.body = (ex.body or b"") if with_body else b""

    def exchange(self, router: str) -> Exchange:
        """A fresh exchange for one mirror: its answer goes to a sink that drops it, never to the client."""
        ex = Exchange(self.ep, None, _NO_CLIENT, self.msg, self.info, self.host_header, False, router)
        ex.method, ex.path, ex.raw_query = self.method, self.path, self.raw_query
        ex.header_edits = dict(self.edits)
        ex.body = self.body
        ex.sink = _Dropped()
        return ex


class _Dropped(Sink):
    """Where a mirror's answer goes: read to the end (so its connection can be reused), then forgotten."""

    async def start(self, status: int, headers: Headers, reason: str = "") -> None:
        self.started = True

    async def write(self, data: bytes) -> None:
        return None

    async def end(self) -> None:
        return None


class _NoClient:
    """The "client connection" of a mirrored copy: there is none; writes, closes and aborts do nothing."""

    __slots__ = ()

    def is_closing(self) -> bool:
        return False

    def write(self, data: bytes) -> None:
        return None

    def close(self) -> None:
        return None

    def abort(self) -> None:
        return None

    def get_write_buffer_size(self) -> int:
        return 0


_NO_CLIENT = _NoClient()


def check_mirroring(
    services: Mapping[str, Service], usable: Callable[[str], bool], errors: dict[str, str]
) -> None:
    """Check every mirroring service once: its main service and mirrors exist and are usable (``usable``
    says so for the others: a built balancer, static files), no cycle through other mirroring services.
    One ERROR line names each one left out, and ``errors`` says why (the API shows it)."""
    state: dict[str, bool] = {}
    for name, svc in services.items():
        if svc.mirroring is not None:
            _check(name, services, usable, errors, state, [])


def _check(
    name: str,
    services: Mapping[str, Service],
    usable: Callable[[str], bool],
    errors: dict[str, str],
    state: dict[str, bool],
    resolving: list[str],
) -> bool:
    """Whether mirroring service ``name`` can be served (memoised in ``state``), depth first."""
    if name in state:
        return state[name]
    spec = services[name].mirroring
    assert spec is not None
    resolving.append(name)
    why = None
    for role, child in (("service", spec.service), *(("mirror", m.name) for m in spec.mirrors)):
        svc = services.get(child)
        if svc is not None and svc.mirroring is not None:
            if child in resolving:
                cycle = " -> ".join([*resolving[resolving.index(child) :], child])
                why = f"mirroring services form a cycle: {cycle}"
            elif not _check(child, services, usable, errors, state, resolving):
                why = f"its {role} {child} is left out"
        elif svc is None:
            why = f"its {role} {child} does not exist"
        elif role == "mirror" and svc.static is not None:
            why = f"its mirror {child} is a static service (only a service with servers can be a mirror)"
        elif not usable(child):
            why = f"its {role} {child} is not usable (see the error logged for it)"
        if why is not None:
            break
    resolving.pop()
    state[name] = why is None
    if why is not None and name not in errors:
        errors[name] = why
        _compile_log.error("service %s is left out: %s", name, why)
    return why is None
