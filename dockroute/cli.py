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
       dockroute --version | --help

A reverse proxy for Docker hosts, configured like Traefik (static configuration).

Common flags (keys are case-insensitive, as in Traefik):
  --config FILE, --configFile=FILE            static configuration file (YAML or TOML); default: the first
                                              of dockroute.yml, dockroute.yaml, dockroute.toml in
                                              /etc/dockroute, then the current directory
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
"""


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
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
