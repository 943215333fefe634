"""The provider ``internal``: the routers Traefik adds for its own services, from the static configuration.

Traefik's ``pkg/provider/traefik/internal.go``, router for router: with ``api.insecure``, ``api`` (the API
under ``/api``) and, when the dashboard is on, ``dashboard`` (everything else on the entry point, behind a
redirect of ``/`` to ``/dashboard/`` and a strip of ``/dashboard``), plus ``debug`` with ``api.debug``, all
on entry point ``traefik``; ``ping`` and ``prometheus`` on their entry points unless ``manualRouting``
(then only a user's router to ``ping@internal`` / ``prometheus@internal`` serves them). Traefik gives them
Go's ``math.MaxInt`` less 0, 1 or 2; dockroute's priorities top out at 2^31-1 (its ACME challenge router),
so the same order is kept on that scale: ping and prometheus equal to the challenge router, api just
below, the dashboard's catch-all below that.

The handlers of the internal services come from their packages and are handed to the compile by the app
(:func:`internal_handlers`); a name left out is a service that does not exist.
"""

from __future__ import annotations

from collections.abc import Mapping

from discover.middlewares.paths import RedirectRegex, StripPrefix
from discover.model import DynamicConfig, Middleware, Router, frozen_map
from dockroute.static import StaticConfig
from router.api.dashboard import dashboard_handler
from router.api.handler import api_handler
from router.api.state import ApiState
from router.exchange import Handler
from router.internal import INTERNAL_SERVICES, noop
from router.metrics import Metrics
from router.metrics_handler import prometheus_handler
from router.ping import PingHandler

__all__ = [
    "DASHBOARD_REDIRECT",
    "PING_PRIORITY",
    "InternalServices",
    "internal_config",
    "internal_handlers",
]

PING_PRIORITY = 2**31 - 1  # Traefik: math.MaxInt (as its ACME challenge router)
API_PRIORITY = PING_PRIORITY - 1  # math.MaxInt - 1
DASHBOARD_PRIORITY = PING_PRIORITY - 2  # math.MaxInt - 2
# Traefik's dashboard_redirect: a bare ``http://host[:port]/`` goes to the dashboard
DASHBOARD_REDIRECT = r"^(http:\/\/(\[[\w:.]+\]|[\w\._-]+)(:\d+)?)\/$"


def _router(rule: str, service: str, entry_point: str, priority: int, *mws: str) -> Router:
    return Router(
        name="",  # the merge names it (``api`` → ``api@internal``)
        rule=rule,
        service=service,
        entry_points=(entry_point,),
        middlewares=mws,
        priority=priority,
        # as Traefik's internal routers: "default", the v3 syntax whatever core.defaultRuleSyntax says
        # (router.rules reads any syntax but v2 as v3), and what Traefik's API shows for them
        rule_syntax="default",
        origin="static configuration (api, ping, metrics)",
    )


def internal_config(static: StaticConfig) -> DynamicConfig:
    """The internal provider's routers and middlewares (names unqualified: published as ``internal``)."""
    routers: dict[str, Router] = {}
    middlewares: dict[str, Middleware] = {}
    api = static.api
    if api is not None and api.insecure:
        ep = static.internal_entry_point  # "traefik", spelled as the user's entry point is
        routers["api"] = _router("PathPrefix(`/api`)", "api@internal", ep, API_PRIORITY)
        if api.dashboard:
            routers["dashboard"] = _router(
                "PathPrefix(`/`)",
                "dashboard@internal",
                ep,
                DASHBOARD_PRIORITY,
                "dashboard_redirect@internal",
                "dashboard_stripprefix@internal",
            )
            middlewares["dashboard_redirect"] = Middleware(
                name="dashboard_redirect",
                type="redirectRegex",
                options=RedirectRegex(
                    regex=DASHBOARD_REDIRECT, replacement="${1}/dashboard/", permanent=True
                ),
            )
            middlewares["dashboard_stripprefix"] = Middleware(
                name="dashboard_stripprefix",
                type="stripPrefix",
                options=StripPrefix(prefixes=("/dashboard/", "/dashboard")),
            )
        if api.debug:
            routers["debug"] = _router("PathPrefix(`/debug`)", "api@internal", ep, API_PRIORITY)
    ping = static.ping
    if ping is not None and not ping.manual_routing:
        routers["ping"] = _router("PathPrefix(`/ping`)", "ping@internal", ping.entry_point, PING_PRIORITY)
    prom = static.metrics
    if prom is not None and not prom.manual_routing:
        routers["prometheus"] = _router(
            "PathPrefix(`/metrics`)", "prometheus@internal", prom.entry_point, PING_PRIORITY
        )
    return DynamicConfig(routers=frozen_map(routers), middlewares=frozen_map(middlewares))


def internal_handlers(
    static: StaticConfig,
    *,
    api: Handler | None = None,
    dashboard: Handler | None = None,
    ping: Handler | None = None,
    prometheus: Handler | None = None,
) -> Mapping[str, Handler]:
    """Internal service name → handler, for the services the static configuration turns on: the API and
    dashboard with ``api`` (the dashboard only while ``api.dashboard``), ping with ``ping``, Prometheus
    with ``metrics.prometheus``, and ``noop@internal`` always (Traefik always defines it)."""
    out: dict[str, Handler] = {"noop@internal": noop}
    if static.api is not None:
        if api is not None:
            out["api@internal"] = api
        if static.api.dashboard and dashboard is not None:
            out["dashboard@internal"] = dashboard
    if static.ping is not None and ping is not None:
        out["ping@internal"] = ping
    if static.metrics is not None and prometheus is not None:
        out["prometheus@internal"] = prometheus
    return out


class InternalServices:
    """The handlers of the internal services this process serves, the API's latest state and the one
    :class:`~router.metrics.Metrics` of the process (``metrics.prometheus``; None when off).

    The app replaces :attr:`state` after each configuration it applies (references only); the API
    handler reads it through :meth:`latest` when a request asks, never before.
    """

    def __init__(self, static: StaticConfig) -> None:
        self.state: ApiState | None = None
        self.ping = PingHandler(static.ping) if static.ping is not None else None
        self.metrics = None
        if static.metrics is not None:
            self.metrics = Metrics(static.metrics, add_internals=static.metrics_add_internals)
        api = dashboard = None
        if static.api is not None:
            # the dashboard's files are read once, here, at start (never per request)
            dashboard = dashboard_handler(static.api.base_path) if static.api.dashboard else None
            features = {
                "tracing": "",
                "metrics": "Prometheus" if static.metrics is not None else "",
                "accessLog": static.access_log is not None,
            }
            api = api_handler(self.latest, dashboard, features=features)
        self.handlers = internal_handlers(
            static,
            api=api,
            dashboard=dashboard,
            ping=self.ping,
            prometheus=prometheus_handler(self.metrics) if self.metrics is not None else None,
        )
        # in Traefik's listing order
        self.names = tuple(n for n in INTERNAL_SERVICES if n in self.handlers)

    def latest(self) -> ApiState | None:
        """The :data:`~router.api.state.ApiSource` handed to the API handler."""
        return self.state

    def terminate(self) -> None:
        """Shutdown began: ``/ping`` answers ``terminatingStatusCode`` from now on."""
        if self.ping is not None:
            self.ping.terminate()
