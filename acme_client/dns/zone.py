"""Where a DNS-01 record goes: the name (after ``_acme-challenge`` delegation) and the zone holding it.

Done once for every provider, as lego does it: ``_acme-challenge.<domain>`` is followed through CNAMEs
(a common setup delegates it to a zone that is cheap or safe to update, keeping the real zone's
credentials out of the proxy), then the zone is the nearest name, walking up from there, that has its own
SOA record. Queries go to ``dnsChallenge.resolvers`` (``host:port``), or to the system's resolvers when
none are configured; each is asked in turn until one gives an answer (NOERROR or NXDOMAIN).

Everything here blocks: worker threads only. Errors name the name and every server asked.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Sequence

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.resolver

from acme_client.dns.base import DnsError

__all__ = [
    "DEFAULT_QUERY_TIMEOUT",
    "address_of",
    "describe",
    "parse_server",
    "Server",
    "challenge_target",
    "find_zone",
    "follow_cname",
    "query",
    "servers",
]

Server = tuple[str, int]  # (address, port)
DEFAULT_QUERY_TIMEOUT = 5.0
_MAX_CNAMES = 50  # lego's limit on a CNAME chain
_FALLBACK = (("8.8.8.8", 53), ("8.8.4.4", 53))  # lego's defaultNameservers (google-public-dns-a/b)


_HOSTNAME = re.compile(
    r"(?=.{1,253}\.?$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9])?\.)*[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9])?\.?", re.I
)


def parse_server(entry: str) -> Server:
    """A DNS server as configured (``dnsChallenge.resolvers``, ``RFC2136_NAMESERVER``): ``host``,
    ``host:port``, ``[v6]:port`` or a bare IPv6 address, port 53 by default (lego's ``ParseNameservers``).
    A host name is kept as it is (looked up when the server is asked, as Go dials it). ValueError saying
    what is wrong otherwise; the one parser of these, for the static configuration and the providers."""
    text = entry.strip()
    host, port = text, "53"
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(f"{entry!r} is not host:port ([address]:port for IPv6)")
        port = rest[1:] if rest else port
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    if not (port.isascii() and port.isdigit() and len(port) <= 5 and 0 < int(port) <= 65535):
        raise ValueError(f"{entry!r}: the port must be 1-65535")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        if (
            text.startswith("[")
            or not _HOSTNAME.fullmatch(host)
            or host.rstrip(".").rsplit(".")[-1].isdigit()
        ):
            raise ValueError(f"{entry!r} is neither an IP address nor a host name") from None
        return host.lower().rstrip("."), int(port)
    return str(ip), int(port)


def address_of(host: str, port: int) -> str:
    """``host``'s address (itself when it is one); a name is looked up now, at each use: it may move."""
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        pass
    try:
        return str(socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0][4][0])
    except OSError as exc:
        raise DnsError(f"DNS server {host}: cannot look up its address: {exc}") from exc


def servers(configured: Sequence[str] = ()) -> list[Server]:
    """The resolvers to ask: ``configured`` (``host:port`` each), else the system's (``/etc/resolv.conf``),
    else lego's fallback (Google Public DNS) when the system names none."""
    if configured:
        try:
            parsed = [parse_server(entry) for entry in configured]
        except ValueError as exc:
            raise DnsError(f"DNS resolver {exc}") from None
        return [(address_of(host, port), port) for host, port in parsed]
    try:
        system = dns.resolver.Resolver()
    except dns.exception.DNSException:
        return list(_FALLBACK)
    return [(str(ns), system.port) for ns in system.nameservers] or list(_FALLBACK)


def describe(server: Server) -> str:
    host, port = server
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def query(
    name: str | dns.name.Name,
    rdtype: str,
    among: Sequence[Server],
    timeout: float = DEFAULT_QUERY_TIMEOUT,
    recursion: bool = True,
) -> dns.message.Message:
    """The first answer (NOERROR or NXDOMAIN) from ``among``, asked in turn; DnsError naming each server
    and what it did when none answers so."""
    failures = []
    for server in among:
        q = dns.message.make_query(name, rdtype)
        if not recursion:
            q.flags &= ~dns.flags.RD
        try:
            response, _ = dns.query.udp_with_fallback(q, server[0], timeout=timeout, port=server[1])
        except dns.exception.Timeout:
            failures.append(f"{describe(server)}: no answer within {timeout:g}s")
            continue
        except (OSError, dns.exception.DNSException) as exc:
            failures.append(f"{describe(server)}: {type(exc).__name__}: {exc}")
            continue
        if response.rcode() in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
            return response
        failures.append(f"{describe(server)}: {dns.rcode.to_text(response.rcode())}")
    raise DnsError(f"{rdtype} {name}: {'; '.join(failures) or 'no DNS servers to ask'}")


def _rrset(response: dns.message.Message, name: dns.name.Name, rdtype: dns.rdatatype.RdataType):
    for rrset in response.answer:
        if rrset.name == name and rrset.rdtype == rdtype:
            return rrset
    return None


def follow_cname(fqdn: str, among: Sequence[Server], timeout: float = DEFAULT_QUERY_TIMEOUT) -> str:
    """``fqdn`` after its CNAME chain (absolute, trailing dot): where the record really goes."""
    name = dns.name.from_text(fqdn)
    seen = {name}
    for _ in range(_MAX_CNAMES):
        rrset = _rrset(query(name, "CNAME", among, timeout), name, dns.rdatatype.CNAME)
        if rrset is None:
            break
        name = rrset[0].target
        if name in seen:
            raise DnsError(f"CNAME loop at {fqdn} (back to {name})")
        seen.add(name)
    return name.to_text()


def find_zone(fqdn: str, among: Sequence[Server], timeout: float = DEFAULT_QUERY_TIMEOUT) -> str:
    """The zone holding ``fqdn``: the nearest name at or above it with its own SOA (a name carrying a
    CNAME is no zone apex, so the walk goes on above it)."""
    name = dns.name.from_text(fqdn)
    while name != dns.name.root:
        response = query(name, "SOA", among, timeout)
        if response.rcode() == dns.rcode.NOERROR and _rrset(response, name, dns.rdatatype.SOA) is not None:
            return name.to_text()
        name = name.parent()
    raise DnsError(
        f"no zone found for {fqdn}: no SOA record at or above it ({', '.join(map(describe, among))})"
    )


def challenge_target(
    domain: str, among: Sequence[Server], timeout: float = DEFAULT_QUERY_TIMEOUT
) -> tuple[str, str]:
    """``(fqdn, zone)`` of the DNS-01 record for ``domain``: ``_acme-challenge.<domain>`` after CNAMEs,
    and its zone."""
    fqdn = follow_cname(f"_acme-challenge.{domain.rstrip('.')}.", among, timeout)
    return fqdn, find_zone(fqdn, among, timeout)
