"""Which hostnames a configuration change routed or stopped routing: one INFO line each, never the table.

A user who starts a container or edits a file wants to see ``routing app.example.com → router app@docker
(container app-1), entry points web`` (or that a name went away), not a dump of every router at every
reload. The routed names of a compiled configuration are a small dict computed in the build thread; the
lines are the difference with the previous one (a set difference per apply), and the loop only logs them.
A router whose rule names no host (``PathPrefix(`/api`)``) is named by its rule.
"""

from __future__ import annotations

from collections.abc import Mapping

from discover.model import DynamicConfig
from router.compile import Compiled

__all__ = ["MAX_LINES", "Routed", "route_changes", "routed_names"]

# (hostname, or the rule of a router without Host() names; router name) → (origin, entry points)
Routed = dict[tuple[str, str], tuple[str, tuple[str, ...]]]

# At most this many lines per change, plus one summing up the rest: a first configuration of thousands of
# routers (or a provider coming back) must not hold the event loop writing thousands of lines.
MAX_LINES = 100


def routed_names(merged: DynamicConfig, compiled: Compiled) -> Routed:
    """Every routed (hostname, router) of a compiled configuration, with where the router came from."""
    out: Routed = {}
    for name, eps in compiled.entry_points.items():
        router = merged.routers.get(name)
        if router is None:
            continue
        rule = compiled.rules.get((router.rule, router.rule_syntax or "v3"))
        hosts = sorted(rule.domains) if rule is not None and rule.domains else (router.rule,)
        for host in hosts:
            out[host, name] = (router.origin, eps)
    return out


def _router(name: str, origin: str) -> str:
    return f"router {name} ({origin})" if origin else f"router {name}"


def route_changes(old: Mapping[tuple[str, str], tuple[str, tuple[str, ...]]], new: Routed) -> list[str]:
    """The log lines from ``old`` to ``new``: what stopped being routed, then what is (newly) routed,
    each in name order; a router that moved to other entry points is logged as routed again."""
    gone = sorted(k for k in old if k not in new)
    came = sorted(k for k, v in new.items() if old.get(k) != v)
    lines = []
    for host, name in gone:
        origin = old[host, name][0]
        where = f"router {name}, {origin}" if origin else f"router {name}"
        lines.append(f"no longer routing {host} ({where})")
    for host, name in came:
        origin, eps = new[host, name]
        lines.append(f"routing {host} → {_router(name, origin)}, entry points {', '.join(eps)}")
    if len(lines) > MAX_LINES:
        rest = lines[MAX_LINES:]
        more_gone = sum(1 for line in rest if line.startswith("no longer"))
        lines = lines[:MAX_LINES]
        lines.append(
            f"… and {len(rest) - more_gone} more routed, {more_gone} more no longer routed (not listed)"
        )
    return lines
