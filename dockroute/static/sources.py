"""The three sources of the static configuration, each turned into the same canonical tree.

A file (YAML or TOML), ``TRAEFIK_*`` / ``DOCKROUTE_*`` variables and ``--flags`` each become a nested dict
keyed by the canonical names of :data:`~dockroute.static.schema.SCHEMA` whose leaves remember their origin;
:func:`merged_tree` layers them key by key (file < environment < flags). Nothing is typed here: a value
is checked once, by the reader, whichever source set it.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from discover.values import BOOL_WORDS, find_key, parse_bool
from dockroute.static.schema import ANY, BOOL, IGNORED, LIST, RAW_ITEM, SCHEMA, ListOf, Named
from dockroute.static.settings import StaticConfigError
from dockroute.static.tree import OFF, Indexed, Val, got, join, merge, unknown, where

__all__ = [
    "CONFIG_NAMES",
    "ENV_PREFIXES",
    "default_search_dirs",
    "find_file",
    "merged_tree",
    "split_config_flag",
]

# Looked for in this order of groups: every folder is searched for dockroute.* before any traefik.*, so
# a dockroute.yml in the working directory wins over /etc/traefik/traefik.yml.
CONFIG_NAME_GROUPS = (
    ("dockroute.yml", "dockroute.yaml", "dockroute.toml"),
    ("traefik.yml", "traefik.yaml", "traefik.toml"),
)
CONFIG_NAMES = tuple(name for group in CONFIG_NAME_GROUPS for name in group)
ENV_PREFIXES = ("TRAEFIK_", "DOCKROUTE_")  # lowest precedence first: DOCKROUTE_ wins


def merged_tree(source: str | None, flags: Sequence[str], environ: Mapping[str, str]) -> dict[str, Any]:
    """The file (if any), then the environment, then the flags, merged key by key."""
    layers: list[dict[str, Any]] = []
    if source is not None:
        layers.append(_canon(SCHEMA, _read_file(source), "", f"in {source}"))
    layers.extend(_from_env(environ, prefix) for prefix in ENV_PREFIXES)
    layers.append(_from_flags(flags))
    tree: dict[str, Any] = {}
    for layer in layers:
        tree = merge(tree, layer)
    return tree


# -- source 1: the file -------------------------------------------------------------------------------


def _read_file(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise StaticConfigError("configFile", f"cannot read {path}: {exc.strerror or exc}") from None
    if path.lower().endswith(".toml"):
        try:
            doc: Any = tomllib.loads(data.decode("utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise StaticConfigError(path, f"invalid TOML: {exc}") from None
    else:
        try:
            doc = yaml.safe_load(data)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            at = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
            raise StaticConfigError(path, f"invalid YAML: {at}{problem}") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise StaticConfigError(path, f"expected a mapping of sections at the top, got {got(doc)}")
    return doc


def _section_switch(value: Any, path: str, origin: str) -> Any:
    """A scalar given for a whole section: true = on with its defaults, false = off (Traefik's
    ``--providers.docker`` / ``--accesslog=false``), read with the one boolean parser."""
    on = parse_bool(value)
    if value is None or on is True:
        return {}
    if on is False:
        return OFF
    raise StaticConfigError(
        path, f"expected a section, or {BOOL_WORDS} to switch it, got {got(value)}{where(origin)}"
    )


def _canon(node: Any, value: Any, path: str, origin: str) -> Any:
    """A file's subtree → canonical keys; leaves wrapped in Val."""
    if node == IGNORED:
        return value if isinstance(value, dict) else _section_switch(value, path, origin)
    if node == ANY:
        return value
    if isinstance(node, str):
        return Val(value, origin)
    if isinstance(node, ListOf):
        return _canon_list(node, value, path, origin)
    if not isinstance(value, dict):
        return _section_switch(value, path, origin)
    out: dict[str, Any] = {}
    for key, sub in value.items():
        key = str(key)
        if isinstance(node, Named):
            name, child = key, node.child
        else:
            name = find_key(node, key)
            if name is None:
                raise unknown(path, key, list(node), origin)
            child = node[name]
        if find_key(out, name) is not None:
            raise StaticConfigError(
                join(path, name), f"given twice (keys are case-insensitive){where(origin)}"
            )
        if sub is None and isinstance(child, str) and child != IGNORED:
            continue  # "key:" with nothing: not set
        out[name] = _canon(child, sub, join(path, name), origin)
    return out


def _canon_list(node: ListOf, value: Any, path: str, origin: str) -> dict[str, Any]:
    """A file's list of sections → index (as text) -> canonical section, the shape flags give too."""
    if value is None:
        return {}
    if not isinstance(value, list):
        raise StaticConfigError(path, f"expected a list of sections, got {got(value)}{where(origin)}")
    out: dict[str, Any] = {}
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise StaticConfigError(f"{path}[{i}]", f"expected a section, got {got(item)}{where(origin)}")
        out[str(i)] = _canon(node.child, item, f"{path}[{i}]", origin)
    return out


# -- sources 2 and 3: variables and flags -------------------------------------------------------------


def _resolve(
    node: Any, segs: list[str], path: str, origin: str, env: bool
) -> tuple[list[str], Any, int | None]:
    """Key segments → (canonical keys, the node they reach, list index or None)."""
    if not segs:
        return [], node, None
    if node in (IGNORED, ANY):
        return [s.lower() if env else s for s in segs], RAW_ITEM, None
    if isinstance(node, str):
        if len(segs) == 1 and segs[0].isascii() and segs[0].isdigit() and len(segs[0]) <= 9 and node == LIST:
            return [], node, int(segs[0])
        raise unknown(path, segs[0], [], origin)
    if isinstance(node, ListOf):
        index = segs[0]
        if not (index.isascii() and index.isdigit() and len(index) <= 9):
            raise StaticConfigError(
                path, f"expected an item index, like {path.rpartition('.')[2]}[0].<key>{where(origin)}"
            )
        item = str(int(index))
        keys, end, sub_index = _resolve(node.child, segs[1:], f"{path}[{item}]", origin, env)
        return [item, *keys], end, sub_index
    if isinstance(node, Named):
        # With variables a name may hold underscores: the shortest name whose rest makes sense wins.
        spans = range(1, len(segs) + 1) if env else range(1, 2)
        first: StaticConfigError | None = None
        for n in spans:
            if first is not None and n == len(segs):
                break  # a name swallowing every segment would hide the real typo (…_DOMAINS_0_SAN)
            name = "_".join(segs[:n]).lower() if env else segs[0]
            try:
                keys, end, index = _resolve(node.child, segs[n:], join(path, name), origin, env)
            except StaticConfigError as exc:
                first = first or exc
                continue
            return [name, *keys], end, index
        assert first is not None
        raise first
    name = find_key(node, segs[0])
    if name is None:
        raise unknown(path, segs[0], list(node), origin)
    keys, end, index = _resolve(node[name], segs[1:], join(path, name), origin, env)
    return [name, *keys], end, index


def _leaf_value(end: Any, index: int | None, text: str, path: str, origin: str) -> Any:
    """What one flag/variable's text becomes in the tree, by the kind of node it reached."""
    if end in (ANY, RAW_ITEM):
        return text
    if isinstance(end, ListOf):
        raise StaticConfigError(
            path,
            f"a list of sections: give each item's keys with an index, like "
            f"--{path.lower()}[0].{next(iter(end.child)).lower()}=…{where(origin)}",
        )
    if isinstance(end, dict | Named) or end == IGNORED:
        return _section_switch(text, path, origin)
    if index is not None:
        return Val(Indexed({index: text}), origin)
    return Val(text, origin)


def _put(tree: dict[str, Any], keys: list[str], end: Any, index: int | None, text: str, origin: str) -> None:
    """Set one flag/variable in a source's tree (later ones win; indexed list items accumulate)."""
    if not keys:
        return
    value = _leaf_value(end, index, text, ".".join(keys), origin)
    here = tree
    for k in keys[:-1]:
        existing = find_key(here, k)
        if existing is None or not isinstance(here[existing], dict):
            here[existing or k] = {}
            existing = existing or k
        here = here[existing]
    last = find_key(here, keys[-1]) or keys[-1]
    old = here.get(last)
    if value == {} and isinstance(old, dict):
        return  # a bare --providers.docker after --providers.docker.network=…: keep what is set
    if (
        index is not None
        and isinstance(old, Val)
        and isinstance(old.value, Indexed)
        and isinstance(value, Val)
    ):
        value = Val(Indexed({**old.value, index: text}), origin)
    here[last] = value


_INDEX = re.compile(r"^(.*?)\[(\d+)\]$")


def _flag_segments(key: str) -> list[str]:
    segs: list[str] = []
    for part in key.split("."):
        m = _INDEX.match(part)
        segs.extend([m.group(1), m.group(2)] if m else [part])
    return segs


def _is_switch(end: Any, index: int | None) -> bool:
    """Whether a bare flag (no value) means true."""
    return index is None and (end in (BOOL, IGNORED, RAW_ITEM) or isinstance(end, dict | Named))


def _from_flags(argv: Sequence[str]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if not arg.startswith("--") or arg == "--":
            raise StaticConfigError(
                "", f"unexpected argument {arg!r} (flags look like --entrypoints.web.address=:80)"
            )
        key, eq, text = arg[2:].partition("=")
        origin = f"from flag --{key}"
        segs = _flag_segments(key)
        if any(not s for s in segs):
            raise StaticConfigError(key, f"malformed flag --{key}")
        keys, end, index = _resolve(SCHEMA, segs, "", origin, env=False)
        if not eq:
            if i < len(args) and not args[i].startswith("--"):
                text = args[i]
                i += 1
            elif _is_switch(end, index):
                text = "true"
            else:
                raise StaticConfigError(".".join(keys), f"missing value{where(origin)}")
        _put(tree, keys, end, index, text, origin)
    return tree


_K8S_SERVICE_LINK = re.compile(r"^(SERVICE_HOST|SERVICE_PORT(_\w+)?|PORT(_\d+_(TCP|UDP|SCTP)(_\w+)?)?)$")


def _from_env(environ: Mapping[str, str], prefix: str) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for name in sorted(environ):
        if not name.upper().startswith(prefix) or len(name) == len(prefix):
            continue
        rest = name[len(prefix) :].upper()
        if rest == "CONFIGFILE" or _K8S_SERVICE_LINK.match(rest):
            continue  # the file's name; or a Kubernetes service link for a service named dockroute/traefik
        origin = f"from environment variable {name}"
        segs = [s.lower() for s in rest.split("_")]
        if any(not s for s in segs):
            raise StaticConfigError(name, f"malformed variable name{where(origin)}")
        keys, end, index = _resolve(SCHEMA, segs, "", origin, env=True)
        _put(tree, keys, end, index, environ[name], origin)
    return tree


# -- which file ---------------------------------------------------------------------------------------


def split_config_flag(argv: Sequence[str]) -> tuple[str | None, list[str]]:
    """Take ``--config FILE`` / ``--configFile=FILE`` (any case) out of ``argv``; the last one wins."""
    config: str | None = None
    rest: list[str] = []
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        key, eq, value = arg.partition("=")
        if find_key(("--config", "--configFile"), key) is not None:
            if not eq:
                if i + 1 >= len(args):
                    raise StaticConfigError("configFile", "missing value (--configFile=FILE)")
                value = args[i + 1]
                i += 1
            config = value
        else:
            rest.append(arg)
        i += 1
    return config, rest


def find_file(
    config_file: str | None, argv: Sequence[str], environ: Mapping[str, str], search_dirs: Sequence[str]
) -> tuple[str | None, list[str]]:
    """The file to read (explicit, ``--configFile``, ``*_CONFIGFILE``, else the first found in
    ``search_dirs``: ``dockroute.{yml,yaml,toml}`` in each folder, then ``traefik.{yml,yaml,toml}`` in
    each) and the flags left once the file's own flag is taken out."""
    flag, rest = split_config_flag(argv)
    chosen = config_file or flag
    if chosen is None:
        for prefix in reversed(ENV_PREFIXES):
            variable = find_key(environ, f"{prefix}CONFIGFILE")
            if variable is not None and environ[variable]:
                chosen = environ[variable]
                break
    if chosen is not None:
        if not os.path.isfile(chosen):
            raise StaticConfigError("configFile", f"no such file: {chosen}")
        return chosen, rest
    for group in CONFIG_NAME_GROUPS:
        for directory in search_dirs:
            for name in group:
                path = os.path.join(directory, name)
                if os.path.isfile(path):
                    return os.path.abspath(path), rest  # the log names it: "./traefik.yml" says little
    return None, rest


def default_search_dirs(environ: Mapping[str, str]) -> tuple[str, ...]:
    """Traefik's folders for its file, in its order: ``/etc/dockroute`` (dockroute's own) and
    ``/etc/traefik``, ``$XDG_CONFIG_HOME`` and ``$HOME/.config`` (Traefik looks in both), then the
    working directory."""
    dirs = ["/etc/dockroute", "/etc/traefik"]
    xdg = environ.get("XDG_CONFIG_HOME", "").strip()
    home = environ.get("HOME", "").strip()
    if xdg:
        dirs.append(xdg)
    if home and os.path.join(home, ".config") not in dirs:
        dirs.append(os.path.join(home, ".config"))
    dirs.append(".")
    return tuple(dirs)
