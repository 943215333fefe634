"""What the TCP and UDP API views (:mod:`router.api.tcp`, :mod:`router.api.udp`) share: their overview
counts, their list filters and sorts, and the common parts of a service's JSON (``weighted``, ``error``,
``status``, ``usedBy``). Traefik's ``handler_tcp.go`` and ``handler_udp.go`` filter, sort and count the
two the same way, so one implementation serves both.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from router.api import query as q
from router.api.render import DISABLED, ENABLED, Json
from router.api.report import status_counts

__all__ = ["L4View", "keep_l4_router", "with_status", "weighted_json"]


class L4View:
    """A TCP or UDP view: ``items`` (list path → JSON items sorted by name) is set by the subclass,
    ``routers_path`` names its routers' list (filtered as routers, the others by name)."""

    routers_path = ""
    items: dict[str, list[Json]]

    def live(self, path: str, item: Json) -> Json:
        """``item`` of list ``path`` completed with what changes while the configuration does not (a
        TCP service's servers' health); as it is for the kinds that have none."""
        return item

    def overview(self) -> Json:
        """``/api/overview``'s ``tcp`` or ``udp`` part: per kind, the total, the warnings and the errors."""
        return {path.partition("/")[2]: status_counts(items) for path, items in self.items.items()}

    def listing(self, path: str, query: q.Query) -> list[Json]:
        """The items of ``path`` a query keeps (Traefik's ``keepTCPRouter``/``keepUDPRouter``, or by name
        for the other kinds), sorted as asked (Traefik's ``sortRouters`` / ``sortServices``)."""
        c = q.Criterion.of(query)
        keep = keep_l4_router if path == self.routers_path else q.keep_named
        items = [self.live(path, i) for i in self.items[path] if keep(i, c)]
        if query.get("sortBy") or query.get("direction"):
            items = q.sort_items(items, query, path.partition("/")[2])
        return items


def keep_l4_router(item: Json, c: q.Criterion | None) -> bool:
    """A TCP or UDP router: status, provider, a search in the name, and the service filter."""
    if c is None:
        return True
    return (
        c.with_status(item.get("status", ""))
        and c.with_provider(item.get("provider", ""))
        and c.search_in(item["name"])
        and c.filter_service(item.get("service", ""))
    )


def weighted_json(weighted: Any) -> Json:
    """A weighted service's part: its children's names and weights."""
    return {"services": [{"name": w.name, "weight": w.weight} for w in weighted.services]}


def with_status(out: Json, error: str | None, key: str, names: Iterable[str]) -> Json:
    """``out`` completed with ``error``, ``status`` (disabled by an error) and ``key`` listing ``names``
    when there are any: a service's ``usedBy`` (sorted), a TCP router's ``using``, as Traefik's
    ``TCPServiceInfo`` / ``UDPServiceInfo`` / ``TCPRouterInfo`` carry them."""
    if error:
        out["error"] = [error]
    out["status"] = DISABLED if error else ENABLED
    if names:
        out[key] = list(names)
    return out
