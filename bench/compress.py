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
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench import runner, wrk
from bench.procs import (
    NotReady,
    Procs,
    count_log_errors,
    wait_ready,
)
from bench.report import put_bench_section
from bench.runner import Started
from bench.targets import (
    BENCH_HOST,
    Launch,
    _nginx_common,
    caddy,
    dockroute_launch,
    nginx_launch,
    nginx_proxy,
    proxy_dynamic,
    start_backend,
)

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
    return nginx_launch(d, conf)


Make = Callable[[Path, int, int], Launch]


def dockroute(middleware: bool, extra: list[str]) -> Make:
    def make(d: Path, port: int, backend_port: int) -> Launch:
        mw = "      middlewares: [gz]\n" if middleware else ""
        dynamic = proxy_dynamic(backend_port, mw, "  middlewares:\n    gz:\n      compress: {}\n")
        return dockroute_launch(d, port, extra, dynamic)

    return make


def nginx_gzip(d: Path, port: int, backend_port: int) -> Launch:
    gzip = (
        f"        gzip on;\n        gzip_comp_level {LEVEL};\n        gzip_types application/json;\n"
        "        gzip_proxied any;\n"
    )
    return nginx_proxy(d, port, backend_port, server_lines=gzip)


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


def gzip_command(port: int, seconds: int) -> list[str]:
    cmd = wrk.command(f"http://127.0.0.1:{port}/", BENCH_HOST, seconds)
    cmd[-1:-1] = ["-H", "Accept-Encoding: gzip"]
    return cmd


@dataclass
class Row:
    name: str
    result: wrk.WrkResult | None = None
    wire: int = 0
    status: str = ""
    log_errors: int = 0


def run_target(procs: Procs, t: Target, tmp: Path, bport: int, duration: int, warmup: float) -> Row:
    def body(s: Started) -> Row:
        wait_ready(s.port, BENCH_HOST, s.proc, s.log)
        wire = check_answer(s.port, t.compressed)
        print(f" ready in {s.ready_in()} ({wire:,} bytes per answer), {duration}s ...", end="")
        result = runner.measure(procs, lambda secs: gzip_command(s.port, secs), duration, warmup)
        if s.proc.poll() is not None:
            print(" died")
            return Row(t.name, status=runner.died(s.proc))
        print(f" {result.rps:,.0f} req/s", flush=True)
        return Row(t.name, result, wire, log_errors=count_log_errors(s.log))

    make = lambda d, port: t.make(d, port, bport)  # noqa: E731
    return runner.run_target(procs, t.name, Row(t.name), tmp, make, body, t.installed())


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


def blocks(rows: list[Row]) -> tuple[list[str], list[str]]:
    return table(rows), ratios(rows)


def write_results(rows: list[Row], command: str, duration: int) -> Path:
    return put_bench_section(
        _MARK,
        "gzip of a 100 KB JSON answer",
        f"`{command}` (wrk -t1 -c64 -d{duration}s --latency, `Accept-Encoding: gzip`, "
        f"gzip level {LEVEL} everywhere; one nginx backend serving the document plain)",
        *blocks(rows),
    )


def main(argv: list[str]) -> int:
    names = [t.name for t in all_targets([])]
    p = argparse.ArgumentParser(prog="python -m bench.compress", description=__doc__.splitlines()[0])
    runner.add_args(p, f"comma-separated subset of: {', '.join(names)}", "configs, logs", per="target")
    args = runner.parse(p, argv)
    wanted = runner.wanted(p, args.only, names)

    def collect(procs: Procs, tmp: Path, rows: list[Row]) -> None:
        bport = start_backend(procs, tmp, backend)
        print(
            f"backend: nginx on 127.0.0.1:{bport} serving {len(document()):,} bytes of JSON; "
            f"wrk -t1 -c64 -d{args.duration}s -H 'Accept-Encoding: gzip', warm-up {args.warmup}s"
        )
        for t in all_targets(args.dockroute_arg):
            if t.name in wanted:
                rows.append(run_target(procs, t, tmp, bport, args.duration, args.warmup))

    return runner.main_loop(
        "bench.compress", argv, args, collect, blocks, write_results, "dockroute-bench-compress-"
    )


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
