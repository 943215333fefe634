"""The ``dockroute`` command: flags, environment and file → :class:`StaticConfig` → the app."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from discover.values import BOOL_WORDS
from dockroute import __version__
from dockroute.static import StaticConfigError, load_static, split_config_flag

USAGE = f"""\
usage: dockroute [--config FILE] [--<traefik.static.key>=VALUE ...]
       dockroute internal-ca root [--config FILE] [--resolver NAME] [--<traefik.static.key>=VALUE ...]
       dockroute --version | --help

A reverse proxy for Docker hosts, configured like Traefik (static configuration).

Common flags (keys are case-insensitive, as in Traefik):
  --config FILE, --configFile=FILE            static configuration file (YAML or TOML); default: the first
                                              dockroute.{{yml,yaml,toml}}, else traefik.{{yml,yaml,toml}},
                                              found in /etc/dockroute/, /etc/traefik/, $XDG_CONFIG_HOME
                                              (else ~/.config), then the working directory
  --entrypoints.NAME.address=:80              an entry point ([host]:port); without any, 'web' on :80
  --entrypoints.NAME.http.redirections.entrypoint.to=websecure
                                              redirect everything to another entry point (or ':443')
  --entrypoints.NAME.forwardedheaders.trustedips=10.0.0.0/8,192.168.1.1
                                              proxies whose X-Forwarded-* headers are trusted
  --providers.file.filename=FILE              dynamic configuration from a file (or .directory=DIR)
  --providers.file.watch=false                do not reload it on change (default: watch)
  --providers.docker                          routes from Docker labels (.endpoint, .exposedbydefault,
                                              .network, .defaultrule, .constraints)
  --serverstransport.forwardingtimeouts.dialtimeout=30s
  --serverstransport.rootcas=/ca.pem          trust this CA for https backends (or .insecureskipverify)
  --log.level=DEBUG|INFO|WARN|ERROR           --log.format=common|json   --log.filepath=FILE
  --accesslog                                 access log on stdout (--accesslog.filepath=FILE,
                                              --accesslog.format=json)
  --version                                   print the version and exit
  --help                                      this help

Values: '--key=value' or '--key value'; a bare boolean flag means true; lists are comma-separated or
indexed (--entrypoints.web.forwardedheaders.trustedips[0]=10.0.0.0/8); durations like 10s, 1m30s, 500ms
or a number of seconds. Booleans, from flags, variables and the file alike:
{BOOL_WORDS}.

Environment: every flag also works as a variable, upper case with '_' for '.', e.g.
  DOCKROUTE_ENTRYPOINTS_WEB_ADDRESS=:8080  DOCKROUTE_PROVIDERS_DOCKER_EXPOSEDBYDEFAULT=false
TRAEFIK_* variables are read too (DOCKROUTE_* wins when both are set).

Precedence: flags over environment over the file, key by key: a flag for one entry point keeps the
file's others. Unknown keys and bad values stop dockroute with exit status 2.

dockroute internal-ca root: reads the same configuration, creates the root of the internalCA resolver
(certificatesResolvers.NAME.internalCA; --resolver NAME when there are several) if it does not exist yet,
and prints its certificate (PEM) to trust on your devices:
  dockroute internal-ca root > dockroute-root.crt
"""


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["internal-ca"]:
        return internal_ca(args[1:])
    if any(a in ("-h", "--help", "help") for a in args):
        print(USAGE, end="")
        return 0
    if any(a in ("--version", "version") for a in args):
        print(f"dockroute {__version__}")
        return 0
    try:
        config_file, rest = split_config_flag(args)
        static = load_static(rest, os.environ, config_file=config_file)
    except StaticConfigError as exc:
        print(f"dockroute: configuration error: {exc}", file=sys.stderr)
        return 2

    from dockroute import app  # noqa: PLC0415 - lazily: it pulls in the whole proxy

    return app.run(static)


def _take_resolver_flag(args: list[str]) -> tuple[str | None, list[str]]:
    """``--resolver NAME`` / ``--resolver=NAME`` out of ``args`` (the rest are static flags)."""
    name: str | None = None
    rest: list[str] = []
    i = 0
    while i < len(args):
        key, eq, value = args[i].partition("=")
        if key == "--resolver":
            if not eq:
                if i + 1 >= len(args):
                    raise StaticConfigError("--resolver", "missing value (--resolver NAME)")
                i += 1
                value = args[i]
            name = value
        else:
            rest.append(args[i])
        i += 1
    return name, rest


def internal_ca(args: list[str]) -> int:
    """``dockroute internal-ca root``: the root certificate of an internalCA resolver on stdout, created
    first if missing (the proxy, started later or already running, uses that very root)."""
    asked_help = any(a in ("-h", "--help") for a in args)
    if args[:1] != ["root"] or asked_help:
        print(USAGE, end="", file=sys.stdout if asked_help else sys.stderr)
        return 0 if asked_help else 2
    from acme_client.internal_ca import InternalCA, InternalCAError  # noqa: PLC0415 - this command only
    from acme_client.settings import InternalCASettings  # noqa: PLC0415

    try:
        wanted, rest = _take_resolver_flag(args[1:])
        config_file, rest = split_config_flag(rest)
        static = load_static(rest, os.environ, config_file=config_file)
    except StaticConfigError as exc:
        print(f"dockroute: configuration error: {exc}", file=sys.stderr)
        return 2
    cas = {n: s for n, s in static.resolvers.items() if isinstance(s, InternalCASettings)}
    where = f" in {static.source}" if static.source else " (no configuration file found)"
    if wanted is not None and wanted not in cas:
        print(
            f"dockroute: no internalCA resolver named {wanted!r}{where}; internalCA resolvers: "
            f"{', '.join(sorted(cas)) or 'none'}",
            file=sys.stderr,
        )
        return 2
    if wanted is None and len(cas) != 1:
        why = (
            "no internalCA resolver (certificatesResolvers.NAME.internalCA)"
            if not cas
            else (f"several internalCA resolvers ({', '.join(sorted(cas))}): pick one with --resolver NAME")
        )
        print(f"dockroute: {why}{where}", file=sys.stderr)
        return 2
    name = wanted if wanted is not None else next(iter(cas))
    try:
        pem = InternalCA(name, cas[name], lambda: None).ensure_root()
    except InternalCAError as exc:
        print(f"dockroute: resolver {name}: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(pem.decode("ascii"))
    return 0
