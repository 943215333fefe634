"""Options of the access middlewares (``ipAllowList``/``ipWhiteList``, ``inFlightReq``, ``rateLimit``),
declared as :mod:`discover.middlewares.fields` says.

What Traefik refuses when it builds these middlewares (an address range that does not parse, two source
criteria at once, an ``ipv6Subnet`` outside 1..128, a negative period) is refused here, when the
configuration is read, so a mistake disables the routers using the middleware with the option named,
never a request. The router side is ``router/middlewares/{ip_allow_list,in_flight_req,rate_limit,
source}.py``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from http import HTTPStatus

from discover.middlewares.fields import BOOL, DURATION, INT, LIST, SECTION, STR, check, option

__all__ = [
    "IPAllowList",
    "IPStrategy",
    "IPWhiteList",
    "InFlightReq",
    "Network",
    "RateLimit",
    "SourceCriterion",
    "TYPES",
    "parse_networks",
]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_network(text: str) -> Network | None:
    """An address (``10.0.0.1``, ``::1``) or a CIDR range (``10.0.0.0/8``, host bits allowed) as Go's
    ``net.ParseIP``/``net.ParseCIDR`` read them; None when it is neither (a netmask after the slash, a
    zone, a name)."""
    text = text.strip()
    if not text or "%" in text:
        return None
    _addr, slash, bits = text.partition("/")
    if slash and not (bits.isdigit() and bits.isascii()):
        return None
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None


def parse_networks(entries: Iterable[str]) -> tuple[Network, ...]:
    """Every entry parsed (:func:`parse_network`); raises ValueError naming the first that does not."""
    out = []
    for entry in entries:
        net = parse_network(entry)
        if net is None:
            raise ValueError(f"{entry!r} is neither an IP address nor a CIDR range")
        out.append(net)
    return tuple(out)


def _network_problems(key: str, entries: tuple[str, ...]) -> Iterator[tuple[str, str]]:
    try:
        parse_networks(entries)
    except ValueError as exc:
        yield key, str(exc)


@dataclass(frozen=True, slots=True)
class IPStrategy:
    """``ipStrategy``: which address is the client's. ``depth`` > 0 takes the X-Forwarded-For entry at
    that position from the right (and wins over ``excludedIPs``); ``excludedIPs`` takes the right-most
    entry not in those ranges; neither takes the connection's address. ``ipv6Subnet`` groups an IPv6
    client with its subnet (for ``depth`` and the connection's address, as Traefik)."""

    depth: int = option("depth", INT, 0, minimum=0)
    excluded_ips: tuple[str, ...] = option("excludedIPs", LIST)
    ipv6_subnet: int | None = option("ipv6Subnet", INT, None)

    def problems(self) -> Iterator[tuple[str, str]]:
        yield from _network_problems("excludedIPs", self.excluded_ips)
        if self.ipv6_subnet is not None:
            yield from check(
                0 < self.ipv6_subnet <= 128, "ipv6Subnet", f"must be within 1..128, got {self.ipv6_subnet}"
            )


@dataclass(frozen=True, slots=True)
class SourceCriterion:
    """``sourceCriterion``: what groups requests as one source (for ``rateLimit``, ``inFlightReq``); at
    most one of the three, as Traefik requires."""

    ip_strategy: IPStrategy | None = option("ipStrategy", SECTION, section=IPStrategy)
    request_header_name: str = option("requestHeaderName", STR, "")
    request_host: bool = option("requestHost", BOOL, False)

    def problems(self) -> Iterator[tuple[str, str]]:
        chosen = [
            name
            for name, on in (
                ("ipStrategy", self.ip_strategy is not None),
                ("requestHeaderName", bool(self.request_header_name)),
                ("requestHost", self.request_host),
            )
            if on
        ]
        if len(chosen) > 1:
            yield chosen[1], f"{chosen[0]} and {chosen[1]} are mutually exclusive"

    @property
    def empty(self) -> bool:
        """Nothing chosen: the middleware's own default applies."""
        return self.ip_strategy is None and not self.request_header_name and not self.request_host


@dataclass(frozen=True, slots=True)
class IPWhiteList:
    """``ipWhiteList`` (Traefik v2's name, deprecated): ``ipAllowList`` always answering 403."""

    source_range: tuple[str, ...] = option("sourceRange", LIST)
    ip_strategy: IPStrategy | None = option("ipStrategy", SECTION, section=IPStrategy)

    def problems(self) -> Iterator[tuple[str, str]]:
        yield from check(bool(self.source_range), "sourceRange", "is empty: no client would be allowed")
        yield from _network_problems("sourceRange", self.source_range)


@dataclass(frozen=True, slots=True)
class IPAllowList:
    """``ipAllowList``: only clients within ``sourceRange`` pass; others get ``rejectStatusCode`` (403
    when 0 or unset)."""

    source_range: tuple[str, ...] = option("sourceRange", LIST)
    ip_strategy: IPStrategy | None = option("ipStrategy", SECTION, section=IPStrategy)
    reject_status_code: int = option("rejectStatusCode", INT, 0)

    def problems(self) -> Iterator[tuple[str, str]]:
        yield from check(bool(self.source_range), "sourceRange", "is empty: no client would be allowed")
        yield from _network_problems("sourceRange", self.source_range)
        code = self.reject_status_code
        if code != 0:
            yield from check(_known_status(code), "rejectStatusCode", f"invalid HTTP status code {code}")


def _known_status(code: int) -> bool:
    """Go's ``http.StatusText(code) != ""``: a status with a standard name."""
    try:
        HTTPStatus(code)
    except ValueError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class InFlightReq:
    """``inFlightReq``: at most ``amount`` requests of one source at a time (the source is the request's
    host unless ``sourceCriterion`` says otherwise, as Traefik); the excess gets 429."""

    amount: int = option("amount", INT, 0, minimum=0)
    source_criterion: SourceCriterion | None = option("sourceCriterion", SECTION, section=SourceCriterion)


@dataclass(frozen=True, slots=True)
class RedisTLS:
    """``rateLimit.redis.tls``: declared so the options are recognised; ``redis`` itself is refused."""

    ca: str = option("ca", STR, "")
    cert: str = option("cert", STR, "")
    key: str = option("key", STR, "")
    insecure_skip_verify: bool = option("insecureSkipVerify", BOOL, False)
    ca_optional: bool = option("caOptional", BOOL, False)


@dataclass(frozen=True, slots=True)
class RateLimitRedis:
    """``rateLimit.redis``: Traefik's shared limiter. dockroute keeps buckets in memory only, so a
    configuration that sets it is refused by name rather than limited per process without saying so."""

    endpoints: tuple[str, ...] = option("endpoints", LIST)
    tls: RedisTLS | None = option("tls", SECTION, section=RedisTLS)
    username: str = option("username", STR, "")
    password: str = option("password", STR, "")
    db: int = option("db", INT, 0)
    pool_size: int = option("poolSize", INT, 0)
    min_idle_conns: int = option("minIdleConns", INT, 0)
    max_active_conns: int = option("maxActiveConns", INT, 0)
    read_timeout: float = option("readTimeout", DURATION, 0.0)
    write_timeout: float = option("writeTimeout", DURATION, 0.0)
    dial_timeout: float = option("dialTimeout", DURATION, 0.0)


@dataclass(frozen=True, slots=True)
class RateLimit:
    """``rateLimit``: a token bucket per source filling at ``average``/``period`` (0: no limit) and
    holding ``burst`` (at least 1) requests."""

    average: int = option("average", INT, 0, minimum=0)
    period: float = option("period", DURATION, 0.0, minimum=0)
    burst: int = option("burst", INT, 1)
    source_criterion: SourceCriterion | None = option("sourceCriterion", SECTION, section=SourceCriterion)
    redis: RateLimitRedis | None = option("redis", SECTION, section=RateLimitRedis)

    def problems(self) -> Iterator[tuple[str, str]]:
        yield from check(
            self.redis is None,
            "redis",
            "not supported: dockroute keeps rate-limit buckets in memory, per process",
        )


# Traefik's type name → its options dataclass; collected by discover.middlewares.registry.
TYPES: dict[str, type] = {
    "ipAllowList": IPAllowList,
    "ipWhiteList": IPWhiteList,
    "inFlightReq": InFlightReq,
    "rateLimit": RateLimit,
}
