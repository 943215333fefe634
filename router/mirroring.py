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

Dockroute's own bounds, per mirroring service: its copies run in background tasks, at most
:data:`MAX_PENDING` at a time and holding at most :data:`MAX_PENDING_BYTES` of request bodies; a copy that
would exceed either is dropped (one warning per episode names the service, and one line says how many
were dropped once the copies in flight fell back to half the bound). That accounting (:class:`InFlight`) is
carried over reloads by service name, so copies still waiting on a hanging mirror count against the new
configuration's bound too. Each copy ends after :data:`COPY_DEADLINE` seconds (or the mirror's
``responseHeaderTimeout`` when longer), so a mirror that hangs holds nothing for ever. A WebSocket upgrade
is not mirrored (a tunnel is not a request to copy).

A mirroring service is a *target* (:mod:`router.targets`), not a balancer: a router's requests reach it, it
hands them to its main service's target. A route to another service never meets this module.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any

from discover.model import Mirroring, Service, cycle_message, service_children
from router.exchange import Exchange, Headers, Sink
from router.replies import Sent
from router.rules import RequestInfo
from router.targets import MiddlewareTarget

if TYPE_CHECKING:
    from router.proxy import EntryPointHandler

__all__ = [
    "COPY_DEADLINE",
    "MAX_PENDING",
    "MAX_PENDING_BYTES",
    "InFlight",
    "MirroringTarget",
    "Mirrors",
    "check_mirroring",
]

log = logging.getLogger("dockroute.mirroring")
_compile_log = logging.getLogger("dockroute.router")  # the compile's: a line is not repeated per reload

MAX_PENDING = 256  # copies of one mirroring service in flight at once; more are dropped
MAX_PENDING_BYTES = 64 << 20  # bytes of request bodies those copies may hold; more are dropped
COPY_DEADLINE = 30.0  # seconds a copy may take at one mirror (its longer responseHeaderTimeout wins)


class InFlight:
    """The copies of one mirroring service in flight: how many, the bytes of bodies they hold, their tasks
    (held: asyncio keeps only weak references). One per service name, carried over reloads
    (:meth:`router.chains.Chains.mirroring`)."""

    __slots__ = ("service", "count", "bytes", "tasks", "dropped", "dropping")

    def __init__(self, service: str) -> None:
        self.service = service
        self.count = 0
        self.bytes = 0
        self.tasks: dict[asyncio.Task[None], int] = {}  # task -> the body bytes it holds
        self.dropped = 0  # copies dropped in this saturation episode
        self.dropping = False

    def launch(self, copies: Callable[[], Coroutine[Any, Any, None]], size: int) -> None:
        """Run ``copies`` (holding ``size`` bytes of body) in the background, unless :data:`MAX_PENDING`
        copies or :data:`MAX_PENDING_BYTES` are already in flight: then it is dropped, counted."""
        if self.count >= MAX_PENDING or self.bytes + size > MAX_PENDING_BYTES:
            self.dropped += 1
            if not self.dropping:
                self.dropping = True
                log.warning(
                    "service %s: %d mirrored requests (%d bytes of bodies) still in flight (a mirror is slow "
                    "or hangs); copies are dropped until they finish",
                    self.service,
                    self.count,
                    self.bytes,
                )
            return
        self.count += 1
        self.bytes += size
        task = asyncio.get_running_loop().create_task(copies())
        self.tasks[task] = size
        task.add_done_callback(self._done)
        if self.dropping:
            self._calm()

    def _done(self, task: asyncio.Task[None]) -> None:
        self.count -= 1
        self.bytes -= self.tasks.pop(task, 0)
        if self.dropping:
            self._calm()

    def _calm(self) -> None:
        """End a saturation episode once the copies in flight fell back to half the bounds: one line then,
        not one per copy finishing or dropped while a slow mirror keeps the service at its bound."""
        if self.count <= MAX_PENDING // 2 and self.bytes <= MAX_PENDING_BYTES // 2:
            log.warning(
                "service %s: mirrors caught up; %d copies were dropped meanwhile", self.service, self.dropped
            )
            self.dropping = False
            self.dropped = 0


class _Mirror:
    """One mirror of a mirroring service in one configuration: its share, and the copies it had so far
    (Traefik's counting, :meth:`Mirrors.active`)."""

    __slots__ = ("name", "percent", "count")

    def __init__(self, name: str, percent: int) -> None:
        self.name = name
        self.percent = percent
        self.count = 0


class Mirrors:
    """The state of one mirroring service in one configuration, shared by every router using it (as
    Traefik's one handler per service): the request counter and each mirror's copies so far (they start
    again at a reload, as Traefik's); ``flight``, the copies in flight, outlives the configuration."""

    def __init__(self, service: str, spec: Mirroring, flight: InFlight | None = None) -> None:
        self.service = service
        self.spec = spec
        self.mirrors = tuple(_Mirror(m.name, m.percent) for m in spec.mirrors if m.percent > 0)
        self.total = 0
        self.flight = flight if flight is not None else InFlight(service)

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
        if ex.msg.upgrade or (spec.mirror_body and not await self._buffered(ex)):
            await self.main.serve(ex)
            return
        await self.main.serve(ex)  # the copies leave after the main answer is over, as Traefik's
        copy = _Copy(ex, spec.mirror_body)
        self.state.flight.launch(partial(self._copies, names, copy), len(copy.body))

    async def _buffered(self, ex: Exchange) -> bool:
        """Whether the body is held whole in ``ex.body`` within ``maxBodySize`` (or there is none), so the
        copies can carry it. Over the limit, what was read is put back and the body streams on to the main
        service (:meth:`Exchange.read_body_upto`): memory never holds more than the limit, whatever the
        body's length (a chunked one included), as Traefik's reader stops at the limit too."""
        limit = self.state.spec.max_body_size
        if ex.body is not None:  # an earlier middleware buffered it
            ok = limit < 0 or len(ex.body) <= limit
        elif not _has_body(ex.msg):
            return True
        elif limit < 0:
            await ex.read_body()  # no limit: the whole body, as Traefik buffers it
            return True
        else:
            length = ex.msg.headers.get("Content-Length")
            if length is not None and length.isdigit() and int(length) > limit:
                ok = False
            else:
                ok = await ex.read_body_upto(limit)
        if not ok:
            log.debug("service %s: body over maxBodySize, not mirrored", self.service)
        return ok

    async def _copies(self, names: list[str], copy: _Copy) -> None:
        """Send the copy to each mirror in turn, answers dropped, each within its deadline; a failing mirror
        is only logged (debug)."""
        for name in names:
            target = self.mirrors.get(name)
            if target is None:
                continue
            ex = copy.exchange(self.router)
            try:
                async with asyncio.timeout(_deadline(ex, target)):
                    await target.serve(ex)
            except asyncio.CancelledError:
                raise
            except TimeoutError:
                log.debug("service %s: mirror %s took too long; its copy was given up", self.service, name)
            except Exception as exc:  # a mirror never fails anything but its own copy
                log.debug("service %s: mirror %s failed: %s", self.service, name, exc)
            finally:
                ex.release()  # its sinks hold it: freed now, not by the (tuned down) cyclic GC


def _deadline(ex: Exchange, target: Any) -> float:
    """How long a copy may take at mirror ``target``: :data:`COPY_DEADLINE`, or the ``responseHeaderTimeout``
    of the mirror's serversTransport when that is longer (a load balancer mirror; others: the default)."""
    servers = getattr(getattr(target, "balancer", None), "servers", None)
    if not servers:
        return COPY_DEADLINE
    return max(COPY_DEADLINE, ex.ep.pool.settings_for(servers[0].key[3]).response_header_timeout)


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
    resolving.append(name)
    why = None
    for i, child in enumerate(service_children(services[name])):
        role = "mirror" if i else "service"  # the main service first, then the mirrors
        svc = services.get(child)
        if svc is not None and svc.mirroring is not None:
            if child in resolving:
                why = cycle_message(resolving, child)
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
