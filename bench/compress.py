"""``python -m bench.compress``: a 100 KB JSON answer gzipped by the proxy, dockroute's ``compress``
against Caddy's ``encode gzip`` and nginx's ``gzip on``, in front of one nginx backend.

The backend (nginx, one process) serves the same ~100 KB JSON document (``application/json``, not
compressed) for any path. Every proxy compresses it with gzip at level 5 (Caddy's default and
dockroute's; nginx is set to ``gzip_comp_level 5`` to match, its default being 1). wrk sends
``Accept-Encoding: gzip`` and measures ``wrk -t1 -c64 -d<duration>s --latency``. Before measuring, each
target is checked to answer gzip that decodes to the document, so a proxy that passes the body plain
cannot win. ``dockroute-plain`` (the same router without the middleware, the body passed uncompressed)
shows what compression costs dockroute itself.

``--write-results`` puts the run into ``bench/RESULTS.md`` between ``<!-- compress -->`` markers.
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import json
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench import wrk
from bench.procs import (
    NotReady,
    Procs,
    count_log_errors,
    exit_on_sigterm,
    free_port,
    missing_tools,
    wait_ready,
)
from bench.report import machine_line, now_utc, print_blocks, put_section, versions_line
from bench.targets import BENCH_HOST, Launch, _dockroute_launch, _dockroute_static, _nginx_common, caddy

_MARK = "<!-- compress -->"
LEVEL = 5


def document() -> bytes:
    """~100 KB of JSON (valid, 104,417 bytes) that compresses like an API answer (about 7:1), the same in
    every run."""
    items = [
        {"id": i, "name": f"item {i}", "price": round(i * 1.37 % 997, 2), "tags": ["alpha", "beta"][: i % 3]}
        for i in range(1500)
    ]
    return json.dumps(items).encode()


# -- backend and targets ----------------------------------------------------------------------------------


def backend(d: Path, port: int) -> Launch:
    """nginx serving the document for any path, uncompressed, one process."""
    www = d / "www"
    www.mkdir(parents=True, exist_ok=True)
    (www / "doc.json").write_bytes(document())
    conf = (
        "master_process off;\nworker_processes 1;\n"
        + _nginx_common(d)
        + f"""    sendfile on;
    keepalive_requests 1000000;
    open_file_cache max=16;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        server_name _;
        root {www};
        location / {{ try_files /doc.json =404; default_type application/json; }}
    }}
}}
"""
    )
    (d / "nginx.conf").write_text(conf)
    return Launch(["nginx", "-p", str(d), "-e", str(d / "error.log"), "-c", str(d / "nginx.conf")])


Make = Callable[[Path, int, int], Launch]


def dockroute(middleware: bool, extra: list[str]) -> Make:
    def make(d: Path, port: int, backend_port: int) -> Launch:
        _dockroute_static(d, port)
        mw = "      middlewares: [gz]\n" if middleware else ""
        (d / "dynamic.yml").write_text(
            f"""http:
  routers:
    bench:
      rule: "Host(`{BENCH_HOST}`)"
      service: backend
{mw}  middlewares:
    gz:
      compress: {{}}
  services:
    backend:
      loadBalancer:
        servers:
          - url: "http://127.0.0.1:{backend_port}"
"""
        )
        return _dockroute_launch(d, extra)

    return make


def nginx_gzip(d: Path, port: int, backend_port: int) -> Launch:
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
        listen 127.0.0.1:{port} backlog=4096;
        server_name {BENCH_HOST};
        gzip on;
        gzip_comp_level {LEVEL};
        gzip_types application/json;
        gzip_proxied any;
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
        }}
    }}
}}
"""
    )
    (d / "nginx.conf").write_text(conf)
    return Launch(["nginx", "-p", str(d), "-e", str(d / "error.log"), "-c", str(d / "nginx.conf")])


def caddy_gzip(d: Path, port: int, backend_port: int) -> Launch:
    launch = caddy(d, port, backend_port)
    path = d / "Caddyfile"
    path.write_text(path.read_text().replace("    reverse_proxy", "    encode gzip\n    reverse_proxy", 1))
    return launch


@dataclass(frozen=True)
class Target:
    name: str
    binary: str
    make: Make
    compressed: bool = True

    def installed(self) -> bool:
        return self.binary == "python" or shutil.which(self.binary) is not None


def all_targets(dockroute_args: list[str]) -> list[Target]:
    return [
        Target("dockroute", "python", dockroute(True, dockroute_args)),
        Target("nginx", "nginx", nginx_gzip),
        Target("caddy", "caddy", caddy_gzip),
        Target("dockroute-plain", "python", dockroute(False, dockroute_args), compressed=False),
    ]


# -- checking and measuring -------------------------------------------------------------------------------


def check_answer(port: int, compressed: bool) -> int:
    """One request as wrk sends it: the answer must be gzip (or plain for the reference) and decode to the
    document. Returns the bytes on the wire."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5.0)
    try:
        conn.request("GET", "/", headers={"Host": BENCH_HOST, "Accept-Encoding": "gzip"})
        resp = conn.getresponse()
        body = resp.read()
        coding = resp.getheader("Content-Encoding")
    finally:
        conn.close()
    if resp.status != 200:
        raise NotReady(f"HTTP {resp.status}")
    if compressed != (coding == "gzip"):
        raise NotReady(f"Content-Encoding {coding!r} (wanted {'gzip' if compressed else 'none'})")
    if (gzip.decompress(body) if compressed else body) != document():
        raise NotReady("the answer does not decode to the document")
    return len(body)


def measure(procs: Procs, port: int, duration: int, warmup: float) -> wrk.WrkResult:
    cmd = wrk.command(f"http://127.0.0.1:{port}/", BENCH_HOST, duration)
    cmd[-1:-1] = ["-H", "Accept-Encoding: gzip"]
    if warmup > 0:
        warm = wrk.command(f"http://127.0.0.1:{port}/", BENCH_HOST, max(1, round(warmup)))
        warm[-1:-1] = ["-H", "Accept-Encoding: gzip"]
        procs.run(warm, timeout=warmup + 30)
    return wrk.parse(procs.run(cmd, timeout=duration + 30))


@dataclass
class Row:
    name: str
    result: wrk.WrkResult | None = None
    wire: int = 0
    status: str = ""
    log_errors: int = 0


def run_target(procs: Procs, t: Target, tmp: Path, bport: int, duration: int, warmup: float) -> Row:
    if not t.installed():
        return Row(t.name, status="not installed")
    d = tmp / t.name
    d.mkdir()
    port = free_port()
    launch = t.make(d, port, bport)
    log = d / "output.log"
    print(f"  {t.name}: starting on 127.0.0.1:{port} ...", end="", flush=True)
    try:
        proc = procs.start(launch.argv, log, cwd=launch.cwd, env=launch.env)
    except OSError as exc:
        print(" failed")
        return Row(t.name, status=f"failed to start: {exc}")
    try:
        started = time.monotonic()
        wait_ready(port, BENCH_HOST, proc, log)
        wire = check_answer(port, t.compressed)
        print(
            f" ready in {time.monotonic() - started:.1f}s ({wire:,} bytes per answer), {duration}s ...",
            end="",
        )
        result = measure(procs, port, duration, warmup)
        if proc.poll() is not None:
            print(" died")
            return Row(t.name, status=f"failed: exited ({proc.returncode}) during the run")
        print(f" {result.rps:,.0f} req/s", flush=True)
        return Row(t.name, result, wire, log_errors=count_log_errors(log))
    except NotReady as exc:
        print(" not ready")
        return Row(t.name, status=f"failed: {exc}")
    except wrk.WrkParseError as exc:
        print(" wrk failed")
        return Row(t.name, status=f"failed: {exc}")
    finally:
        procs.kill(proc)


# -- output -----------------------------------------------------------------------------------------------


def table(rows: list[Row]) -> list[str]:
    out = [
        f"{'target':<16} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'bytes':>8}  errors",
        f"{'-' * 16} {'-' * 9} {'-' * 8} {'-' * 8} {'-' * 8}  {'-' * 6}",
    ]
    for row in rows:
        r = row.result
        if r is None:
            out.append(f"{row.name:<16} {row.status}")
            continue
        flag = "  << FLAGGED" if r.errors else ""
        logged = f" (its log: {row.log_errors} error lines)" if row.log_errors else ""
        out.append(
            f"{row.name:<16} {r.rps:>9,.0f} {r.p50_ms:>8.2f} {r.p99_ms:>8.2f} {row.wire:>8,}  "
            f"{r.error_text()}{flag}{logged}"
        )
    return out


def ratios(rows: list[Row]) -> list[str]:
    by = {r.name: r.result for r in rows if r.result is not None}
    dr = by.get("dockroute")
    if dr is None:
        return []
    out = [f"{'dockroute gzip / other':<24} {'req/s':>7} {'p99':>7}   (req/s >1: dockroute faster)"]
    for other in ("nginx", "caddy", "dockroute-plain"):
        p = by.get(other)
        if p is not None:
            out.append(f"  vs {other:<20} {dr.rps / p.rps:>6.2f}x {dr.p99_ms / p.p99_ms:>6.2f}x")
    return out


def write_results(rows: list[Row], command: str, duration: int) -> Path:
    lines = [
        _MARK,
        f"## gzip of a 100 KB JSON answer, {now_utc()}",
        "",
        machine_line(),
        versions_line(skip=("haproxy",)),
        f"- command: `{command}` (wrk -t1 -c64 -d{duration}s --latency, `Accept-Encoding: gzip`, "
        f"gzip level {LEVEL} everywhere; one nginx backend serving the document plain)",
        "",
        "```",
        *table(rows),
        "",
        *ratios(rows),
        "```",
        _MARK,
    ]
    return put_section(_MARK, "\n".join(lines))


def main(argv: list[str]) -> int:
    names = [t.name for t in all_targets([])]
    p = argparse.ArgumentParser(prog="python -m bench.compress", description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=int, default=10, help="seconds per target (default 10)")
    p.add_argument("--quick", action="store_true", help="smoke run: 3 s per target, 1 s warm-up")
    p.add_argument("--warmup", type=float, default=None, help="warm-up seconds per target (default 2)")
    p.add_argument("--only", default="", help=f"comma-separated subset of: {', '.join(names)}")
    p.add_argument("--dockroute-arg", action="append", default=[], metavar="ARG")
    p.add_argument("--write-results", action="store_true", help="put this run into bench/RESULTS.md")
    p.add_argument("--keep-tmp", action="store_true", help="keep the temp dir (configs, logs)")
    args = p.parse_args(argv)
    if args.quick:
        args.duration = 3
    if args.warmup is None:
        args.warmup = 1.0 if args.quick else 2.0
    wanted = [s.strip() for s in args.only.split(",") if s.strip()] or names
    for name in wanted:
        if name not in names:
            p.error(f"unknown target {name!r}; choose from {', '.join(names)}")
    if missing_tools("bench.compress", ("wrk", "nginx")):
        return 2
    exit_on_sigterm()
    command = "python -m bench.compress" + ("" if not argv else " " + shlex.join(argv))
    procs = Procs()
    tmp = Path(tempfile.mkdtemp(prefix="dockroute-bench-compress-"))
    rows: list[Row] = []
    interrupted = False
    try:
        bdir = tmp / "backend"
        bdir.mkdir()
        bport = free_port()
        launch = backend(bdir, bport)
        wait_ready(bport, BENCH_HOST, procs.start(launch.argv, bdir / "output.log"), bdir / "error.log")
        print(
            f"backend: nginx on 127.0.0.1:{bport} serving {len(document()):,} bytes of JSON; "
            f"wrk -t1 -c64 -d{args.duration}s -H 'Accept-Encoding: gzip', warm-up {args.warmup}s"
        )
        for t in all_targets(args.dockroute_arg):
            if t.name in wanted:
                rows.append(run_target(procs, t, tmp, bport, args.duration, args.warmup))
    except NotReady as exc:
        print(f"bench.compress: the nginx backend did not start: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        interrupted = True
        print("\ninterrupted; stopping everything", file=sys.stderr)
    finally:
        procs.finish(tmp, args.keep_tmp)

    print_blocks(table(rows), ratios(rows))
    if args.write_results and not interrupted:
        print(f"\nwrote {write_results(rows, command, args.duration)}")
    return 130 if interrupted else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
