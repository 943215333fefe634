"""The list endpoints' query parameters, as Traefik's API reads them (``pkg/api/criterion.go``, ``sort.go``):
``search``, ``status``, ``serviceName``, ``middlewareName`` filter; ``sortBy``/``direction`` order;
``per_page``/``page`` cut a page and name the next one in ``X-Next-Page``.

Pure functions over lists of plain dicts (the JSON about to be written), so they are tested without a
server and cost nothing until a list endpoint is asked for.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

__all__ = ["Criterion", "PageError", "Query", "page", "parse_query", "sort_items"]

DEFAULT_PER_PAGE = 100
NEXT_PAGE_HEADER = "X-Next-Page"

Item = Mapping[str, Any]


class PageError(ValueError):
    """A bad ``page``/``per_page``: Traefik answers 400 with this message."""


@dataclass(frozen=True, slots=True)
class Query:
    """The parsed query string: Go's ``url.Values.Get`` takes the first value of a key."""

    values: Mapping[str, str]

    def get(self, key: str) -> str:
        return self.values.get(key, "")


def parse_query(raw: str) -> Query:
    """``a=1&b=2`` → first value per key (blank values kept, as Go's parser does)."""
    parsed = parse_qs(raw, keep_blank_values=True) if raw else {}
    return Query({k: v[0] for k, v in parsed.items()})


@dataclass(frozen=True, slots=True)
class Criterion:
    """Traefik's ``searchCriterion``: every part that is set must match."""

    search: str = ""
    status: str = ""
    service_name: str = ""
    middleware_name: str = ""
    provider: str = ""  # dockroute's: Traefik's API has none (its dashboard filters by provider itself)

    @classmethod
    def of(cls, query: Query) -> Criterion | None:
        get = query.get
        c = cls(get("search"), get("status"), get("serviceName"), get("middlewareName"), get("provider"))
        return None if c == cls() else c

    def with_status(self, status: str) -> bool:
        return not self.status or status.lower() == self.status.lower()

    def with_provider(self, provider: str) -> bool:
        return not self.provider or provider.lower() == self.provider.lower()

    def search_in(self, *values: str) -> bool:
        if not self.search:
            return True
        needle = self.search.lower()
        return any(needle in v.lower() for v in values)

    def filter_service(self, name: str) -> bool:
        """As Traefik: a router's service written with ``@`` must equal the parameter; one without it is
        compared with the parameter's part before ``@``."""
        if not self.service_name:
            return True
        if "@" in name:
            return self.service_name == name
        return self.service_name.partition("@")[0] == name

    def filter_middleware(self, names: Sequence[str]) -> bool:
        return not self.middleware_name or self.middleware_name in names


def keep_router(item: Item, c: Criterion | None) -> bool:
    if c is None:
        return True
    return (
        c.with_status(item.get("status", ""))
        and c.with_provider(item.get("provider", ""))
        and c.search_in(item.get("rule", ""), item["name"])
        and c.filter_service(item.get("service", ""))
        and c.filter_middleware(item.get("middlewares", ()))
    )


def keep_named(item: Item, c: Criterion | None) -> bool:
    """Services and middlewares: status and a search in the name only."""
    if c is None:
        return True
    return (
        c.with_status(item.get("status", ""))
        and c.with_provider(item["provider"])
        and c.search_in(item["name"])
    )


# sortBy → key per kind of list (Traefik's sort.go); anything else sorts by name
_ROUTER_KEYS: dict[str, Callable[[Item], Any]] = {
    "provider": lambda i: i.get("provider", ""),
    "priority": lambda i: i.get("priority", 0),
    "status": lambda i: i.get("status", ""),
    "rule": lambda i: i.get("rule", ""),
    "service": lambda i: i.get("service", ""),
    "entryPoints": lambda i: len(i.get("entryPoints", ())),
}
_SERVICE_KEYS: dict[str, Callable[[Item], Any]] = {
    "type": lambda i: i.get("type", ""),
    "servers": lambda i: len(i.get("loadBalancer", {}).get("servers", ())),
    "provider": lambda i: i.get("provider", ""),
    "status": lambda i: i.get("status", ""),
}
_MIDDLEWARE_KEYS: dict[str, Callable[[Item], Any]] = {
    "type": lambda i: i.get("type", ""),
    "provider": lambda i: i.get("provider", ""),
    "status": lambda i: i.get("status", ""),
}
SORT_KEYS = {"routers": _ROUTER_KEYS, "services": _SERVICE_KEYS, "middlewares": _MIDDLEWARE_KEYS}


def sort_items(items: list[Item], query: Query, kind: str, name_key: str = "name") -> list[Item]:
    """Sorted as Traefik sorts: by ``sortBy`` (ties broken by name), ``direction`` ``asc`` unless
    ``desc``; by name when ``sortBy`` is absent or unknown."""
    desc = query.get("direction") == "desc"
    key = SORT_KEYS.get(kind, {}).get(query.get("sortBy"))
    if key is None:
        return sorted(items, key=lambda i: i[name_key], reverse=desc)
    return sorted(items, key=lambda i: (key(i), i[name_key]), reverse=desc)


GO_INT_MAX = 2**63 - 1  # Go's int on 64 bits: strconv.Atoi clamps an out-of-range number to it
GO_INT_MIN = -(2**63)


def go_atoi(raw: str) -> tuple[int, bool]:
    """Go's ``strconv.Atoi``: (value, ok). An optional sign and ASCII digits only, else (0, False); a
    number out of Go's int range is clamped to it, not ok. Never converts more than 20 digits (Python's
    ``int`` refuses over 4300 and is quadratic before that)."""
    sign = -1 if raw[:1] == "-" else 1
    digits = raw[1:] if raw[:1] in ("+", "-") else raw
    if not (digits.isascii() and digits.isdigit()):
        return 0, False
    digits = digits.lstrip("0") or "0"
    value = sign * (int(digits) if len(digits) <= 20 else 2**64)
    if value > GO_INT_MAX:
        return GO_INT_MAX, False
    if value < GO_INT_MIN:
        return GO_INT_MIN, False
    return value, True


def _int_param(query: Query, key: str, default: int) -> int:
    """Traefik's ``getIntParam``: on an error, it prints what Atoi gave (0, or the clamped number)."""
    raw = query.get(key)
    if raw == "":
        return default
    value, ok = go_atoi(raw)
    if not ok or value <= 0:
        raise PageError(f"invalid request: {key}: {value}")
    return value


def page(items: Sequence[Any], query: Query) -> tuple[Sequence[Any], int]:
    """(the page asked for, the next page's number: 1 after the last page), as Traefik's ``pagination``;
    :class:`PageError` for a page past the end or a non-positive ``page``/``per_page``."""
    per_page = _int_param(query, "per_page", DEFAULT_PER_PAGE)
    number = _int_param(query, "page", 1)
    start = (number - 1) * per_page
    if start != 0 and start >= len(items):
        raise PageError(f"invalid request: page: {number}, per_page: {per_page}")
    end = min(start + per_page, len(items))
    next_page = number + 1 if number * per_page < len(items) else 1
    return items[start:end], next_page
