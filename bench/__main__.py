"""``python -m bench``: dockroute against nginx, Caddy and HAProxy in front of one nginx backend.

Each target is started alone (the backend stays up), warmed up, measured with
``wrk -t1 -c64 -d<duration>s --latency`` and killed (its whole process group) before the next one.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time
from pathlib import Path

from bench import report, wrk
from bench.procs import (
    NotReady,
    Procs,
    count_log_errors,
    exit_on_sigterm,
    free_port,
    missing_tools,
    wait_ready,
)
from bench.report import Row
from bench.targets import BENCH_HOST, Target, all_targets, start_backend

ALIASES = {"scale": ["dockroute-10r", "dockroute-1000r"], "peers": ["nginx", "caddy", "haproxy"]}


def parse_args(argv: list[str]) -> argparse.Namespace:
    names = [t.name for t in all_targets([])]
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark dockroute against nginx, Caddy and HAProxy (wrk -t1 -c64 --latency).",
    )
    p.add_argument("--duration", type=int, default=10, help="seconds measured per target (default 10)")
    p.add_argument("--quick", action="store_true", help="smoke run: 3 s per target, 1 s warm-up")
    p.add_argument("--warmup", type=float, default=None, help="warm-up seconds per target (default 2)")
    p.add_argument(
        "--only",
        default="",
        help=f"comma-separated subset of: {', '.join(names)}; aliases: scale, peers (default: all)",
    )
    p.add_argument(
        "--dockroute-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra argument for each dockroute started (repeatable), e.g. --dockroute-arg=--log.level=DEBUG",
    )
    p.add_argument("--write-results", action="store_true", help="add this run to bench/RESULTS.md")
    p.add_argument("--keep-tmp", action="store_true", help="keep the temp dir (configs and logs)")
    args = p.parse_args(argv)
    if args.quick:
        args.duration = 3
    if args.warmup is None:
        args.warmup = 1.0 if args.quick else 2.0
    wanted: list[str] = []
    for item in filter(None, (s.strip() for s in args.only.split(","))):
        for name in ALIASES.get(item, [item]):
            if name not in names:
                p.error(f"unknown target {name!r}; choose from {', '.join(names)}")
            wanted.append(name)
    args.wanted = wanted or names
    return args


def measure(procs: Procs, url: str, host: str, duration: int, warmup: float) -> wrk.WrkResult:
    if warmup > 0:
        procs.run(wrk.command(url, host, max(1, round(warmup))), timeout=warmup + 30)
    out = procs.run(wrk.command(url, host, duration), timeout=duration + 30)
    return wrk.parse(out)


def run_target(
    procs: Procs, target: Target, tmp: Path, backend_port: int, duration: int, warmup: float
) -> Row:
    if not target.installed():
        return Row(target.name, status="not installed")
    d = tmp / target.name
    d.mkdir()
    port = free_port()
    launch = target.make(d, port, backend_port)
    log = d / "output.log"
    print(f"  {target.name}: starting on 127.0.0.1:{port} ...", end="", flush=True)
    try:
        proc = procs.start(launch.argv, log, cwd=launch.cwd, env=launch.env)
    except OSError as exc:
        print(" failed")
        return Row(target.name, status=f"failed to start: {exc}")
    try:
        started = time.monotonic()
        wait_ready(port, target.host, proc, log)
        print(f" ready in {time.monotonic() - started:.1f}s, measuring {duration}s ...", end="", flush=True)
        result = measure(procs, f"http://127.0.0.1:{port}/", target.host, duration, warmup)
        if proc.poll() is not None:
            print(" died")
            return Row(target.name, status=f"failed: exited ({proc.returncode}) during the run")
        print(f" {result.rps:,.0f} req/s")
        return Row(target.name, result, log_errors=count_log_errors(log))
    except NotReady as exc:
        print(" not ready")
        return Row(target.name, status=f"failed: {exc}")
    except wrk.WrkParseError as exc:
        print(" wrk failed")
        return Row(target.name, status=f"failed: {exc}")
    finally:
        procs.kill(proc)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if missing_tools("bench", ("wrk", "nginx")):
        return 2
    exit_on_sigterm()
    command = "python -m bench" + ("" if not argv else " " + shlex.join(argv))
    targets = [t for t in all_targets(args.dockroute_arg) if t.name in args.wanted]
    procs = Procs()
    tmp = Path(tempfile.mkdtemp(prefix="dockroute-bench-"))
    rows: list[Row] = []
    interrupted = False
    try:
        bport = start_backend(procs, tmp)
        print(f"backend: nginx on 127.0.0.1:{bport}; wrk -t1 -c64 -d{args.duration}s, warm-up {args.warmup}s")
        for target in targets:
            if target.name == "direct":
                print("  direct: measuring the backend itself ...", end="", flush=True)
                url = f"http://127.0.0.1:{bport}/"
                try:
                    result = measure(procs, url, BENCH_HOST, args.duration, args.warmup)
                except wrk.WrkParseError as exc:
                    print(" wrk failed")
                    rows.append(Row("direct", status=f"failed: {exc}"))
                    continue
                print(f" {result.rps:,.0f} req/s")
                rows.append(Row("direct", result))
                continue
            rows.append(run_target(procs, target, tmp, bport, args.duration, args.warmup))
    except NotReady as exc:
        print(f"bench: the nginx backend did not start: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        interrupted = True
        print("\ninterrupted; stopping everything", file=sys.stderr)
    finally:
        procs.finish(tmp, args.keep_tmp)

    report.print_blocks(report.table(rows), report.ratios(rows), report.targets(rows))
    if args.write_results and not interrupted:
        path = report.write_results(report.run_section(rows, command, args.duration))
        print(f"\nwrote {path}")
    return 130 if interrupted else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
