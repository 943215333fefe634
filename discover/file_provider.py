"""The file provider: Traefik dynamic configuration from one file or a directory of files, watched by polling.

Formats: ``.toml`` is TOML; ``.yml``/``.yaml`` (and, for ``filename``, any other extension) is YAML. A
directory is read recursively, in name order, taking every ``*.yml``/``*.yaml``/``*.toml`` (extension case
ignored); names starting with a dot are skipped (editor swap and lock files, ``..data`` of Kubernetes
ConfigMaps, ``.git``). When both ``filename`` and ``directory`` are given the directory wins, as in Traefik.

Merging a directory: every file's routers, services, middlewares and serversTransports land in one
config. A name defined in two files (TLS options too) keeps the first definition (in path order) and a
warning names both files -- what Traefik does.
TLS certificates are concatenated; the first default certificate wins.

Errors: any bad file makes the whole load fail with a :class:`~discover.parse.ConfigError` that carries
the file name and, when known, the line (YAML: of the offending key, or the syntax error's mark; TOML:
syntax errors only). :meth:`FileProvider.run` logs one line for it and keeps the last good configuration.

Watching polls ``(mtime_ns, size, inode)`` of the file, or of every matching file under the directory;
the signature is taken *before* reading, so a write that lands during a read is seen at the next poll. A
half-written file fails to parse, is reported once, and is read again when it changes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import tomllib
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import yaml

from discover.model import CertificateFile, DynamicConfig, TLSConfig, frozen_map
from discover.parse import ConfigError, Key, check_references, parse_dynamic_with_warnings

__all__ = ["EXTENSIONS", "FileProvider"]

EXTENSIONS = (".yml", ".yaml", ".toml")

Signature = tuple[Any, ...] | None


def _is_toml(path: str) -> bool:
    return path.lower().endswith(".toml")


# -- reading one file ---------------------------------------------------------------------------------


def _yaml_line(root: yaml.Node | None, keys: tuple[Key, ...]) -> int | None:
    """The 1-based line of the deepest key of ``keys`` that exists in the YAML node tree."""
    if root is None:
        return None
    node: yaml.Node = root
    line = root.start_mark.line + 1 if not keys else None
    for key in keys:
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode) and k.value == str(key):
                    line, node = k.start_mark.line + 1, v
                    break
            else:
                break
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and 0 <= key < len(node.value):
            node = node.value[key]
            line = node.start_mark.line + 1
        else:
            break
    return line


def _read_yaml(path: str, text: str) -> tuple[Any, yaml.Node | None]:
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        reason = " ".join(str(p) for p in (exc.context, exc.problem) if p) or "invalid YAML"
        raise ConfigError("", f"invalid YAML: {reason}", mark.line + 1 if mark else None, file=path) from None
    except yaml.YAMLError as exc:
        raise ConfigError("", f"invalid YAML: {exc}", file=path) from None
    finally:
        loader.dispose()
    return data, node


_TOML_AT = re.compile(r"\s*\(at line (\d+), column \d+\)\s*$")


def _read_toml(path: str, text: str) -> Any:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        m = _TOML_AT.search(message)
        line = int(m.group(1)) if m else None
        if m:
            message = message[: m.start()]
        raise ConfigError("", f"invalid TOML: {message}", line, file=path) from None


def _load_file(path: str, *, references: bool) -> tuple[DynamicConfig, list[str]]:
    """Read and parse one file; every failure is a ConfigError placed in ``path``."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise ConfigError("", f"cannot read the file: {exc.strerror or exc}", file=path) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError("", f"the file is not UTF-8: {exc.reason} at byte {exc.start}", file=path) from None
    node: yaml.Node | None = None
    if _is_toml(path):
        data = _read_toml(path, text)
    else:
        data, node = _read_yaml(path, text)
    try:
        cfg, warnings = parse_dynamic_with_warnings(data, references=references)
    except ConfigError as exc:
        raise exc.located(path, _yaml_line(node, exc.keys)) from None
    if cfg.routers:  # the log's "routing app.example.com → router app@file (file …)" names the file
        origin = f"file {path}"
        cfg = replace(cfg, routers=frozen_map({n: replace(r, origin=origin) for n, r in cfg.routers.items()}))
    return cfg, [f"{path}: {w}" for w in warnings]


# -- directories --------------------------------------------------------------------------------------


def _walk(directory: str) -> list[str]:
    """Matching files under ``directory``, recursively, in name order (sub-directories where they sort).
    Symlinks to files are followed; symlinked directories are not (no loops)."""
    out: list[str] = []
    with os.scandir(directory) as it:
        entries = sorted(it, key=lambda e: e.name)
    for entry in entries:
        if entry.name.startswith("."):
            continue
        try:
            if entry.is_dir(follow_symlinks=False):
                out.extend(_walk(entry.path))
            elif entry.name.lower().endswith(EXTENSIONS) and entry.is_file():
                out.append(entry.path)
        except OSError:  # vanished or unreadable while listing: the next poll sees it
            continue
    return out


def _stat(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def _merge_files(parts: list[tuple[str, DynamicConfig]]) -> tuple[DynamicConfig, list[str]]:
    routers: dict[str, Any] = {}
    services: dict[str, Any] = {}
    middlewares: dict[str, Any] = {}
    transports: dict[str, Any] = {}
    origin: dict[tuple[str, str], str] = {}
    certificates: list[CertificateFile] = []
    options: dict[str, Any] = {}
    default: CertificateFile | None = None
    default_from = ""
    warnings: list[str] = []
    for path, cfg in parts:
        for kind, into, items in (
            ("router", routers, cfg.routers),
            ("service", services, cfg.services),
            ("middleware", middlewares, cfg.middlewares),
            ("serversTransport", transports, cfg.servers_transports),
        ):
            for name, value in items.items():
                if name in into:
                    warnings.append(
                        f"{kind} {name!r} is defined in both {origin[kind, name]} and {path}; "
                        f"keeping the one from {origin[kind, name]}"
                    )
                    continue
                into[name] = value
                origin[kind, name] = path
        certificates.extend(cfg.tls.certificates)
        for name, value in cfg.tls.options.items():
            if name in options:
                warnings.append(
                    f"tls options {name!r} are defined in both {origin['tls options', name]} and {path}; "
                    f"keeping the ones from {origin['tls options', name]}"
                )
                continue
            options[name] = value
            origin["tls options", name] = path
        if cfg.tls.default_certificate is not None:
            if default is None:
                default, default_from = cfg.tls.default_certificate, path
            else:
                warnings.append(
                    f"a default certificate is defined in both {default_from} and {path}; "
                    f"keeping the one from {default_from}"
                )
    merged = DynamicConfig(
        routers=frozen_map(routers),
        services=frozen_map(services),
        middlewares=frozen_map(middlewares),
        tls=TLSConfig(
            certificates=tuple(certificates), default_certificate=default, options=frozen_map(options)
        ),
        servers_transports=frozen_map(transports),
    )
    return merged, warnings


# -- the provider -------------------------------------------------------------------------------------


class FileProvider:
    """Traefik's ``providers.file``: ``filename`` or ``directory``, optionally watched."""

    def __init__(
        self,
        filename: str | None = None,
        directory: str | None = None,
        watch: bool = True,
        poll_interval: float = 0.5,
        logger: logging.Logger | None = None,
    ) -> None:
        if not filename and not directory:
            raise ValueError("the file provider needs a filename or a directory")
        self.filename = None if directory else filename
        self.directory = directory or None
        self.watch = watch
        self.poll_interval = poll_interval
        self.log = logger or logging.getLogger(__name__)

    @property
    def source(self) -> str:
        return self.directory or self.filename or ""

    def signature(self) -> Signature:
        """What changes when the configuration on disk may have changed."""
        if self.filename is not None:
            return _stat(self.filename)
        assert self.directory is not None
        try:
            files = _walk(self.directory)
        except OSError:
            return None
        return tuple((f, _stat(f)) for f in files)

    def load_with_warnings(self) -> tuple[DynamicConfig, list[str]]:
        """Read everything; raise ConfigError (file and line set) on the first bad file."""
        if self.filename is not None:
            return _load_file(self.filename, references=True)
        assert self.directory is not None
        try:
            files = _walk(self.directory)
        except OSError as exc:
            raise ConfigError(
                "", f"cannot read the directory: {exc.strerror or exc}", file=self.directory
            ) from None
        parts: list[tuple[str, DynamicConfig]] = []
        warnings: list[str] = []
        for path in files:
            cfg, w = _load_file(path, references=False)
            parts.append((path, cfg))
            warnings.extend(w)
        merged, merge_warnings = _merge_files(parts)
        warnings.extend(merge_warnings)
        warnings.extend(f"{self.directory}: {w}" for w in check_references(merged))
        return merged, warnings

    def load(self) -> DynamicConfig:
        """Read everything, log the warnings; raise ConfigError (file and line set) on the first bad file."""
        cfg, warnings = self.load_with_warnings()
        for w in warnings:
            self.log.warning("file provider: %s", w)
        return cfg

    def _try_load(self) -> DynamicConfig | None:
        try:
            return self.load()
        except ConfigError as exc:
            self.log.error("file provider: %s; keeping the last good configuration", exc)
        except Exception as exc:  # a bug must not stop the watch
            self.log.exception("file provider: %s: %s; keeping the last good configuration", self.source, exc)
        return None

    async def run(self, publish: Callable[[DynamicConfig], None]) -> None:
        """Load and publish once, then (if watching) publish every changed valid configuration.

        A broken configuration is logged once and the last good one kept; if none was ever loaded an empty
        configuration is published so the proxy starts anyway. Returns after the first load when not
        watching; otherwise runs until cancelled.
        """
        seen = self.signature()
        cfg = await asyncio.to_thread(self._try_load)  # YAML/TOML parsing: off the event loop
        last = cfg if cfg is not None else DynamicConfig()
        self._publish(publish, last)
        if not self.watch:
            return
        while True:
            await asyncio.sleep(self.poll_interval)
            current = self.signature()
            if current == seen:
                continue
            seen = current
            cfg = await asyncio.to_thread(self._try_load)  # YAML/TOML parsing: off the event loop
            if cfg is not None and cfg != last:
                last = cfg
                self._publish(publish, cfg)

    def _publish(self, publish: Callable[[DynamicConfig], None], cfg: DynamicConfig) -> None:
        try:
            publish(cfg)
        except Exception:
            self.log.exception("file provider: publishing the configuration failed")
