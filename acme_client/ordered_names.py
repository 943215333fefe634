"""Which names an ACME resolver orders: a public CA (Let's Encrypt, ZeroSSL...) is never asked for a name
it refuses by policy (``.lan``, single labels, a wildcard of a single label like ``*.com``...); IP
addresses are left out for every CA (no RFC 8738 identifiers); a wildcard only by a resolver with
``dnsChallenge`` (RFC 8555 section 7.1.3: DNS-01 is the only challenge that can prove one)."""

from __future__ import annotations

import ipaddress

__all__ = ["why_left_out", "why_not_public"]

_PRIVATE_SUFFIXES = (
    ".local",
    ".localhost",
    ".internal",
    ".lan",
    ".home.arpa",
    ".test",
    ".example",
    ".invalid",
)


def why_not_public(name: str) -> str | None:
    """Why no public CA would issue for ``name`` (None when it could)."""
    n = name.lower().rstrip(".")
    try:
        ipaddress.ip_address(n.strip("[]"))
        return "an IP address"
    except ValueError:
        pass
    if "." not in n:
        return "a single-label name"
    if n.startswith("*.") and "." not in n[2:]:  # *.com: every name of a top-level domain
        return "a wildcard of a single-label name (a whole top-level domain)"
    for suffix in _PRIVATE_SUFFIXES:
        if n.endswith(suffix) or n == suffix[1:]:
            return f"a {suffix} name"
    return None


def why_left_out(name: str, public_ca: bool, dns01: bool = False) -> str | None:
    """Why no order is placed for ``name`` (None: it is ordered). ``dns01``: the resolver answers DNS-01
    (its ``dnsChallenge`` is set), so it can order a wildcard."""
    try:
        ipaddress.ip_address(name.strip("[]"))
        return "an IP address: IP identifiers (RFC 8738) are not ordered; an internalCA resolver issues them"
    except ValueError:
        pass
    if "*" in name:
        if not name.startswith("*.") or "*" in name[2:] or not name[2:].strip("."):
            return "a wildcard other than '*.' as the whole first label, which no CA issues"
        if not dns01:
            return (
                "a wildcard: it needs the DNS-01 challenge, the only one that can prove a wildcard; set the "
                "resolver's dnsChallenge (its provider writes the TXT records)"
            )
    if not public_ca:
        return None
    why = why_not_public(name)
    return None if why is None else f"{why}, which a public CA does not certify"
