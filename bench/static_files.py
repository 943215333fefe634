"""``python -m bench.static_files``: files served by the proxy itself, dockroute's ``static`` service
against nginx (``sendfile on``, ``open_file_cache``) and Caddy's ``file_server``, the same files.

Every target serves one directory holding a 4 KiB file (``/file-4k.html``, the figure the project's
target is about: at least as fast as Caddy) and a 1 MiB file (``/file-1m.bin``, sent with sendfile by
all three). Before measuring, each target is checked to answer both files byte for byte, so a target
that answers something else cannot win. Each file is measured with ``wrk -t1 -c64 -d<duration>s
--latency`` after a warm-up; nginx runs one worker, Caddy its default (every core), dockroute one process.

``--write-results`` puts the run into ``bench/RESULTS.md`` between ``<!-- static-files -->`` markers.
"""

from __future__ import annotations

import argparse
import http.client
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench import runner, wrk
from bench.procs import NotReady, Procs, count_log_errors, tail
from bench.report import put_bench_section
from bench.runner import Started
from bench.targets import (
    BENCH_HOST,
    Launch,
    _nginx_common,
    caddy_http,
    dockroute_launch,
    nginx_launch,
)

_MARK = "<!-- static-files -->"
FILES = {"/file-4k.html": 4096, "/file-1m.bin": 1 << 20}


def make_site(d: Path) -> dict[str, bytes]:
    """The directory every target serves, the same bytes in every run (path → contents)."""
    www = d / "www"
    www.mkdir(parents=True)
    out = {}
    for path, size in FILES.items():
        block = (b"dockroute static bench " * 64)[:1024]
        data = (block * (size // len(block) + 1))[:size]
        (www / path.lstrip("/")).write_bytes(data)
        out[path] = data
    (www / "index.html").write_bytes(b"ok\n")
    return out


# -- targets ----------------------------------------------------------------------------------------------

Make = Callable[[Path, int, Path], Launch]


def dockroute_static(extra: list[str]) -> Make:
    def make(d: Path, port: int, www: Path) -> Launch:
        dynamic = f"""http:
  routers:
    bench:
      rule: "Host(`{BENCH_HOST}`)"
      service: files
  services:
    files:
      static:
        root: "{www}"
"""
        return dockroute_launch(d, port, extra, dynamic)

    return make


def nginx_static(d: Path, port: int, www: Path) -> Launch:
    conf = (
        "worker_processes 1;\n"
        + _nginx_common(d)
        + f"""    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    open_file_cache max=1000 inactive=20s;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        server_name _;
        root {www};
    }}
}}
"""
    )
    return nginx_launch(d, conf)


def caddy_static(d: Path, port: int, www: Path) -> Launch:
    return caddy_http(d, port, f"    root * {www}\n    file_server\n")


@dataclass(frozen=True)
class StaticTarget:
    name: str
    binary: str
    make: Make

    def installed(self) -> bool:
        return self.binary == "python" or shutil.which(self.binary) is not None


def all_targets(dockroute_args: list[str]) -> list[StaticTarget]:
    return [
        StaticTarget("dockroute", "python", dockroute_static(dockroute_args)),
        StaticTarget("nginx", "nginx", nginx_static),
        StaticTarget("caddy", "caddy", caddy_static),
    ]


# -- readiness and measuring ------------------------------------------------------------------------------


def wait_ready_files(
    port: int, files: dict[str, bytes], proc: object, log: Path, deadline_s: float = 20.0
) -> None:
    """Poll until every file comes back 200 with its exact bytes (never a fixed sleep)."""
    deadline = time.monotonic() + deadline_s
    last = "no answer"
    while time.monotonic() < deadline:
        if proc.poll() is not None:  # type: ignore[attr-defined]
            raise NotReady(f"exited with status {proc.returncode}; {tail(log)}")  # type: ignore[attr-defined]
        try:
            for path, data in files.items():
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2.0)
                try:
                    conn.request("GET", path, headers={"Host": BENCH_HOST})
                    resp = conn.getresponse()
                    body = resp.read()
                finally:
                    conn.close()
                if resp.status != 200 or body != data:
                    last = f"{path}: HTTP {resp.status}, {len(body)} bytes"
                    raise NotReady(last)
            return
        except (OSError, http.client.HTTPException, NotReady) as exc:
            last = f"{type(exc).__name__}: {exc}"
        time.sleep(0.05)
    raise NotReady(f"the files were not served within {deadline_s:.0f}s ({last}); {tail(log)}")


@dataclass
class StaticRow:
    name: str
    results: dict[str, wrk.WrkResult] = field(default_factory=dict)
    status: str = ""
    log_errors: int = 0


def run_target(
    procs: Procs, t: StaticTarget, tmp: Path, files: dict[str, bytes], duration: int, warmup: float
) -> StaticRow:
    def body(s: Started) -> StaticRow:
        wait_ready_files(s.port, files, s.proc, s.log)
        print(f" ready in {s.ready_in()}", flush=True)
        for path in files:
            url = f"http://127.0.0.1:{s.port}{path}"
            print(f"    {path}, {duration}s ...", end="", flush=True)
            result = runner.measure(
                procs, lambda secs, url=url: wrk.command(url, BENCH_HOST, secs), duration, warmup
            )
            print(f" {result.rps:,.0f} req/s" + (f", errors {result.error_text()}" if result.errors else ""))
            row.results[path] = result
            if s.proc.poll() is not None:
                row.status = runner.died(s.proc)
                return row
        row.log_errors = count_log_errors(s.log)
        return row

    row = StaticRow(t.name)
    make = lambda d, port: t.make(d, port, tmp / "site" / "www")  # noqa: E731
    return runner.run_target(procs, t.name, row, tmp, make, body, t.installed())


# -- output -----------------------------------------------------------------------------------------------


def table(rows: list[StaticRow]) -> list[str]:
    cols = "".join(f" {p + ' req/s':>20} {'p99 ms':>8}" for p in FILES)
    out = [
        f"{'target':<10}{cols}  errors",
        f"{'-' * 10}" + f" {'-' * 20} {'-' * 8}" * len(FILES) + "  ------",
    ]
    for row in rows:
        if not row.results:
            out.append(f"{row.name:<10} {row.status}")
            continue
        figs = ""
        errs = []
        for path in FILES:
            r = row.results.get(path)
            figs += f" {r.rps:>20,.0f} {r.p99_ms:>8.2f}" if r else f" {'-':>20} {'-':>8}"
            if r is not None and r.errors:
                errs.append(f"{path}: {r.error_text()}")
        flag = "  << FLAGGED" if errs else ""
        extra = f" ({row.status})" if row.status else ""
        logged = f" (its log: {row.log_errors} error lines)" if row.log_errors else ""
        out.append(f"{row.name:<10}{figs}  {'; '.join(errs) or '0'}{flag}{extra}{logged}")
    return out


def ratios(rows: list[StaticRow]) -> list[str]:
    by = {r.name: r for r in rows}
    dr = by.get("dockroute")
    if dr is None or not dr.results:
        return []
    out = [f"{'dockroute / peer':<18}" + "".join(f" {p:>14}" for p in FILES) + "   (req/s; >1 faster)"]
    for peer in ("nginx", "caddy"):
        p = by.get(peer)
        if p is None or not p.results:
            continue
        cells = ""
        for path in FILES:
            a, b = dr.results.get(path), p.results.get(path)
            cells += f" {a.rps / b.rps:>13.2f}x" if a and b else f" {'-':>14}"
        out.append(f"  vs {peer:<14}{cells}")
    cad = by.get("caddy")
    a = dr.results.get("/file-4k.html")
    b = cad.results.get("/file-4k.html") if cad else None
    verdict = "n/a" if not (a and b) else ("PASS" if a.rps >= b.rps else "FAIL")
    out.append(f"target: static 4 KiB file at least as fast as Caddy: {verdict}")
    return out


def blocks(rows: list[StaticRow]) -> tuple[list[str], list[str]]:
    return table(rows), ratios(rows)


def write_results(rows: list[StaticRow], command: str, duration: int) -> Path:
    return put_bench_section(
        _MARK,
        "Static files",
        f"`{command}` (wrk -t1 -c64 -d{duration}s --latency per file; nginx 1 worker with "
        "sendfile and open_file_cache, Caddy file_server with its defaults, dockroute one process)",
        *blocks(rows),
    )


# -- main -------------------------------------------------------------------------------------------------


def main(argv: list[str]) -> int:
    names = [t.name for t in all_targets([])]
    p = argparse.ArgumentParser(prog="python -m bench.static_files", description=__doc__.splitlines()[0])
    runner.add_args(p, f"comma-separated subset of: {', '.join(names)}", "files, configs, logs")
    args = runner.parse(p, argv)
    wanted = runner.wanted(p, args.only, names)

    def collect(procs: Procs, tmp: Path, rows: list[StaticRow]) -> None:
        files = make_site(tmp / "site")
        print(f"files: {', '.join(FILES)}; wrk -t1 -c64 -d{args.duration}s, warm-up {args.warmup}s")
        for t in all_targets(args.dockroute_arg):
            if t.name in wanted:
                rows.append(run_target(procs, t, tmp, files, args.duration, args.warmup))

    return runner.main_loop(
        "bench.static_files",
        argv,
        args,
        collect,
        blocks,
        write_results,
        "dockroute-bench-static-",
        tmp_mode=0o755,  # nginx's workers run as an unprivileged user when the bench runs as root
        tools=("wrk",),
    )


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
