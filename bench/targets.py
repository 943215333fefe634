"""What the bench starts: the nginx backend and each proxy in front of it, with their config files.

Every server listens on 127.0.0.1 only, writes its logs and state into the run's temp directory and
runs in the foreground, so the harness owns it (and its process group).
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.procs import Procs, free_port, wait_ready

REPO_ROOT = Path(__file__).resolve().parent.parent
BENCH_HOST = "bench.test"
BODY = b"hello from the bench backend\n"  # small static file, the same for every target


@dataclass(frozen=True)
class Launch:
    argv: list[str]
    cwd: Path | None = None
    env: dict[str, str] | None = None


@dataclass(frozen=True)
class Target:
    """One row of the table."""

    name: str
    binary: str  # checked with shutil.which; "python" for dockroute
    make: Callable[[Path, int, int], Launch]  # (own temp dir, listen port, backend port) → how to start it
    host: str = BENCH_HOST  # Host header wrk sends
    group: str = "peer"  # "direct", "dockroute", "peer", "scale"

    def installed(self) -> bool:
        return self.binary == "python" or shutil.which(self.binary) is not None


# -- nginx: backend and reverse proxy -------------------------------------------------------------------


def nginx_launch(d: Path, conf: str) -> Launch:
    """nginx run in the foreground from ``d`` with ``conf`` as its nginx.conf."""
    (d / "nginx.conf").write_text(conf)
    return Launch(["nginx", "-p", str(d), "-e", str(d / "error.log"), "-c", str(d / "nginx.conf")])


def caddy_launch(d: Path) -> Launch:
    """Caddy run with ``d``'s Caddyfile; it wants writable config/data homes: kept in ``d``."""
    env = dict(os.environ)
    env.update(HOME=str(d), XDG_CONFIG_HOME=str(d / "config"), XDG_DATA_HOME=str(d / "data"))
    return Launch(["caddy", "run", "--config", str(d / "Caddyfile"), "--adapter", "caddyfile"], env=env)


def _nginx_common(d: Path) -> str:
    temps = "\n".join(
        f"    {kind}_temp_path {d / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""daemon off;
pid {d / "nginx.pid"};
error_log {d / "error.log"} warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
{temps}
"""


def backend(d: Path, port: int, _backend_port: int = 0) -> Launch:
    """Debian's nginx serving one small static file for any host, one process."""
    www = d / "www"
    www.mkdir(parents=True, exist_ok=True)
    (www / "index.html").write_bytes(BODY)
    conf = (
        "master_process off;\nworker_processes 1;\n"
        + _nginx_common(d)
        + f"""    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    open_file_cache max=16;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        server_name _;
        root {www};
        location / {{ try_files /index.html =404; default_type text/plain; }}
    }}
}}
"""
    )
    return nginx_launch(d, conf)


def nginx_proxy(
    d: Path, port: int, backend_port: int, tls: tuple[Path, Path] | None = None, server_lines: str = ""
) -> Launch:
    """nginx as reverse proxy; with ``tls`` (certificate, key) it terminates TLS (bench.https);
    ``server_lines`` go into its server block (bench.compress: gzip)."""
    ssl = " ssl" if tls else ""
    ssl_lines = (
        f"        ssl_certificate {tls[0]};\n        ssl_certificate_key {tls[1]};\n"
        "        ssl_protocols TLSv1.2 TLSv1.3;\n"
        if tls
        else ""
    )
    conf = (
        "worker_processes 1;\n"
        + _nginx_common(d)
        + f"""    keepalive_requests 1000000;
    upstream backend {{
        server 127.0.0.1:{backend_port};
        keepalive 64;
        keepalive_requests 1000000;
    }}
    server {{
        listen 127.0.0.1:{port}{ssl} backlog=4096;
        server_name {BENCH_HOST};
{ssl_lines}{server_lines}        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
        }}
    }}
}}
"""
    )
    return nginx_launch(d, conf)


# -- Caddy ------------------------------------------------------------------------------------------------


def caddy_http(d: Path, port: int, directives: str) -> Launch:
    """Caddy with one plain-HTTP site on 127.0.0.1:``port`` (any host) holding ``directives`` (indented
    lines); no admin endpoint, no automatic HTTPS, its storage in ``d``. GOMAXPROCS stays default."""
    (d / "Caddyfile").write_text(
        f"""{{
    admin off
    auto_https off
    storage file_system {d / "data"}
}}

http://:{port} {{
    bind 127.0.0.1
{directives}}}
"""
    )
    return caddy_launch(d)


def caddy(d: Path, port: int, backend_port: int) -> Launch:
    return caddy_http(d, port, f"    reverse_proxy 127.0.0.1:{backend_port}\n")


# -- HAProxy ----------------------------------------------------------------------------------------------


def haproxy(d: Path, port: int, backend_port: int) -> Launch:
    (d / "haproxy.cfg").write_text(
        f"""global
    nbthread 1
    maxconn 8192

defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    http-reuse always

frontend fe
    bind 127.0.0.1:{port}
    default_backend be

backend be
    server s1 127.0.0.1:{backend_port} maxconn 1000
"""
    )
    return Launch(["haproxy", "-db", "-f", str(d / "haproxy.cfg")])


# -- dockroute --------------------------------------------------------------------------------------------


def start_backend(procs: Procs, tmp: Path, make: Callable[[Path, int], Launch] | None = None) -> int:
    """The nginx backend every target proxies to (``make``'s, by default :func:`backend`), started and
    answering; returns its port."""
    bdir = tmp / "backend"
    bdir.mkdir()
    bport = free_port()
    launch = (make or backend)(bdir, bport)
    bproc = procs.start(launch.argv, bdir / "output.log")
    wait_ready(bport, BENCH_HOST, bproc, bdir / "error.log")
    return bport


def _dockroute_static(d: Path, port: int, entry_point: str = "web") -> None:
    (d / "dockroute.yml").write_text(
        f"""entryPoints:
  {entry_point}:
    address: "127.0.0.1:{port}"
providers:
  file:
    filename: "{d / "dynamic.yml"}"
    watch: false
log:
  level: WARN
"""
    )


def _dockroute_launch(d: Path, extra: Sequence[str]) -> Launch:
    return Launch(
        [sys.executable, "-m", "dockroute", "--config", str(d / "dockroute.yml"), *extra],
        cwd=REPO_ROOT,
    )


def proxy_dynamic(backend_port: int, router_lines: str = "", after: str = "") -> str:
    """A dockroute dynamic config: router ``bench`` (``Host(`bench.test`)``, plus ``router_lines``) to the
    service ``backend`` on ``backend_port``, then ``after`` (middlewares, tls)."""
    return (
        f"""http:
  routers:
    bench:
      rule: "Host(`{BENCH_HOST}`)"
      service: backend
{router_lines}  services:
    backend:
      loadBalancer:
        servers:
          - url: "http://127.0.0.1:{backend_port}"
"""
        + after
    )


def dockroute_launch(
    d: Path, port: int, extra: Sequence[str], dynamic: str, entry_point: str = "web"
) -> Launch:
    """dockroute with its static config on ``port`` and ``dynamic`` as its file provider's config."""
    _dockroute_static(d, port, entry_point)
    (d / "dynamic.yml").write_text(dynamic)
    return _dockroute_launch(d, extra)


def dockroute(extra: Sequence[str]) -> Callable[[Path, int, int], Launch]:
    def make(d: Path, port: int, backend_port: int) -> Launch:
        return dockroute_launch(d, port, extra, proxy_dynamic(backend_port))

    return make


PATH_PREFIX_ROUTERS = 5


def scale_host(n: int) -> str:
    """The host measured with ``n`` routers: one in the middle of the table."""
    return f"app{n // 2}.test"


def dockroute_scale(n: int, extra: Sequence[str]) -> Callable[[Path, int, int], Launch]:
    """``n`` Host routers app0.test … app<n-1>.test plus a few PathPrefix routers, all to the backend."""

    def make(d: Path, port: int, backend_port: int) -> Launch:
        _dockroute_static(d, port)
        lines = ["http:", "  routers:"]
        for i in range(n):
            lines += [f"    app{i}:", f'      rule: "Host(`app{i}.test`)"', "      service: backend"]
        for i in range(PATH_PREFIX_ROUTERS):
            # Not indexable by host: the table has to consider them next to the host's own routers.
            lines += [f"    prefix{i}:", f'      rule: "PathPrefix(`/p{i}/`)"', "      service: backend"]
        lines += [
            "  services:",
            "    backend:",
            "      loadBalancer:",
            "        servers:",
            f'          - url: "http://127.0.0.1:{backend_port}"',
        ]
        (d / "dynamic.yml").write_text("\n".join(lines) + "\n")
        return _dockroute_launch(d, extra)

    return make


def all_targets(dockroute_args: Sequence[str]) -> list[Target]:
    return [
        Target("direct", "nginx", backend, group="direct"),
        Target("dockroute", "python", dockroute(dockroute_args), group="dockroute"),
        Target("nginx", "nginx", nginx_proxy),
        Target("caddy", "caddy", caddy),
        Target("haproxy", "haproxy", haproxy),
        Target(
            "dockroute-10r", "python", dockroute_scale(10, dockroute_args), host=scale_host(10), group="scale"
        ),
        Target(
            "dockroute-1000r",
            "python",
            dockroute_scale(1000, dockroute_args),
            host=scale_host(1000),
            group="scale",
        ),
    ]
