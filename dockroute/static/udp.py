"""The static keys of UDP entry points (an ``address`` ending in ``/udp``): ``udp.timeout``, and the keys
that have no effect there, reported by name.

A UDP entry point carries datagrams for ``udp.routers`` only: HTTP settings, the responding timeouts,
forwarded headers, PROXY protocol and per-entry-point observability do nothing there in Traefik (its UDP
entry point reads only ``udp.timeout``, ``transport.lifeCycle`` and ``reusePort``). A file written for
Traefik must still load, so those keys are accepted and each one set is named in a start-up warning;
``udp.timeout`` set on a TCP entry point is reported the same way. ``asDefault`` is not for UDP routers,
but Traefik counts it anyway when it decides whether some entry point is marked: set on a UDP entry
point, it takes the default entry points away from HTTP and TCP routers naming none; that is warned.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from dockroute.static.readers import Reader
from dockroute.static.settings import StaticConfigError
from dockroute.static.tree import OFF, Val, get, join, where
from router.settings import EntryPoint

__all__ = ["DEFAULT_UDP_TIMEOUT", "udp_timeout", "udp_warnings"]

DEFAULT_UDP_TIMEOUT = 3.0  # Traefik's DefaultUDPTimeout

# Keys of an entry point that a UDP one does not use (Traefik's UDPEntryPoint reads udp and lifeCycle).
_NOT_FOR_UDP = (
    ("http",),
    ("forwardedHeaders",),
    ("proxyProtocol",),
    ("observability",),
    ("transport", "respondingTimeouts"),
)


def udp_timeout(r: Reader) -> float:
    """``entryPoints.<ep>.udp.timeout``: a session idle this long (no datagram either way) is forgotten.
    Traefik refuses to listen with a timeout of zero ("timeout should be greater than zero"): so does the
    start here, naming the key."""
    seconds = r.sub("udp").duration("timeout", DEFAULT_UDP_TIMEOUT)
    if seconds <= 0:
        raise StaticConfigError(
            f"{r.path}.udp.timeout",
            f"must be more than 0 (Traefik's default: 3s){where(r.sub('udp').origin('timeout'))}",
        )
    return seconds


def udp_warnings(
    entries: dict[str, Any], udp_names: set[str], entry_points: Iterable[EntryPoint] = ()
) -> list[str]:
    """Messages for keys set on an entry point that has no use for them: TCP/HTTP keys on the UDP entry
    points ``udp_names``, ``udp.timeout`` on the others (``entries``: the merged ``entryPoints`` tree), and
    ``asDefault`` on a UDP one among the built ``entry_points``."""
    out = []
    eps = tuple(entry_points)
    others = [ep.name for ep in eps if ep.as_default and not ep.udp]
    for ep in eps:
        if ep.udp and ep.as_default:
            then = f"only to {', '.join(others)}" if others else "nowhere: they are not routed"
            out.append(
                f"entryPoints.{ep.name}.asDefault is set on a UDP entry point: UDP routers do not use it, "
                "but as in Traefik it counts as marking default entry points, so HTTP and TCP routers "
                f"naming no entry point go {then}"
            )
    for name, tree in entries.items():
        if tree is OFF or not isinstance(tree, dict):
            continue
        path = f"entryPoints.{name}"
        if name in udp_names:
            for keys in _NOT_FOR_UDP:
                if _is_set(get(tree, *keys)):
                    key = join(path, ".".join(keys))
                    out.append(f"{key} has no effect on a UDP entry point (address ending in /udp); ignored")
        elif _is_set(get(tree, "udp")):
            out.append(f"{path}.udp has no effect on a TCP entry point (only on an address ending in /udp)")
    return out


def _is_set(node: Any) -> bool:
    """Whether a key of the merged tree was written (an empty section too: ``proxyProtocol: {}`` turns it
    on in Traefik); a section switched off is not."""
    if isinstance(node, dict):
        return not node or any(_is_set(v) for v in node.values())
    return isinstance(node, Val)
