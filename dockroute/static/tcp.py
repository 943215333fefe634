"""Traefik's static ``tcpServersTransport``: how TCP services without a ``serversTransport`` of their own
reach their servers (``dialTimeout``, ``dialKeepAlive``, ``terminationDelay``, ``tls.insecureSkipVerify``
and ``tls.rootCAs``), as Traefik's ``default@internal`` TCP transport.

Durations keep Go's signs: a negative ``dialKeepAlive`` turns keep-alive probes off and a negative
``terminationDelay`` waits forever, so they are read here rather than with the non-negative reader.
``tls.spiffe`` stops the start, naming it: dockroute cannot check SPIFFE identities, and ignoring the key
would skip a check the user asked for.
"""

from __future__ import annotations

from typing import Any

from discover.model_tcp import TCPServersTransport, TCPServersTransportTLS
from discover.parse import parse_duration
from dockroute.static.readers import Reader
from dockroute.static.settings import StaticConfigError
from dockroute.static.tree import OFF, get, got, where

__all__ = ["read_tcp_transport"]


def _signed(r: Reader, key: str, default: float) -> float:
    found = r.leaf(key)
    if found is None:
        return default
    path, value, origin = found
    try:
        return parse_duration(value)
    except ValueError:
        raise StaticConfigError(
            path,
            f"expected a duration like '10s' or '500ms', got {got(value)}{where(origin)}",
        ) from None


def read_tcp_transport(tree: Any) -> TCPServersTransport:
    """The default TCP transport (Traefik's defaults when the section is absent)."""
    d = TCPServersTransport()
    if tree is None or tree is OFF:
        return d
    r = Reader(tree, "tcpServersTransport")
    tls = None
    if r.has("tls") and get(tree, "tls") is not OFF:
        t = r.sub("tls")
        if t.has("spiffe") and get(t.tree, "spiffe") is not OFF:
            raise StaticConfigError(
                "tcpServersTransport.tls.spiffe",
                "SPIFFE is not supported: dockroute cannot verify backends' SPIFFE identities; remove it, or "
                f"trust the backends' CA with rootCAs{where(t.sub('spiffe').origin('trustDomain'))}",
            )
        tls = TCPServersTransportTLS(
            insecure_skip_verify=t.flag("insecureSkipVerify", False),
            root_cas=tuple(item for item, _ in t.items("rootCAs")),
        )
    timeout = _signed(r, "dialTimeout", d.dial_timeout)
    if timeout < 0:
        raise StaticConfigError("tcpServersTransport.dialTimeout", f"must not be negative, got {timeout}")
    return TCPServersTransport(
        dial_timeout=timeout,
        dial_keep_alive=_signed(r, "dialKeepAlive", d.dial_keep_alive),
        termination_delay=_signed(r, "terminationDelay", d.termination_delay),
        tls=tls,
    )
