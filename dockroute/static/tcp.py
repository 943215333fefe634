"""Traefik's static ``tcpServersTransport``: how TCP services without a ``serversTransport`` of their own
reach their servers (``dialTimeout``, ``dialKeepAlive``, ``terminationDelay``, ``tls.insecureSkipVerify``
and ``tls.rootCAs``), as Traefik's ``default@internal`` TCP transport.

Durations keep Go's signs where Traefik gives them a meaning: a negative ``dialKeepAlive`` turns
keep-alive probes off and a negative ``terminationDelay`` waits forever.
``tls.spiffe`` stops the start, naming it: dockroute cannot check SPIFFE identities, and ignoring the key
would skip a check the user asked for.
"""

from __future__ import annotations

from typing import Any

from discover.model_tcp import TCPServersTransport, TCPServersTransportTLS
from dockroute.static.readers import Reader
from dockroute.static.settings import StaticConfigError
from dockroute.static.tree import OFF, get, where

__all__ = ["read_tcp_transport"]


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
    return TCPServersTransport(
        dial_timeout=r.duration("dialTimeout", d.dial_timeout),
        dial_keep_alive=r.duration("dialKeepAlive", d.dial_keep_alive, signed=True),
        termination_delay=r.duration("terminationDelay", d.termination_delay, signed=True),
        tls=tls,
    )
