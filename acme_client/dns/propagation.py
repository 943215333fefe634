"""Waiting until the CA can see a DNS-01 record, before it is asked to look.

A CA asks the zone's authoritative servers (through its own resolvers, without their caches for a new
name), and any of them may be asked: a record on the primary only fails validation when the CA lands on
a secondary that has not caught up. So, as lego does, after ``delayBeforeChecks`` every authoritative
server of the zone (each NS at its addresses, port 53: IPv4 first, the first address answering counts)
is asked directly, without recursion, until each answers with every value of the order, polling every
``polling_interval`` seconds up to the provider's ``propagation_timeout``. With ``requireAllRNS`` the
recursive resolvers must answer too; ``disableANSChecks`` skips the authoritative servers,
``disableChecks`` skips everything (the delay still applies). A record not seen in time is a DnsError
naming the name and the server. The lookup of the zone's NS and their addresses is retried the same way
(a timeout or SERVFAIL there is "not yet", as in lego's ``wait.For``; the last error at the deadline).

Everything here blocks: worker threads only.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import dns.name
import dns.rdatatype

from acme_client.dns import zone as zones
from acme_client.dns.base import DnsChallengeSettings, DnsError, TxtRecord

__all__ = ["authoritative_servers", "wait_for_records"]

_MAX_QUERY_TIMEOUT = 5.0


@dataclass(frozen=True)
class _Check:
    record: TxtRecord
    label: str  # how the error names the server: "ns1.example.com. (192.0.2.1:53, [2001:db8::1]:53)"
    servers: tuple[zones.Server, ...]  # one server's addresses: the first that answers decides
    recursion: bool


def authoritative_servers(
    zone: str, among: Sequence[zones.Server], timeout: float = zones.DEFAULT_QUERY_TIMEOUT
) -> list[tuple[str, tuple[zones.Server, ...]]]:
    """``(NS name, its addresses on port 53, IPv4 first)`` for every NS of ``zone``, looked up through
    ``among``; DnsError when the zone has none or one has no address.

    Each NS is one server however many addresses it has, as lego dials it by name: a host without IPv6
    (many homes) must not wait for an answer over IPv6."""
    zname = dns.name.from_text(zone)
    response = zones.query(zname, "NS", among, timeout)
    names = [
        r.target
        for rrset in response.answer
        if rrset.name == zname and rrset.rdtype == dns.rdatatype.NS
        for r in rrset
    ]
    if not names:
        raise DnsError(f"zone {zone}: no NS records ({', '.join(map(zones.describe, among))})")
    out = []
    for ns in names:
        addresses = _glue(response, ns) or _lookup_addresses(ns, among, timeout)
        if not addresses:
            raise DnsError(f"zone {zone}: its nameserver {ns} has no address")
        addresses.sort(key=lambda a: ":" in a)  # IPv4 first
        out.append((ns.to_text(), tuple((address, 53) for address in addresses)))
    return out


def _glue(response, ns: dns.name.Name) -> list[str]:
    return [
        r.address
        for rrset in response.additional
        if rrset.name == ns and rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA)
        for r in rrset
    ]


def _lookup_addresses(ns: dns.name.Name, among: Sequence[zones.Server], timeout: float) -> list[str]:
    """A and AAAA of ``ns``; a failed lookup of one type is fine when the other gives an address."""
    found: list[str] = []
    failed: DnsError | None = None
    for rdtype in ("A", "AAAA"):
        try:
            response = zones.query(ns, rdtype, among, timeout)
        except DnsError as exc:
            failed = failed or exc
            continue
        found += [
            r.address
            for rrset in response.answer
            if rrset.rdtype == dns.rdatatype.from_text(rdtype)
            for r in rrset
        ]
    if not found and failed is not None:
        raise failed
    return found


def _answer(check: _Check, timeout: float) -> str | None:
    """None when ``check.servers`` answer the record's value, else what they answered instead."""
    try:
        response = zones.query(check.record.fqdn, "TXT", check.servers, timeout, recursion=check.recursion)
    except DnsError as exc:
        return str(exc).split(": ", 1)[-1]
    qname = dns.name.from_text(check.record.fqdn)
    values = [
        b"".join(r.strings).decode("ascii", "replace")
        for rrset in response.answer
        if rrset.name == qname and rrset.rdtype == dns.rdatatype.TXT
        for r in rrset
    ]
    if check.record.value in values:
        return None
    return f"it answers {', '.join(values)}" if values else "no TXT record there yet"


def _checks(
    records: Sequence[TxtRecord],
    settings: DnsChallengeSettings,
    ns_of: dict[str, list[tuple[str, tuple[zones.Server, ...]]]],
) -> list[_Check]:
    """What to ask about ``records``; ``ns_of`` caches each zone's servers across tries (a failed lookup
    raises DnsError and is asked again at the next poll, the zones already found are not)."""
    among = zones.servers(settings.resolvers)
    checks: list[_Check] = []
    for record in records:
        if not settings.disable_ans_checks:
            if record.zone not in ns_of:
                ns_of[record.zone] = authoritative_servers(record.zone, among)
            for ns, addresses in ns_of[record.zone]:
                label = f"{ns} ({', '.join(map(zones.describe, addresses))})"
                checks.append(_Check(record, label, addresses, False))
        if settings.require_all_rns:
            checks += [_Check(record, f"resolver {zones.describe(s)}", (s,), True) for s in among]
    return checks


def wait_for_records(
    records: Sequence[TxtRecord],
    settings: DnsChallengeSettings,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Block until every server that must see ``records`` answers each value (see the module's doc)."""
    if settings.delay_before_checks > 0:
        sleep(settings.delay_before_checks)
    if settings.disable_checks or not records:
        return
    provider = settings.provider
    deadline = clock() + provider.propagation_timeout
    ns_of: dict[str, list[tuple[str, tuple[zones.Server, ...]]]] = {}
    pending: list[_Check] | None = None
    while True:
        if pending is None:
            try:
                pending = _checks(records, settings, ns_of)
            except DnsError:  # the NS lookup failed this time: "not yet", asked again at the next poll
                left = deadline - clock()
                if left <= 0:
                    raise  # the last error, at the deadline
                sleep(min(provider.polling_interval, left))
                continue
        why: dict[_Check, str] = {}
        for check in pending:
            left = deadline - clock()
            answer = _answer(check, max(0.5, min(_MAX_QUERY_TIMEOUT, left)))
            if answer is not None:
                why[check] = answer
        pending = list(why)
        if not pending:
            return
        left = deadline - clock()
        if left <= 0:
            first = pending[0]
            more = f" (and {len(pending) - 1} more)" if len(pending) > 1 else ""
            raise DnsError(
                f"TXT {first.record.fqdn} not seen at {first.label} within "
                f"{provider.propagation_timeout:g}s: {why[first]}{more}"
            )
        sleep(min(provider.polling_interval, left))
