"""One container's ``traefik.*`` / ``dockroute.*`` labels → a sorted-out record and the nested dict of a
dynamic configuration.

Labels are flat (``traefik.http.routers.app.tls.domains[0].main=example.org``); the parser reads nested
dicts. This module tokenises label keys (dots, ``[n]`` list indexes), folds their case with
:func:`discover.values.fold_key` (keys are case-insensitive, as Traefik's decoder makes them), builds the
tree, and remembers which label each path came from so that an error deep in the parser can name the
label the user wrote. Container-level labels (``enable``, ``docker.network``) are picked out here too.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from discover.readers import ConfigError, Key
from discover.values import find_key, fold_key, parse_bool

__all__ = ["PREFIXES", "Labels", "Node", "collect", "fold_path", "label_for", "map_at", "to_data"]

# Later prefixes win when both give the same key.
PREFIXES: tuple[str, ...] = ("traefik.", "dockroute.")

_INDEX = re.compile(r"^(.*)\[(\d+)\]$")


def _split(rest: str) -> list[Key]:
    """``tls.domains[0].main`` → ``["tls", "domains", 0, "main"]``."""
    out: list[Key] = []
    for part in rest.split("."):
        m = _INDEX.match(part)
        if m and m.group(1):
            out.extend((m.group(1), int(m.group(2))))
        else:
            out.append(part)
    return out


def fold_path(keys: Sequence[Key]) -> tuple[Key, ...]:
    """A path with every key folded: the index under which labels and their origins are kept."""
    return tuple(fold_key(k) for k in keys)


@dataclass
class Node:
    """One key of the label tree: a value, sub-keys, or (``healthcheck=true`` plus sub-keys) both."""

    value: str | None = None
    label: str | None = None
    children: dict[Key, tuple[Key, Node]] = field(default_factory=dict)  # folded key → (raw key, node)


def _insert(root: Node, keys: Sequence[Key], value: str, label: str) -> None:
    node = root
    for k in keys:
        fk = fold_key(k)
        if fk not in node.children:
            node.children[fk] = (k, Node())
        node = node.children[fk][1]
    node.value, node.label = value, label


def to_data(node: Node, keys: tuple[Key, ...], path: str) -> Any:
    """The tree as plain dicts, lists and strings, keys as first written. A key may carry a value and
    sub-keys only when the value is a true boolean (``sticky.cookie=true`` and ``sticky.cookie.name=x``)."""
    if not node.children:
        return node.value
    if node.value is not None and parse_bool(node.value) is not True:
        raise ConfigError(path, f"has both a value ({node.value!r}) and sub-keys", keys=keys)
    items = list(node.children.values())
    ints = [k for k, _ in items if isinstance(k, int)]
    if ints and len(ints) != len(items):
        raise ConfigError(path, "mixes list indexes [n] and names", keys=keys)
    if ints:
        return [to_data(n, (*keys, k), f"{path}[{k}]") for k, n in sorted(items, key=lambda item: item[0])]
    return {k: to_data(n, (*keys, k), f"{path}.{k}") for k, n in items}


@dataclass
class Labels:
    """One container's labels under the prefixes, sorted out."""

    enable: tuple[str, str] | None = None  # (value, label)
    network: tuple[str, str] | None = None
    http: Node = field(default_factory=Node)
    origins: dict[tuple[Key, ...], str] = field(default_factory=dict)  # folded path under http → label
    warnings: list[str] = field(default_factory=list)
    error: str | None = None
    tcp_udp: bool = False  # has traefik.tcp.* or traefik.udp.* labels
    l4: Node = field(default_factory=Node)  # the tcp.* and udp.* labels, as ``http`` (children tcp, udp)
    l4_origins: dict[tuple[Key, ...], str] = field(default_factory=dict)  # folded path from tcp/udp → label
    lbswarm: tuple[str, str] | None = None  # swarm: (value, label) of swarm.lbswarm / docker.lbswarm


def collect(labels: Mapping[str, str], swarm: bool = False) -> Labels:
    """Sort a container's labels out: ``dockroute.`` wins over ``traefik.`` on the same (folded) key.

    ``swarm``: a swarm service's labels, read as Traefik's swarm provider reads them (``swarm.network``,
    ``swarm.lbswarm``, and the deprecated ``docker.network``/``docker.lbswarm``, but not both kinds)."""
    entries: dict[tuple[Key, ...], tuple[list[Key], str, str]] = {}
    for prefix in PREFIXES:
        for label in sorted(labels):
            if not fold_key(label).startswith(prefix):
                continue
            keys = _split(label[len(prefix) :])
            entries[fold_path(keys)] = (keys, labels[label], label)
    out = Labels()
    for low, (keys, value, label) in sorted(entries.items(), key=lambda e: e[1][2]):
        if swarm and low[0] in ("docker", "swarm"):
            _swarm_one(out, low, value, label)
        else:
            _sort_one(out, low, keys, value, label)
    if swarm:
        _swarm_check(out, entries)
    return out


def _swarm_one(out: Labels, low: tuple[Key, ...], value: str, label: str) -> None:
    """A swarm service's ``swarm.*`` / ``docker.*`` label (Traefik's extractSwarmLabels): network and
    lbswarm act; ``docker.allownonrunning`` is read by Traefik and not used for swarm; anything else is
    an error, as Traefik's decoder refuses an unknown field."""
    if low[1:] == ("network",):
        out.network = (value, label)
    elif low[1:] == ("lbswarm",):
        out.lbswarm = (value, label)
    elif low == ("docker", "allownonrunning"):
        out.warnings.append(f"label {label}: not used by the swarm provider; ignored")
    elif out.error is None:
        out.error = f"label {label}: unknown key; expected {low[0]}.network or {low[0]}.lbswarm"


def _swarm_check(out: Labels, entries: Mapping[tuple[Key, ...], tuple[list[Key], str, str]]) -> None:
    """Traefik refuses a service with both ``traefik.docker.*`` and ``traefik.swarm.*`` labels, and warns
    that the first are deprecated for swarm."""
    docker = sorted(lbl for low, (_, _, lbl) in entries.items() if low[0] == "docker")
    if not docker:
        return
    if any(low[0] == "swarm" for low in entries):
        out.error = out.error or (
            f"both Docker and Swarm labels are defined ({docker[0]} and a swarm.* label); use swarm.* only"
        )
    else:
        out.warnings.append(
            f"label {docker[0]}: docker.* labels are deprecated for the swarm provider; use swarm.* instead"
        )


def _sort_one(out: Labels, low: tuple[Key, ...], keys: list[Key], value: str, label: str) -> None:
    head = low[0]
    if low == ("enable",):
        out.enable = (value, label)
    elif head == "docker":
        if low == ("docker", "network"):
            out.network = (value, label)
        elif low in (("docker", "allownonrunning"), ("docker", "lbswarm")):
            out.warnings.append(f"label {label}: not supported; ignored")
        elif out.error is None:
            out.error = f"label {label}: unknown key; expected docker.network"
    elif head == "http":
        if len(keys) < 2:
            expected = "expected http.routers, http.services or http.middlewares"
            out.error = out.error or f"label {label}: {expected}"
            return
        _insert(out.http, keys[1:], value, label)
        out.origins[low[1:]] = label
    elif head in ("tcp", "udp"):
        out.tcp_udp = True
        _insert(out.l4, keys, value, label)  # read by discover.docker_l4
        out.l4_origins[low] = label
    elif head == "tls":
        _note(out, "tls.* labels (TLS options, stores) are not read from labels; define them in a file")
    else:
        out.warnings.append(f"label {label}: unknown key; ignored")


def _note(out: Labels, note: str) -> None:
    if note not in out.warnings:
        out.warnings.append(note)


def label_for(origins: Mapping[tuple[Key, ...], str], keys: Sequence[Key]) -> str | None:
    """The label behind a path (keys under ``http``): itself, else one below it, else one above it."""
    low = fold_path(keys)
    if low in origins:
        return origins[low]
    below = sorted(lbl for path, lbl in origins.items() if path[: len(low)] == low)
    if below:
        return below[0]
    for n in range(len(low) - 1, 0, -1):
        if low[:n] in origins:
            return origins[low[:n]]
    return None


def map_at(
    d: dict[Key, Any], name: str, keys: tuple[Key, ...], path: str
) -> tuple[Key, dict[Key, Any]] | None:
    """The sub-dict of ``d`` named ``name`` (any case) with its key as written; ``None`` when absent."""
    k = find_key(d, name)
    if k is None:
        return None
    v = d[k]
    if not isinstance(v, dict):
        raise ConfigError(f"{path}.{name}", f"expected sub-keys, got {v!r}", keys=(*keys, k))
    return k, v


def bind_only_service(router: dict[Any, Any], services: Mapping[Any, Any]) -> str | None:
    """Bind a label router without a service to the container's only one (Traefik's default, for HTTP,
    TCP and UDP alike); why it cannot be (several services, named), or None."""
    key = find_key(router, "service")
    if key is not None and str(router[key] or "").strip():
        return None
    if len(services) > 1:
        return f"no service label and several services ({', '.join(sorted(map(str, services)))})"
    router[key or "service"] = next(iter(services))
    return None
