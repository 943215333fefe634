"""The ``dockroute`` command: flags, environment and file → :class:`StaticConfig` → the app."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from discover.values import BOOL_WORDS
from dockroute import __version__
from dockroute.healthcheck import healthcheck as run_healthcheck
from dockroute.static import StaticConfigError, load_static, split_config_flag

if TYPE_CHECKING:
    from acme_client.settings import InternalCASettings

USAGE = f"""\
usage: dockroute [--config FILE] [--<traefik.static.key>=VALUE ...]
       dockroute healthcheck [--container] [--config FILE] [--<traefik.static.key>=VALUE ...]
       dockroute internal-ca root [--config FILE] [--resolver NAME] [--create]
                                  [--<traefik.static.key>=VALUE ...]
       dockroute --version | --help

A reverse proxy for Docker hosts, configured like Traefik (static configuration).

Common flags (keys are case-insensitive, as in Traefik):
  --config FILE, --configFile=FILE            static configuration file (YAML or TOML); default: the first
                                              dockroute.{{yml,yaml,toml}}, else traefik.{{yml,yaml,toml}},
                                              found in /etc/dockroute/, /etc/traefik/, $XDG_CONFIG_HOME,
                                              ~/.config, then the working directory
  --entrypoints.NAME.address=:80              an entry point ([host]:port); without any, 'web' on :80
  --entrypoints.NAME.http.redirections.entrypoint.to=websecure
                                              redirect everything to another entry point (or ':443')
  --entrypoints.NAME.forwardedheaders.trustedips=10.0.0.0/8,192.168.1.1
                                              proxies whose X-Forwarded-* headers are trusted
  --entrypoints.NAME.proxyprotocol.trustedips=10.0.0.5
                                              load balancers whose PROXY protocol header names the client
  --providers.file.filename=FILE              dynamic configuration from a file (or .directory=DIR)
  --providers.file.watch=false                do not reload it on change (default: watch)
  --providers.docker                          routes from Docker labels (.endpoint, .exposedbydefault,
                                              .network, .defaultrule, .constraints)
  --serverstransport.forwardingtimeouts.dialtimeout=30s
  --serverstransport.rootcas=/ca.pem          trust this CA for https backends (or .insecureskipverify)
  --log.level=DEBUG|INFO|WARN|ERROR           --log.format=common|json   --log.filepath=FILE
  --accesslog                                 access log on stdout (--accesslog.filepath=FILE,
                                              --accesslog.format=json|genericCLF)
  --api.insecure                              the API and dashboard on entry point traefik (:8080)
  --ping                                      /ping on entry point traefik (for dockroute healthcheck)
  --metrics.prometheus                        /metrics on entry point traefik
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

dockroute healthcheck: reads the same configuration (file, variables, flags) and asks /ping on the ping
entry point (HEAD, 5 s timeout), as Traefik's healthcheck does: exit status 0 on 200, else 1, with one
line saying why (needs the ping section). With --container (the image's HEALTHCHECK), the flags of the
proxy running as PID 1 (/proc/1/cmdline) come first, so compose `command:` flags count; without ping
it checks that every entry point accepts a TCP connection instead (enable --ping for an HTTP check).

dockroute internal-ca root: reads the same configuration, creates the root of the internalCA resolver
(certificatesResolvers.NAME.internalCA; --resolver NAME when there are several) if it does not exist yet,
and prints its certificate (PEM) to trust on your devices; stderr names the file and whether it was
created now. A relative storage path is not created unless --create is given (it is resolved from the
working directory, which may not be the proxy's):
  dockroute internal-ca root > dockroute-root.crt
"""


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["internal-ca"]:
        return internal_ca(args[1:])
    if args[:1] == ["healthcheck"]:
        return healthcheck(args[1:])
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


def _take_flags(args: list[str]) -> tuple[str | None, bool, list[str]]:
    """``--resolver NAME`` / ``--resolver=NAME`` and ``--create`` out of ``args`` (the rest are static
    flags)."""
    name: str | None = None
    create = False
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
        elif args[i] == "--create":
            create = True
        else:
            rest.append(args[i])
        i += 1
    return name, create, rest


def internal_ca(args: list[str]) -> int:
    """``dockroute internal-ca root``: the root certificate of an internalCA resolver on stdout, created
    first if missing (the proxy, started later or already running, uses that very root)."""
    asked_help = any(a in ("-h", "--help") for a in args)
    if args[:1] != ["root"] or asked_help:
        print(USAGE, end="", file=sys.stdout if asked_help else sys.stderr)
        return 0 if asked_help else 2
    from acme_client.settings import InternalCASettings  # noqa: PLC0415 - this command only

    try:
        wanted, create, rest = _take_flags(args[1:])
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
    return _print_root(name, cas[name], create)


def _print_root(name: str, settings: InternalCASettings, create: bool) -> int:
    """The root's PEM on stdout; on stderr, which file it is and whether it was created now. A relative
    storage resolves from this command's working directory, which need not be the proxy's: a root
    created there might never be used by the proxy, yet be trusted on devices, so it is created only
    with ``--create``."""
    from acme_client.internal_root import (  # noqa: PLC0415 - this command only
        ROOT_CERT,
        InternalCAError,
        load_or_create_root,
        load_root,
    )

    folder = os.path.abspath(settings.storage)
    relative = not os.path.isabs(settings.storage)
    try:
        if relative and not create:
            root = load_root(folder, name)
            if root is None:
                print(
                    f"dockroute: resolver {name}: no root in {folder}, and its storage "
                    f"{settings.storage!r} is relative (resolved from this working directory, maybe not the "
                    f"proxy's): not creating one; make certificatesResolvers.{name}.internalCA.storage "
                    "absolute, or run again with --create to create it there",
                    file=sys.stderr,
                )
                return 2
        else:
            root = load_or_create_root(folder, name, settings.permitted_domains)
    except InternalCAError as exc:
        print(f"dockroute: resolver {name}: {exc}", file=sys.stderr)
        return 1
    state = "created now" if root.created else "existing"
    if relative and root.created:
        state += f", as --create asked, from the relative storage {settings.storage!r}"
    print(f"resolver {name}: {os.path.join(folder, ROOT_CERT)} ({state})", file=sys.stderr)
    sys.stdout.write(root.pem.decode("ascii"))
    return 0


def healthcheck(args: list[str]) -> int:
    """``dockroute healthcheck``: see :mod:`dockroute.healthcheck`."""
    if any(a in ("-h", "--help") for a in args):
        print(USAGE, end="")
        return 0
    return run_healthcheck(args)
