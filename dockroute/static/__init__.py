"""Traefik's static configuration: a YAML/TOML file, ``DOCKROUTE_*`` / ``TRAEFIK_*`` variables and flags.

Every source is first turned into the same shape: a nested dict keyed by Traefik's canonical camelCase
names (entry point names as the user spelled them), whose leaves remember where they came from. The three
layers are merged by key path (file < environment < flags) and only then checked and typed, so a flag for
``entryPoints.web.address`` keeps the file's other entry points, and an error names the key path and the
flag, variable or file that set it.

Like Traefik, keys match case-insensitively everywhere and booleans are Go's ``strconv.ParseBool`` words,
from every source (:mod:`discover.values`); lists may be given comma-separated or indexed
(``--entrypoints.web.forwardedheaders.trustedips[0]=…``, ``…_TRUSTEDIPS_0=…``); a section can be switched on
with its defaults by a bare ``--providers.docker`` (or ``=true``) and off with ``=false``.

With no ``--configFile``, the file is Traefik's: ``dockroute.{yml,yaml,toml}``, then
``traefik.{yml,yaml,toml}``, each looked for in ``/etc/dockroute``, ``/etc/traefik``, ``$XDG_CONFIG_HOME``
(else ``~/.config``) and the working directory (:func:`.sources.default_search_dirs`).

The modules, in the order data flows: :mod:`.schema` (the known keys and their kinds), :mod:`.sources`
(file, environment, flags → one merged tree, see :mod:`.tree`), :mod:`.readers` (typed, checked reads),
:mod:`.resolvers` (``certificatesResolvers``) and :mod:`.build` (the settings of :mod:`.settings`, and
:func:`load_static`).
"""

from __future__ import annotations

from dockroute.static.build import load_static
from dockroute.static.readers import check_address
from dockroute.static.settings import (
    AccessLogSettings,
    DockerProviderSettings,
    FileProviderSettings,
    LogSettings,
    StaticConfig,
    StaticConfigError,
)
from dockroute.static.sources import CONFIG_NAMES, ENV_PREFIXES, split_config_flag

__all__ = [
    "CONFIG_NAMES",
    "ENV_PREFIXES",
    "AccessLogSettings",
    "DockerProviderSettings",
    "FileProviderSettings",
    "LogSettings",
    "StaticConfig",
    "StaticConfigError",
    "check_address",
    "load_static",
    "split_config_flag",
]
