"""The static ``api``, ``ping`` and ``metrics`` sections, and the ``traefik`` entry point they may need.

Each section is off when absent, as in Traefik. Their routers (:mod:`dockroute.internal`) go to an entry
point, by default ``traefik``; Traefik creates that one on ``:8080`` when ``api.insecure``, ``ping`` or
``metrics.prometheus`` (without ``manualRouting``) want it and the user did not define it
(``SetEffectiveConfiguration`` in Traefik's static configuration), and so does dockroute. A named entry
point that does not exist stops the start (Traefik only logs an error for the router and serves nothing).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from typing import Any

from discover.values import find_key
from dockroute.static.readers import Reader
from dockroute.static.settings import StaticConfigError
from dockroute.static.tree import OFF, Indexed, Val, get, got, merge, where
from router.compile import INTERNAL_ENTRY_POINT  # Traefik's DefaultInternalEntryPointName
from router.settings import ApiSettings, PingSettings, PrometheusSettings

__all__ = ["INTERNAL_ENTRY_POINT", "Observability", "read_observability", "with_internal_entry_point"]

INTERNAL_ADDRESS = ":8080"

# Traefik's validBasePath: an absolute URL path of these characters only (no backtracking: one class).
_BASE_PATH = re.compile(r"/[a-zA-Z0-9/_.:~-]*")


@dataclass(frozen=True)
class Observability:
    """What the three sections turned into (keys not acted on are found by the schema's ``ANY``)."""

    api: ApiSettings | None = None
    ping: PingSettings | None = None
    metrics: PrometheusSettings | None = None
    # the internal entry point as the user spells it (:func:`check_entry_points`)
    internal_entry_point: str = INTERNAL_ENTRY_POINT

    def wants_internal_entry_point(self) -> bool:
        """Traefik's condition for creating the ``traefik`` entry point."""
        return bool(
            (self.api is not None and self.api.insecure)
            or (self.ping is not None and _routed_on_internal(self.ping))
            or (self.metrics is not None and _routed_on_internal(self.metrics))
        )


def _routed_on_internal(s: PingSettings | PrometheusSettings) -> bool:
    return not s.manual_routing and find_key((INTERNAL_ENTRY_POINT,), s.entry_point) is not None


def _section(tree: Any, key: str) -> Any:
    """A section that is on (a mapping), or None when absent or switched off."""
    node = get(tree, key)
    return node if isinstance(node, dict) else None


def read_observability(tree: Any) -> Observability:
    """``api``, ``ping`` and ``metrics.prometheus`` from the merged tree; entry point names are checked
    later (:func:`check_entry_points`), once the ``traefik`` entry point exists or not."""
    api = None
    if (node := _section(tree, "api")) is not None:
        api = _api(Reader(node, "api"))
    ping = None
    if (node := _section(tree, "ping")) is not None:
        r = Reader(node, "ping")
        d = PingSettings()
        code = r.integer("terminatingStatusCode", d.terminating_status_code)
        if not 200 <= code <= 599:
            raise StaticConfigError(
                "ping.terminatingStatusCode",
                f"expected an HTTP status from 200 to 599, got {code}"
                f"{where(r.origin('terminatingStatusCode'))}",
            )
        ping = PingSettings(
            entry_point=r.text("entryPoint", d.entry_point).strip(),
            manual_routing=r.flag("manualRouting", d.manual_routing),
            terminating_status_code=code,
        )
    metrics = None
    if (node := _section(_section(tree, "metrics"), "prometheus")) is not None:
        metrics = _prometheus(Reader(node, "metrics.prometheus"))
    return Observability(api=api, ping=ping, metrics=metrics)


def _api(r: Reader) -> ApiSettings:
    d = ApiSettings()
    base_path = r.text("basePath", d.base_path).strip()
    if not _BASE_PATH.fullmatch(base_path):
        raise StaticConfigError(
            "api.basePath",
            f"expected an absolute URL path like '/' or '/proxy/' (letters, digits and / _ . : ~ -), got "
            f"{base_path!r}{where(r.origin('basePath'))}",
        )
    r.flag("disableDashboardAd", True)  # checked only: dockroute's dashboard shows no ad
    return ApiSettings(
        dashboard=r.flag("dashboard", d.dashboard),
        insecure=r.flag("insecure", d.insecure),
        # /debug/vars (the api handler: process figures in the spirit of Go's expvar); Go's pprof has no
        # counterpart
        debug=r.flag("debug", d.debug),
        base_path=base_path,
    )


def _prometheus(r: Reader) -> PrometheusSettings:
    d = PrometheusSettings()
    labels = []
    for label in sorted(r.sub("headerLabels").tree):
        header = r.sub("headerLabels").text(label)
        if header is not None:
            labels.append((label, header.strip()))
    return PrometheusSettings(
        buckets=_buckets(r, d.buckets),
        add_entry_points_labels=r.flag("addEntryPointsLabels", d.add_entry_points_labels),
        add_routers_labels=r.flag("addRoutersLabels", d.add_routers_labels),
        add_services_labels=r.flag("addServicesLabels", d.add_services_labels),
        entry_point=r.text("entryPoint", d.entry_point).strip(),
        manual_routing=r.flag("manualRouting", d.manual_routing),
        header_labels=tuple(labels),
    )


def _buckets(r: Reader, default: tuple[float, ...]) -> tuple[float, ...]:
    """Histogram bucket bounds (seconds): numbers (a YAML list, or text like ``0.1,0.3,1.2,5``), finite,
    strictly rising, as the Prometheus client requires."""
    found = r.leaf("buckets")
    if found is None:
        return default
    path, value, origin = found
    if isinstance(value, Indexed):
        value = [value[i] for i in sorted(value)]
    elif isinstance(value, str):
        value = [p.strip() for p in value.split(",") if p.strip()]
    if not isinstance(value, list | tuple) or not value:
        raise StaticConfigError(path, f"expected a list of numbers, got {got(value)}{where(origin)}")
    out: list[float] = []
    for i, item in enumerate(value):
        try:
            bound = (
                float(item) if isinstance(item, int | float | str) and not isinstance(item, bool) else None
            )
        except ValueError:
            bound = None
        if bound is None or not math.isfinite(bound) or (out and bound <= out[-1]):
            raise StaticConfigError(
                f"{path}[{i}]",
                f"expected finite numbers in rising order (seconds), got {got(item)}{where(origin)}",
            )
        out.append(bound)
    return tuple(out)


def with_internal_entry_point(entries: dict[str, Any], obs: Observability) -> dict[str, Any]:
    """``entries`` plus ``traefik`` on :8080 when the sections want it and the user defined none (an entry
    point the user switched off stays off, and is then reported by :func:`check_entry_points`)."""
    if not obs.wants_internal_entry_point() or find_key(entries, INTERNAL_ENTRY_POINT) is not None:
        return entries
    return merge(entries, {INTERNAL_ENTRY_POINT: {"address": Val(INTERNAL_ADDRESS, "")}})


def check_entry_points(tree: Any, obs: Observability, live: list[str]) -> Observability:
    """Each automatic router's entry point must exist; names come back spelled as the entry point is, the
    internal one's too (a user's ``Traefik`` is the internal entry point: names are case-insensitive)."""
    ping, metrics = obs.ping, obs.metrics
    if ping is not None and not ping.manual_routing:
        ping = replace(ping, entry_point=_entry_point(tree, "ping", ping.entry_point, live))
    if metrics is not None and not metrics.manual_routing:
        name = _entry_point(tree, "metrics.prometheus", metrics.entry_point, live)
        metrics = replace(metrics, entry_point=name)
    if obs.api is not None and obs.api.insecure:
        _entry_point(tree, "api", INTERNAL_ENTRY_POINT, live, "api.insecure serves the API")
    internal = find_key(live, INTERNAL_ENTRY_POINT) or INTERNAL_ENTRY_POINT
    return replace(obs, ping=ping, metrics=metrics, internal_entry_point=internal)


def _entry_point(tree: Any, section: str, name: str, live: list[str], why: str = "") -> str:
    found = find_key(live, name)
    if found is not None:
        return found
    node = get(tree, *section.split("."))
    origin = Reader(node, section).origin("entryPoint") if isinstance(node, dict) else ""
    switched_off = get(tree, "entryPoints", name) is OFF
    because = why or f"{section} is served on it"
    raise StaticConfigError(
        f"{section}.entryPoint" if not why else section,
        f"no entry point named {name!r} (known: {', '.join(live)}); {because}"
        + (" and it is switched off" if switched_off else "")
        + where(origin),
    )
