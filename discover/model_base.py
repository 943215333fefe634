"""What every part of the dynamic-configuration model shares: read-only mappings, qualified names and a
certificate's domains. HTTP (:mod:`discover.model`), TCP (:mod:`discover.model_tcp`) and UDP
(:mod:`discover.model_udp`) import it, so that none imports another's section."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

EMPTY: Mapping[str, Any] = MappingProxyType({})


def frozen_map(data: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
    """A read-only view of a copy of ``data``: the way every mapping in the model is stored."""
    return MappingProxyType(dict(data or {}))


@dataclass(frozen=True, slots=True)
class Domain:
    """A certificate's names: ``main`` and its subject alternative names."""

    main: str
    sans: tuple[str, ...] = ()


def qualify(name: str, provider: str) -> str:
    """``app`` → ``app@file``; an already qualified name is left as it is."""
    return name if "@" in name else f"{name}@{provider}"


def split_host_port(hostport: str) -> tuple[str, str]:
    """Go's ``net.SplitHostPort``, the one check Traefik makes of a TCP or UDP server's address:
    ``"10.0.0.2:53"`` → ``("10.0.0.2", "53")``, ``"[::1]:53"`` → ``("::1", "53")``, ``":53"`` →
    ``("", "53")``. As in Go, the port is not checked (callers that need a number check it) and an empty
    host is allowed; raises ValueError with Go's reason ("missing port in address", "too many colons in
    address", ...)."""
    i = hostport.rfind(":")
    if i < 0:
        raise ValueError(f"address {hostport}: missing port in address")
    j = k = 0
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise ValueError(f"address {hostport}: missing ']' in address")
        if end + 1 == len(hostport):
            raise ValueError(f"address {hostport}: missing port in address")
        if end + 1 != i:
            why = "too many colons in address" if hostport[end + 1] == ":" else "missing port in address"
            raise ValueError(f"address {hostport}: {why}")
        host = hostport[1:end]
        j, k = 1, end + 1
    else:
        host = hostport[:i]
        if ":" in host:
            raise ValueError(f"address {hostport}: too many colons in address")
    if "[" in hostport[j:]:
        raise ValueError(f"address {hostport}: unexpected '[' in address")
    if "]" in hostport[k:]:
        raise ValueError(f"address {hostport}: unexpected ']' in address")
    return host, hostport[i + 1 :]


def host_and_port(address: str) -> tuple[str, int]:
    """:func:`split_host_port` with a port number from 1 to 65535 (what a dial needs); ValueError
    otherwise."""
    host, port = split_host_port(address)
    if not (port.isascii() and port.isdigit() and len(port) <= 5 and 0 < int(port) < 65536):
        raise ValueError(f"address {address}: invalid port {port!r}")
    return host, int(port)


def host_name_error(host: str) -> str | None:
    """Why ``host`` (an IP address or a DNS name) cannot be dialled, or None: a name with an empty label
    (``a..b``), a label over 63 characters or spaces cannot be encoded for DNS (Python's resolver raises
    UnicodeError on it at each dial; Go's fails the lookup)."""
    if not host or host.startswith("[") or _is_ip(host):
        return None
    if any(c.isspace() for c in host):
        return "a host name cannot contain spaces"
    try:
        host.encode("idna")
    except UnicodeError as exc:
        reason = str(exc).rpartition("UnicodeError: ")[2].rstrip(")") or "cannot be encoded"
        return f"not a valid host name: {reason}"
    return None


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return False
    return True
