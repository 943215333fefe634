"""Which names an ACME resolver orders: a public CA (Let's Encrypt, ZeroSSL...) is never asked for a name
it refuses by policy (``.lan``, single labels...); IP addresses and wildcards are left out for every CA
(no RFC 8738 identifiers, no DNS-01 yet)."""

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
    for suffix in _PRIVATE_SUFFIXES:
        if n.endswith(suffix) or n == suffix[1:]:
            return f"a {suffix} name"
    return None


def why_left_out(name: str, public_ca: bool) -> str | None:
    """Why no order is placed for ``name`` (None: it is ordered)."""
    try:
        ipaddress.ip_address(name.strip("[]"))
        return "an IP address: IP identifiers (RFC 8738) are not ordered; an internalCA resolver issues them"
    except ValueError:
        pass
    if name.startswith("*."):
        return "a wildcard: it needs the DNS-01 challenge, which is not supported yet"
    if not public_ca:
        return None
    why = why_not_public(name)
    return None if why is None else f"{why}, which a public CA does not certify"
