"""The running configuration as Traefik's API writes it (``pkg/api/handler_http.go`` over
``pkg/config/runtime``): routers, services and middlewares with ``status``, ``error``, ``using``,
``usedBy``, ``provider`` and ``serverStatus``, field for field and in Traefik's order, so that tools
written for Traefik's API read dockroute's.

:class:`Runtime` is built once per :class:`~router.api.state.ApiState` (the handler keeps the last one):
everything here depends on the configuration only, except server health, which :func:`server_status`
reads from the balancers when a request asks for it.

Names: Traefik keeps a router's ``service`` and ``middlewares`` as its provider wrote them (``whoami``,
``auth@file``); the merged model has them qualified, so a reference into the router's own provider is
shown bare again (:func:`unqualify`). Middleware options are the options dataclasses of
``discover.middlewares``, written back under the Traefik option names their fields declare.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import fields, is_dataclass
from typing import Any

from discover.model import (
    DEFAULT_TLS_OPTIONS,
    Domain,
    Failover,
    HealthCheck,
    LoadBalancer,
    Middleware,
    Mirroring,
    Router,
    RouterTLS,
    Service,
    StickyCookie,
    Weighted,
)
from router.api.server_state import DOWN, UP, is_up, server_state
from router.api.state import ApiState
from router.compile import effective_tls
from router.settings import EntryPoint

__all__ = ["Runtime", "encode", "go_duration", "options_json", "server_status", "unqualify"]

Json = dict[str, Any]
ENABLED, DISABLED, WARNING = "enabled", "disabled", "warning"
_UP, _DOWN = b'"UP"', b'"DOWN"'


# What a running Traefik writes into every router it has no other settings for (its default observability
# model): dockroute's routers have no per-router observability keys, so they all behave like this (the
# access log and metrics, when on, count every router; there is no tracing to turn on).
OBSERVABILITY: Json = {"accessLogs": True, "metrics": True, "tracing": True, "traceVerbosity": "minimal"}


def provider_of(name: str) -> str:
    """``app@docker`` → ``docker`` (Traefik's getProviderName)."""
    return name.partition("@")[2]


def unqualify(ref: str, provider: str) -> str:
    """A reference as its provider wrote it: ``x@file`` seen from provider ``file`` is ``x``. The
    internal provider writes its references qualified (``api@internal``, ``dashboard_redirect@internal``),
    so Traefik shows them so."""
    suffix = "@" + provider
    return ref[: -len(suffix)] if provider and provider != "internal" and ref.endswith(suffix) else ref


def _frac(value: int, unit: int) -> str:
    whole, rest = divmod(value, unit)
    digits = str(rest).rjust(len(str(unit)) - 1, "0").rstrip("0")
    return f"{whole}.{digits}" if digits else str(whole)


def go_duration(seconds: float) -> str:
    """Seconds as Go's ``time.Duration.String`` writes them (``100ms``, ``1m30s``, ``1h0m0s``): how
    Traefik's JSON shows every duration."""
    ns = round(seconds * 1e9)
    sign, ns = ("-" if ns < 0 else ""), abs(ns)
    if ns == 0:
        return "0s"
    if ns < 1_000:
        return f"{sign}{ns}ns"
    if ns < 1_000_000:
        return f"{sign}{_frac(ns, 1_000)}µs"
    if ns < 1_000_000_000:
        return f"{sign}{_frac(ns, 1_000_000)}ms"
    hours, rest = divmod(ns, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    secs = _frac(rest, 1_000_000_000) + "s"
    if hours:
        return f"{sign}{hours}h{minutes}m{secs}"
    return f"{sign}{minutes}m{secs}" if minutes else f"{sign}{secs}"


def _plain(value: Any) -> Any:
    """A model value as JSON: tuples → lists, mappings → objects."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


# Options whose defaults Traefik writes into the configuration (its SetDefaults), so its API shows them;
# every other option equal to its default is left out, as Traefik leaves out what nobody set.
SET_DEFAULTS = frozenset(
    {
        "CircuitBreaker.checkPeriod",
        "CircuitBreaker.fallbackDuration",
        "CircuitBreaker.recoveryDuration",
        "CircuitBreaker.responseCode",
        "Compress.encodings",
        "ForwardAuth.maxBodySize",
        "RateLimit.burst",
        "RateLimitRedis.endpoints",
        "Retry.maxRequestBodyBytes",
    }
)


def options_json(options: Any, provider: str) -> Json:
    """A middleware's options under Traefik's option names (the ``key`` each field declares), leaving
    out what Go's ``omitempty`` leaves out (zero, empty, false, absent) and defaults Traefik does not
    write (:data:`SET_DEFAULTS`); durations as Go writes them;
    references into the middleware's own provider bare, as written. A type dockroute does not implement
    keeps its options as a mapping, shown as it is."""
    if not is_dataclass(options):
        return _plain(options) if isinstance(options, Mapping) else {}
    out: Json = {}
    for f in fields(options):
        key = f.metadata.get("key")
        value = getattr(options, f.name)
        if key is None or value is None:
            continue
        kind = f.metadata.get("kind")
        if kind == "section":
            out[key] = options_json(value, provider)
            continue
        if value is False or value == 0 or value == "" or (isinstance(value, (tuple, Mapping)) and not value):
            continue
        if value == f.default and f"{type(options).__name__}.{key}" not in SET_DEFAULTS:
            continue  # a default Traefik applies when it runs, not in its configuration: not shown
        if f.metadata.get("reference"):
            refs = (value,) if isinstance(value, str) else value
            bare = [unqualify(v, provider) for v in refs]
            value = bare[0] if isinstance(value, str) else bare
        out[key] = go_duration(value) if kind == "duration" else _plain(value)
    return out


def _tls_json(tls: RouterTLS, provider: str, default_options: bool) -> Json:
    out: Json = {}
    options = tls.options or (DEFAULT_TLS_OPTIONS if default_options else "")
    if options:
        out["options"] = unqualify(options, provider)
    if tls.cert_resolver:
        out["certResolver"] = tls.cert_resolver
    if tls.domains:
        out["domains"] = [domain_json(d) for d in tls.domains]
    return out


def domain_json(d: Domain) -> Json:
    out: Json = {"main": d.main} if d.main else {}
    if d.sans:
        out["sans"] = list(d.sans)
    return out


def _cookie_json(sticky: StickyCookie) -> Json:
    cookie: Json = {}
    if sticky.name:
        cookie["name"] = sticky.name
    if sticky.secure:
        cookie["secure"] = True
    if sticky.http_only:
        cookie["httpOnly"] = True
    if sticky.same_site:
        cookie["sameSite"] = sticky.same_site
    if sticky.max_age:
        cookie["maxAge"] = sticky.max_age
    cookie["path"] = sticky.path
    return {"cookie": cookie}


def _health_json(hc: HealthCheck) -> Json:
    out: Json = {}
    if hc.scheme:
        out["scheme"] = hc.scheme
    out["mode"] = "http"
    out["path"] = hc.path
    if hc.method and hc.method != "GET":
        out["method"] = hc.method
    if hc.status:
        out["status"] = hc.status
    if hc.port:
        out["port"] = hc.port
    out["interval"] = go_duration(hc.interval)
    out["timeout"] = go_duration(hc.timeout)
    if hc.hostname:
        out["hostname"] = hc.hostname
    out["followRedirects"] = hc.follow_redirects
    if hc.headers:
        out["headers"] = dict(hc.headers)
    return out


def _load_balancer_json(lb: LoadBalancer, provider: str) -> Json:
    out: Json = {}
    if lb.sticky is not None:
        out["sticky"] = _cookie_json(lb.sticky)
    servers = []
    for s in lb.servers:
        server: Json = {"url": s.url}
        if s.weight != 1:
            server["weight"] = s.weight
        servers.append(server)
    if servers:
        out["servers"] = servers
    out["strategy"] = lb.strategy or "wrr"
    if lb.health_check is not None:
        out["healthCheck"] = _health_json(lb.health_check)
    if lb.passive_health_check is not None:
        phc = lb.passive_health_check  # both keys ``omitempty`` in Traefik: 0 is left out
        out["passiveHealthCheck"] = {
            **({"failureWindow": go_duration(phc.failure_window)} if phc.failure_window else {}),
            **({"maxFailedAttempts": phc.max_failed_attempts} if phc.max_failed_attempts else {}),
        }
    out["passHostHeader"] = lb.pass_host_header
    if lb.servers_transport:
        out["serversTransport"] = unqualify(lb.servers_transport, provider)
    return out


def _weighted_json(w: Weighted, provider: str) -> Json:
    out: Json = {}
    if w.services:
        out["services"] = [{"name": unqualify(c.name, provider), "weight": c.weight} for c in w.services]
    if w.sticky is not None:
        out["sticky"] = _cookie_json(w.sticky)
    return out


def _mirroring_json(m: Mirroring, provider: str) -> Json:
    """A mirroring service as Traefik's API shows it (its defaults filled in, as its file provider does)."""
    out: Json = {
        "service": unqualify(m.service, provider),
        "mirrorBody": m.mirror_body,
        "maxBodySize": m.max_body_size,
    }
    if m.mirrors:  # ``percent`` is omitted when 0, as Traefik's ``omitempty``
        out["mirrors"] = [
            {"name": unqualify(r.name, provider), **({"percent": r.percent} if r.percent else {})}
            for r in m.mirrors
        ]
    if m.health_check:
        out["healthCheck"] = {}
    return out


def _failover_json(f: Failover, provider: str) -> Json:
    """A failover service as Traefik's API shows it: its two services, named as in their provider, and
    ``healthCheck: {}`` when set (Traefik's empty struct)."""
    out: Json = {"service": unqualify(f.service, provider), "fallback": unqualify(f.fallback, provider)}
    if f.health_check:
        out["healthCheck"] = {}
    return out


def _service_type(svc: Service) -> str:
    if svc.load_balancer is not None:
        return "loadbalancer"
    if svc.weighted is not None:
        return "weighted"
    if svc.mirroring is not None:
        return "mirroring"
    if svc.failover is not None:
        return "failover"
    return "static" if svc.static is not None else ""


def server_status(balancer: Any, now: float | None = None) -> dict[str, str] | None:
    """Server URL → ``UP``/``DOWN`` for a load balancer, read now: down when its active check fails,
    while it is passively marked down, or when the proxy cannot reach it at all. ``None`` (no
    ``serverStatus``) for anything else, as Traefik for weighted services."""
    servers = getattr(balancer, "servers", None)
    if not servers:
        return None
    now = time.monotonic() if now is None else now
    return {u.url: UP if is_up(u, now) else DOWN for u in servers}


def _append(target: dict[str, list[str]], key: str, value: str) -> None:
    target.setdefault(key, []).append(value)


class Runtime:
    """Traefik's runtime view of one :class:`ApiState`: per router, service and middleware its JSON
    without the parts read live (``serverStatus``). ``routers``/``services``/``middlewares`` are the
    list endpoints' items (with ``name`` and ``provider``), sorted by name; ``raw_*`` are
    ``/api/rawdata``'s (keyed by name, without them). Built once, shared read-only by requests."""

    def __init__(self, state: ApiState) -> None:
        self.state = state
        self._entry_points = {ep.name: ep for ep in state.entry_points}
        # (kind, name) → the item's JSON, encoded on first use (services: without serverStatus)
        self._encoded: dict[tuple[str, str], bytes] = {}
        self._status_keys: dict[str, list[tuple[Any, bytes]]] = {}
        cfg = state.config
        used_by_service: dict[str, list[str]] = {}
        used_by_middleware: dict[str, list[str]] = {}
        self.raw_routers: dict[str, Json] = {}
        # router → the routers Traefik shows for it (itself, or its ``<ep>-<router>`` copies, or both)
        self.shown_as: dict[str, tuple[str, ...]] = {}
        for name in sorted(cfg.routers):
            router = cfg.routers[name]
            parts = self._router(router)
            self.shown_as[name] = tuple(part for part, _, _ in parts)
            for part, raw, middlewares in parts:
                self.raw_routers[part] = raw
                _append(used_by_service, router.service, part)
                for m in middlewares:
                    _append(used_by_middleware, m, part)
        self.raw_routers = dict(sorted(self.raw_routers.items()))
        self.routers = [self._router_item(name, raw) for name, raw in self.raw_routers.items()]
        self.raw_services: dict[str, Json] = {}
        for name in sorted(cfg.services):
            self.raw_services[name] = self._service(cfg.services[name], used_by_service.get(name, ()))
        for name in state.internal_services:
            if name not in self.raw_services:
                self.raw_services[name] = _with_used_by({"status": ENABLED}, used_by_service.get(name, ()))
        self.raw_services = dict(sorted(self.raw_services.items()))
        self.services = [self._service_item(name, raw) for name, raw in self.raw_services.items()]
        self.raw_middlewares = {
            name: self._middleware(cfg.middlewares[name], used_by_middleware.get(name, ()))
            for name in sorted(cfg.middlewares)
        }
        self.middlewares = [
            {**raw, "name": name, "provider": provider_of(name), "type": cfg.middlewares[name].type.lower()}
            for name, raw in self.raw_middlewares.items()
        ]
        self.by_name = {
            "routers": {i["name"]: i for i in self.routers},
            "services": {i["name"]: i for i in self.services},
            "middlewares": {i["name"]: i for i in self.middlewares},
        }
        for kind, items in self.by_name.items():  # encoded now, where the view is built (off the loop)
            for name, item in items.items():
                self._encoded[(kind, name)] = encode(item)
        for kind in ("routers", "services", "middlewares"):
            for name, raw in getattr(self, f"raw_{kind}").items():
                self._encoded[(f"raw_{kind}", name)] = encode(raw)
        for kind in ("routers", "middlewares"):  # rawdata's sections read nothing live: whole, now
            self.encoded_map(kind, 0.0)
        # other documents built with the view (the handler's: ``discovery``), as JSON bytes
        self.documents: dict[str, bytes] = {}

    # -- routers --------------------------------------------------------------------------------------

    def _router(self, r: Router) -> list[tuple[str, Json, tuple[str, ...]]]:
        """(name, rawdata JSON, qualified names of the middlewares it runs) of each router Traefik shows
        for ``r``: Traefik's ``applyModel`` gives a router its own copy, named ``<ep>-<router>`` when it
        is on several entry points, on each entry point with ``http.middlewares`` or ``http.tls`` (that
        entry point's model), with those middlewares first and that tls when it has none; the entry
        points without a model keep the router under its name."""
        existing = self._entry_points
        using = tuple(sorted(set(self.state.routed_on.get(r.name, ()))))
        entry_points = r.entry_points or using
        plain: list[str] = []
        parts: list[tuple[str, Json, tuple[str, ...]]] = []
        for ep_name in entry_points:
            ep = existing.get(ep_name)
            if ep is None or not (ep.middlewares or ep.tls is not None):
                plain.append(ep_name)
                continue
            name = f"{ep_name}-{r.name}" if len(entry_points) > 1 else r.name
            parts.append((name, *self._router_json(r, (ep_name,), ep, using)))
        if plain or not entry_points:
            parts.append((r.name, *self._router_json(r, tuple(plain), None, using)))
        return parts

    def _router_json(
        self, r: Router, entry_points: tuple[str, ...], model: EntryPoint | None, using: tuple[str, ...]
    ) -> tuple[Json, tuple[str, ...]]:
        """One router Traefik shows for ``r`` on ``entry_points``, with the entry point ``model``'s
        middlewares (as the static configuration writes them) and tls applied when given."""
        state = self.state
        provider = provider_of(r.name)
        model_middlewares = model.middlewares if model is not None else ()
        middlewares = (*(_qualified(m, provider) for m in model_middlewares), *r.middlewares)
        out: Json = {}
        if entry_points:
            out["entryPoints"] = list(entry_points)
        shown = [*model_middlewares, *(unqualify(m, provider) for m in r.middlewares)]
        if shown:
            out["middlewares"] = shown
        out["service"] = unqualify(r.service, provider)
        out["rule"] = r.rule
        if r.rule_syntax:
            out["ruleSyntax"] = r.rule_syntax
        if r.priority:
            out["priority"] = r.priority
        tls = effective_tls(r, model)
        if tls is not None:
            out["tls"] = _tls_json(tls, provider, default_options=False)
        out["observability"] = OBSERVABILITY
        errors = [f'entryPoint "{ep}" doesn\'t exist' for ep in entry_points if ep not in self._entry_points]
        why = state.errors.get(r.name)
        if why:
            errors.append(why)
        if errors:
            out["error"] = errors
        out["status"] = DISABLED if why else (WARNING if errors else ENABLED)
        on = [ep for ep in using if ep in entry_points]
        if on:
            out["using"] = on
        return out, middlewares

    def _router_item(self, name: str, raw: Json) -> Json:
        priority = str(raw.get("priority", 0))
        item = {**raw, "name": name, "provider": provider_of(name), "priorityStr": priority}
        tls = raw.get("tls")
        if tls is not None and "options" not in tls:  # Traefik's list and detail show the default's name
            item["tls"] = {"options": DEFAULT_TLS_OPTIONS, **tls}
        return item

    # -- services -------------------------------------------------------------------------------------

    def _service(self, svc: Service, used_by: Iterable[str]) -> Json:
        provider = provider_of(svc.name)
        out: Json = {}
        if svc.load_balancer is not None:
            out["loadBalancer"] = _load_balancer_json(svc.load_balancer, provider)
        if svc.weighted is not None:
            out["weighted"] = _weighted_json(svc.weighted, provider)
        if svc.mirroring is not None:
            out["mirroring"] = _mirroring_json(svc.mirroring, provider)
        if svc.failover is not None:
            out["failover"] = _failover_json(svc.failover, provider)
        if svc.static is not None:
            st = svc.static
            out["static"] = {"root": st.root, "index": list(st.index), "browse": st.browse}
            if st.try_files:
                out["static"]["tryFiles"] = list(st.try_files)
        errors, disabled = self._service_errors(svc)
        if errors:
            out["error"] = errors
        out["status"] = DISABLED if disabled else (WARNING if errors else ENABLED)
        return _with_used_by(out, used_by)

    def _service_errors(self, svc: Service) -> tuple[list[str], bool]:
        """(what is wrong with a service, whether it is unusable): why the compile could not build it
        (a weighted cycle, a missing serversTransport...); servers the proxy knows it cannot reach."""
        state = self.state
        errors = [f"server {s.url}: {s.unreachable}" for s in _servers(svc) if s.unreachable]
        why = state.service_errors.get(svc.name)
        if why:
            return [*errors, why], True
        if svc.static is not None or svc.name in state.balancers or svc.name in state.internal_services:
            return errors, False
        if svc.mirroring is not None:  # no balancer of its own; service_errors says when it is left out
            return errors, False
        if svc.weighted is not None:
            for ref in svc.weighted.services:
                if ref.name not in state.config.services:
                    return [*errors, f"child service {ref.name} does not exist"], True
                if ref.name not in state.balancers:
                    return [*errors, f"child service {ref.name} is not usable"], True
        return [*errors, "the service could not be built (its error is in the log)"], True

    def _service_item(self, name: str, raw: Json) -> Json:
        svc = self.state.config.services.get(name)
        item = {**raw, "name": name, "provider": provider_of(name)}
        kind = _service_type(svc) if svc is not None else ""
        if kind:
            item["type"] = kind
        return item

    # -- middlewares ----------------------------------------------------------------------------------

    def _middleware(self, m: Middleware, used_by: Iterable[str]) -> Json:
        out: Json = {m.type: options_json(m.options, provider_of(m.name))}
        built = self.state.middleware_errors.get(m.name)  # the compile could not build it (RE2 refused...)
        if m.error or built:
            out["error"] = [e for e in (m.error, built) if e]
        elif not is_dataclass(m.options):
            out["error"] = [f"middleware {m.name} ({m.type}) is not supported"]
        out["status"] = DISABLED if "error" in out else ENABLED
        return _with_used_by(out, used_by)

    # -- health, read live; encoding ------------------------------------------------------------------

    def encoded(self, kind: str, name: str, item: Json, now: float) -> bytes:
        """``item`` (of the list ``kind``, or ``raw_<kind>``) as JSON bytes: encoded once per view, and
        for a service completed with its ``serverStatus`` read now, so a request encodes only that."""
        key = (kind, name)
        data = self._encoded.get(key)
        if data is None:
            data = self._encoded[key] = encode(item)
        if kind in ("services", "raw_services"):
            status = self._status_bytes(name, now)
            if status:
                return b'%s,"serverStatus":%s,"serverStates":%s}' % (
                    data[:-1],
                    status,
                    self._states(name, now),
                )
        return data

    def _status_bytes(self, name: str, now: float) -> bytes:
        """``serverStatus`` of service ``name`` as JSON bytes (b"" when it has none): what
        :func:`server_status` says, with each server's encoded key kept from one request to the next."""
        keys = self._status_keys.get(name)
        if keys is None:
            servers = getattr(self.state.balancers.get(name), "servers", None) or ()
            keys = self._status_keys[name] = [(u, encode(u.url) + b":") for u in servers]
        if not keys:
            return b""
        parts = [key + (_UP if is_up(u, now) else _DOWN) for u, key in keys]
        return b"{%s}" % b",".join(parts)

    def _states(self, name: str, now: float) -> bytes:
        """``serverStates`` of service ``name`` (:mod:`router.api.server_state`): each server's state and
        why, read now, for a service :meth:`_status_bytes` found servers for."""
        wall = time.time()
        return b"{%s}" % b",".join(
            key + (_UP if is_up(u, now) else encode(server_state(u, now, wall)))
            for u, key in self._status_keys[name]
        )

    def encoded_list(self, kind: str, items: Iterable[Json], now: float) -> bytes:
        """A JSON array of list items, from their cached encodings."""
        return b"[%s]" % b",".join(self.encoded(kind, i["name"], i, now) for i in items)

    def encoded_map(self, kind: str, now: float) -> bytes:
        """``raw_<kind>`` as a JSON object (rawdata's sections), from the cached encodings."""
        whole = self._encoded.get(("map", kind))
        if whole is not None:
            return whole
        raw = getattr(self, f"raw_{kind}")
        parts = (b"%s:%s" % (encode(n), self.encoded(f"raw_{kind}", n, v, now)) for n, v in raw.items())
        whole = b"{%s}" % b",".join(parts)
        if kind != "services":  # nothing in it is read live: the same bytes for every request
            self._encoded[("map", kind)] = whole
        return whole


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))  # one: json.dumps makes one per call


def encode(value: Any) -> bytes:
    """Compact JSON, UTF-8 (Go's encoder writes no spaces either)."""
    return _ENCODER.encode(value).encode()


def _qualified(name: str, provider: str) -> str:
    return name if "@" in name or not provider or provider == "internal" else f"{name}@{provider}"


def _servers(svc: Service) -> tuple[Any, ...]:
    return svc.load_balancer.servers if svc.load_balancer is not None else ()


def _with_used_by(out: Json, used_by: Iterable[str]) -> Json:
    names = sorted(set(used_by))
    if names:
        out["usedBy"] = names
    return out
