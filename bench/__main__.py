"""``python -m bench``: dockroute against nginx, Caddy and HAProxy in front of one nginx backend.

Each target is started alone (the backend stays up), warmed up, measured with
``wrk -t1 -c64 -d<duration>s --latency`` and killed (its whole process group) before the next one.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench import report, runner, wrk
from bench.procs import (
    Procs,
    count_log_errors,
    wait_ready,
)
from bench.report import Row
from bench.runner import Started
from bench.targets import BENCH_HOST, Target, all_targets, start_backend

ALIASES = {"scale": ["dockroute-10r", "dockroute-1000r"], "peers": ["nginx", "caddy", "haproxy"]}


def parse_args(argv: list[str]) -> argparse.Namespace:
    names = [t.name for t in all_targets([])]
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark dockroute against nginx, Caddy and HAProxy (wrk -t1 -c64 --latency).",
    )
    runner.add_args(
        p,
        f"comma-separated subset of: {', '.join(names)}; aliases: scale, peers (default: all)",
        "configs and logs",
        per="target",
        dockroute_help="extra argument for each dockroute started (repeatable), "
        "e.g. --dockroute-arg=--log.level=DEBUG",
        write_help="add this run to bench/RESULTS.md",
    )
    args = runner.parse(p, argv)
    args.wanted = runner.wanted(p, args.only, names, ALIASES)
    return args


def measure(procs: Procs, url: str, host: str, duration: int, warmup: float) -> wrk.WrkResult:
    return runner.measure(procs, lambda secs: wrk.command(url, host, secs), duration, warmup)


def run_target(
    procs: Procs, target: Target, tmp: Path, backend_port: int, duration: int, warmup: float
) -> Row:
    def body(s: Started) -> Row:
        wait_ready(s.port, target.host, s.proc, s.log)
        print(f" ready in {s.ready_in()}, measuring {duration}s ...", end="", flush=True)
        result = measure(procs, f"http://127.0.0.1:{s.port}/", target.host, duration, warmup)
        if s.proc.poll() is not None:
            print(" died")
            return Row(target.name, status=runner.died(s.proc))
        print(f" {result.rps:,.0f} req/s")
        return Row(target.name, result, log_errors=count_log_errors(s.log))

    make = lambda d, port: target.make(d, port, backend_port)  # noqa: E731
    return runner.run_target(procs, target.name, Row(target.name), tmp, make, body, target.installed())


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    targets = [t for t in all_targets(args.dockroute_arg) if t.name in args.wanted]

    def collect(procs: Procs, tmp: Path, rows: list[Row]) -> None:
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

    def write(rows: list[Row], command: str, duration: int) -> Path:
        return report.write_results(report.run_section(rows, command, duration))

    def blocks(rows: list[Row]) -> tuple[list[str], ...]:
        return report.table(rows), report.ratios(rows), report.targets(rows)

    return runner.main_loop("bench", argv, args, collect, blocks, write)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
