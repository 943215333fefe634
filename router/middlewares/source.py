"""Who a request comes from, as Traefik's access middlewares decide it: ``ipStrategy`` (the client's
address) and ``sourceCriterion`` (the key a limiter counts under).

Everything is resolved when the middleware is built: networks parsed with :mod:`ipaddress` into integer
(network, mask) pairs, the strategy chosen once. Per request it is a header split and, for a range check,
one address parse and a few integer comparisons.

The X-Forwarded-For a strategy reads is the one Traefik's middlewares see: the client's own header only
when the entry point trusts the peer (``forwardedHeaders.trustedIPs``/``insecure``; otherwise Traefik has
already deleted it), several header lines joined with ", ", and a value set by an earlier ``headers``
middleware wins.

A limiter's key longer than :data:`KEY_MAX` characters (a header value or Host chosen by the client, up to
8 KB) is kept as a 16-byte BLAKE2b digest: 65536 buckets of whole 8 KB keys would hold 730 MiB.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
from collections.abc import Callable, Iterable
from socket import AF_INET, AF_INET6, inet_pton

from discover.middlewares.access import IPStrategy, SourceCriterion, parse_networks
from router.exchange import Exchange

__all__ = [
    "Checker",
    "Extractor",
    "client_ip_of",
    "ip_strategy",
    "parse_ip",
    "short_key",
    "source_extractor",
    "split_host_port",
]

log = logging.getLogger("dockroute.router")

Extractor = Callable[[Exchange], str]

_XFF = "x-forwarded-for"
_V4_MAPPED = bytes(10) + b"\xff\xff"


class Checker:
    """Whether an address is within a set of addresses and ranges (Traefik's ``ip.Checker``). An
    IPv4-mapped IPv6 address (``::ffff:10.0.0.1``) counts as its IPv4 address, as in Go."""

    __slots__ = ("_v4", "_v6")

    def __init__(self, entries: Iterable[str]) -> None:
        nets = parse_networks(entries)  # ValueError naming the entry: the caller names the option
        self._v4 = tuple(
            (int(n.network_address), int(n.netmask)) for n in nets if isinstance(n, ipaddress.IPv4Network)
        )
        self._v6 = tuple(
            (int(n.network_address), int(n.netmask)) for n in nets if isinstance(n, ipaddress.IPv6Network)
        )

    def contains(self, addr: str) -> bool | None:
        """True/False, or None when ``addr`` is not an address (empty, a name, garbage)."""
        parsed = parse_ip(addr)
        if parsed is None:
            return None
        version, value = parsed
        nets = self._v4 if version == 4 else self._v6
        return any(value & mask == network for network, mask in nets)

    def authorized(self, addr: str) -> bool:
        """Traefik's ``IsAuthorized``: a ``host:port`` is reduced to its host first."""
        return self.contains(split_host_port(addr)) is True


def parse_ip(addr: str) -> tuple[int, int] | None:
    """``(4 or 6, the address as an integer)``, or None when ``addr`` is not an address. Strict as Go's
    ``netip.ParseAddr`` (no leading zeros, no short forms); an IPv6 zone is dropped and an IPv4-mapped
    IPv6 address is its IPv4 address, as Go compares them. ``inet_pton`` is ten times quicker than
    :mod:`ipaddress` on the request path."""
    try:
        if ":" in addr:
            raw = inet_pton(AF_INET6, addr.split("%", 1)[0])
            if raw[:12] == _V4_MAPPED:
                return 4, int.from_bytes(raw[12:])
            return 6, int.from_bytes(raw)
        return 4, int.from_bytes(inet_pton(AF_INET, addr))
    except (OSError, ValueError):
        return None


def split_host_port(addr: str) -> str:
    """The host of ``host:port``/``[v6]:port`` (Go's ``net.SplitHostPort``); ``addr`` itself otherwise."""
    if addr.startswith("["):
        end = addr.find("]")
        if end > 0 and addr[end + 1 : end + 2] == ":":
            return addr[1:end]
        return addr
    if addr.count(":") == 1:
        return addr.split(":", 1)[0]
    return addr


def forwarded_for(ex: Exchange) -> str:
    """The X-Forwarded-For value Traefik's middlewares would read (see the module docstring)."""
    edit = ex.header_edits.get(_XFF)
    if edit is not None:
        return edit[1] or ""
    trusted = ex.ep.trusted
    if not (trusted and trusted.trusts(ex.client_ip)):
        return ""
    values = ex.headers.getall("X-Forwarded-For", ())
    return ", ".join(values) if len(values) > 1 else (values[0] if values else "")


def _subnet(bits: int | None) -> Callable[[str], str]:
    """``ipv6Subnet``: an IPv6 address becomes the first address of its /bits; others pass unchanged."""
    if bits is None:
        return lambda ip: ip

    def first_of_subnet(ip: str) -> str:
        if ":" not in ip:
            return ip
        try:
            return str(ipaddress.ip_network(f"{ip}/{bits}", strict=False).network_address)
        except ValueError:
            return ip

    return first_of_subnet


def client_ip_of(ex: Exchange) -> str:
    """The connection's remote address (Traefik's ``RemoteAddrStrategy``)."""
    return ex.client_ip


def ip_strategy(options: IPStrategy | None, where: str = "ipStrategy") -> Extractor:
    """The client address picker for ``options`` (None: the connection's address). ``where`` names the
    option in the one log line saying that an option is ignored as Traefik ignores it."""
    if options is None:
        return client_ip_of
    subnet = _subnet(options.ipv6_subnet)
    if options.depth > 0:
        if options.excluded_ips:
            log.warning("%s.excludedIPs is ignored: depth is set and wins, as in Traefik", where)
        depth = options.depth

        def by_depth(ex: Exchange) -> str:
            entries = forwarded_for(ex).split(",")
            if len(entries) < depth:
                return ""
            return subnet(entries[-depth].strip())

        return by_depth
    if options.excluded_ips:
        if options.ipv6_subnet is not None:
            log.warning("%s.ipv6Subnet is ignored with excludedIPs, as in Traefik", where)
        excluded = Checker(options.excluded_ips)

        def first_not_excluded(ex: Exchange) -> str:
            for entry in reversed(forwarded_for(ex).split(",")):
                entry = entry.strip()
                if entry and excluded.contains(entry) is not True:
                    return entry
            return ""

        return first_not_excluded
    if options.ipv6_subnet is None:
        return client_ip_of
    return lambda ex: subnet(ex.client_ip)


KEY_MAX = 64  # longer limiter keys are kept as a digest


def short_key(key: str) -> str:
    """``key`` itself when short, else ``"\0"`` + the hex BLAKE2b-128 of it: bounded memory per bucket
    whatever the client sends. No header value or Host holds a NUL, so a digest never equals a real key;
    a collision of distinct long keys needs 2^64 tries."""
    if len(key) <= KEY_MAX:
        return key
    return "\0" + hashlib.blake2b(key.encode("utf-8", "surrogateescape"), digest_size=16).hexdigest()


def source_extractor(criterion: SourceCriterion | None, default_host: bool, where: str) -> Extractor:
    """The key a limiter counts a request under (see :func:`short_key`). With no criterion,
    ``default_host`` picks the request's Host (``inFlightReq``, as Traefik) over the connection's address
    (``rateLimit``)."""
    if criterion is None or criterion.empty:
        if default_host:
            return _short(_request_host)
        return client_ip_of  # an address the kernel gave: always short
    if criterion.ip_strategy is not None:  # X-Forwarded-For entries are whatever the client wrote
        return _short(ip_strategy(criterion.ip_strategy, f"{where}.sourceCriterion.ipStrategy"))
    if criterion.request_header_name:
        name = criterion.request_header_name
        return _short(lambda ex: ex.header(name) or "")
    return _short(_request_host)


def _short(extract: Extractor) -> Extractor:
    if extract is client_ip_of:
        return extract

    def short_source(ex: Exchange) -> str:
        key = extract(ex)
        return key if len(key) <= KEY_MAX else short_key(key)

    return short_source


def _request_host(ex: Exchange) -> str:
    """Go's ``req.Host``: the Host header as sent (port included)."""
    return ex.host_header
