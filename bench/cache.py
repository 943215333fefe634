"""``python -m bench.cache``: what the cache and a three-middleware chain cost or gain, against Caddy.

One nginx backend serves the bench's small file with ``Cache-Control: max-age=3600``. Each target proxies
it on 127.0.0.1:<free port> and is measured alone with ``wrk -t1 -c64 --latency`` (as ``python -m
bench``):

- ``dockroute``: a router without middlewares (the request never builds an exchange);
- ``dockroute-chain``: the same router with ``headers`` (a request and a response header) + ``rateLimit``
  (an average far above what the machine can do: never limiting) + ``compress`` (wrk sends no
  ``Accept-Encoding``, so it negotiates and passes the answer through): the cost of the chain itself;
- ``dockroute-cache``: the same router with ``cache``: after the first request every answer is a HIT that
  never reaches the backend (checked before measuring: ``X-Cache: HIT``);
- ``caddy``: Caddy's ``reverse_proxy`` to the same backend (Caddy has no cache of its own);
- with ``--only each``: the router with one of the three middlewares at a time.

Printed: req/s, p50/p99, the chain's cost in % of req/s (target: under 15%; measured again in paired
rounds, both routers up and wrk alternating between them, whose median is the verdict, since two runs a
minute apart differ by several % on this machine alone), the cache HIT against the
uncached router and against Caddy (target: at least as fast as Caddy). ``--write-results`` puts the run
into ``bench/RESULTS.md`` between ``<!-- cache -->`` markers.
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import statistics
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
from bench.report import (
    Row,
    put_bench_section,
    table,
)
from bench.runner import Started
from bench.targets import (
    BENCH_HOST,
    Launch,
    backend,
    caddy,
    dockroute_launch,
    proxy_dynamic,
    start_backend,
)

_MARK = "<!-- cache -->"
CPU_US: dict[str, float] = {}  # target → its CPU microseconds per request in the measured run
CACHE_CONTROL = "max-age=3600"

# the middlewares the rows use (YAML under http.middlewares)
_PIECES = {
    "hdr": """    hdr:
      headers:
        customRequestHeaders:
          X-Bench-Request: "1"
        customResponseHeaders:
          X-Bench: "1"
""",
    "limit": """    limit:
      rateLimit:
        average: 100000000
        burst: 100000000
""",
    "gz": """    gz:
      compress: {}
""",
    "cached": """    cached:
      cache: {}
""",
}
# dockroute rows → the middlewares of their router; the last three are measured only when asked for
# (``--only each``), to see which part of the chain costs what
ROWS: dict[str, tuple[str, ...]] = {
    "dockroute": (),
    "dockroute-chain": ("hdr", "limit", "gz"),
    "dockroute-cache": ("cached",),
    "dockroute-hdr": ("hdr",),
    "dockroute-rate": ("limit",),
    "dockroute-gz": ("gz",),
}
DEFAULT = ("dockroute", "dockroute-chain", "dockroute-cache", "caddy")
ALIASES = {"each": ["dockroute", "dockroute-hdr", "dockroute-rate", "dockroute-gz"]}


def _header_ran(r: http.client.HTTPResponse) -> str | None:
    return None if r.getheader("X-Bench") == "1" else "the headers middleware did not run"


def _hit(r: http.client.HTTPResponse) -> str | None:
    return None if r.getheader("X-Cache") == "HIT" else f"X-Cache {r.getheader('X-Cache')}, not HIT"


_CHECKS: dict[str, Callable[[http.client.HTTPResponse], str | None]] = {
    "dockroute-chain": _header_ran,
    "dockroute-hdr": _header_ran,
    "dockroute-cache": _hit,
}


def cached_backend(d: Path, port: int, _backend_port: int = 0) -> Launch:
    """The bench's nginx backend (bench.targets.backend), its answers cacheable for an hour."""
    launch = backend(d, port)
    conf = d / "nginx.conf"
    text = conf.read_text()
    marker = "default_type text/plain;"
    if marker not in text:
        raise RuntimeError("bench.targets.backend changed: cannot add Cache-Control to its nginx.conf")
    conf.write_text(text.replace(marker, f'{marker} add_header Cache-Control "{CACHE_CONTROL}";'))
    return launch


def dockroute_with(name: str, extra: list[str]) -> Callable[[Path, int, int], Launch]:
    def make(d: Path, port: int, backend_port: int) -> Launch:
        names = ROWS[name]
        mws = "".join(_PIECES[n] for n in names)
        router_mws = f"      middlewares: [{', '.join(names)}]\n" if names else ""
        dynamic = proxy_dynamic(backend_port, router_mws, f"  middlewares:\n{mws}" if mws else "")
        return dockroute_launch(d, port, extra, dynamic)

    return make


@dataclass(frozen=True)
class CacheTarget:
    name: str
    binary: str
    make: Callable[[Path, int, int], Launch]

    def installed(self) -> bool:
        return self.binary == "python" or shutil.which(self.binary) is not None


def all_targets(extra: list[str]) -> list[CacheTarget]:
    return [
        *(CacheTarget(name, "python", dockroute_with(name, extra)) for name in ROWS),
        CacheTarget("caddy", "caddy", caddy),
    ]


def check_answer(name: str, port: int) -> None:
    """One GET as wrk will send it: 200, and what the row is about is really there."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5.0)
    try:
        conn.request("GET", "/", headers={"Host": BENCH_HOST})
        resp = conn.getresponse()
        resp.read()
        if resp.status != 200:
            raise NotReady(f"HTTP {resp.status}")
        problem = _CHECKS[name](resp) if name in _CHECKS else None
        if problem:
            raise NotReady(problem)
    finally:
        conn.close()


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (all its threads) so far, from /proc; None where unreadable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def measure(
    procs: Procs, url: str, duration: int, warmup: float, pid: int
) -> tuple[wrk.WrkResult, float | None]:
    """wrk's figures, and the target's CPU microseconds per request: what a busy machine's noise does not
    change much (req/s depends on how much of the CPUs the target got)."""
    command = lambda seconds: wrk.command(url, BENCH_HOST, seconds)  # noqa: E731
    runner.warm_up(procs, command, warmup)
    before = cpu_seconds(pid)
    result = runner.run_wrk(procs, command, duration)
    after = cpu_seconds(pid)
    if before is None or after is None or not result.requests:
        return result, None
    return result, (after - before) / result.requests * 1e6


def run_target(procs: Procs, t: CacheTarget, tmp: Path, bport: int, duration: int, warmup: float) -> Row:
    def body(s: Started) -> Row:
        wait_ready(s.port, BENCH_HOST, s.proc, s.log)
        check_answer(t.name, s.port)
        print(f" ready in {s.ready_in()}, measuring {duration}s ...", end="", flush=True)
        result, cpu = measure(procs, f"http://127.0.0.1:{s.port}/", duration, warmup, s.proc.pid)
        if s.proc.poll() is not None:
            print(" died")
            return Row(t.name, status=runner.died(s.proc))
        if cpu is not None:
            CPU_US[t.name] = cpu
        print(f" {result.rps:,.0f} req/s" + (f", {cpu:.0f} µs CPU/request" if cpu is not None else ""))
        return Row(t.name, result, log_errors=count_log_errors(s.log))

    make = lambda d, port: t.make(d, port, bport)  # noqa: E731
    return runner.run_target(procs, t.name, Row(t.name), tmp, make, body, t.installed())


PAIR_ROUNDS = 6
PAIR_SECONDS = 4
PAIRED: list[float] = []  # the chain's cost in % of req/s, one figure per round of the paired measurement


def paired_cost(procs: Procs, tmp: Path, bport: int, extra: list[str], warmup: float) -> None:
    """The chain's cost measured in pairs: both routers up at once, wrk alternating between them in short
    rounds (plain first in even rounds, the chain first in odd ones), one cost per round. The machine's
    drift (what the other core runs, its clock) then hits both sides of a pair alike, where two 10 s runs
    a minute apart differ by several % on their own. Fills :data:`PAIRED`."""

    def started(name: str, s: Started) -> Callable[[int], list[str]]:
        wait_ready(s.port, BENCH_HOST, s.proc, s.log)
        check_answer(name, s.port)
        url = f"http://127.0.0.1:{s.port}/"
        return lambda seconds: wrk.command(url, BENCH_HOST, seconds)

    def with_plain(a: Started) -> Row:
        plain = started("dockroute", a)

        def with_chain(b: Started) -> Row:
            chain = started("dockroute-chain", b)
            print(f" ready; {PAIR_ROUNDS} rounds of {PAIR_SECONDS}s each side ...", end="", flush=True)
            runner.warm_up(procs, plain, warmup)
            runner.warm_up(procs, chain, warmup)
            for i in range(PAIR_ROUNDS):
                order = (plain, chain) if i % 2 == 0 else (chain, plain)
                rps = {cmd: runner.run_wrk(procs, cmd, PAIR_SECONDS).rps for cmd in order}
                if rps[plain] > 0:
                    PAIRED.append((1 - rps[chain] / rps[plain]) * 100)
            print(" " + ", ".join(f"{c:.1f}%" for c in PAIRED))
            return Row("pair")

        make = lambda d, port: dockroute_with("dockroute-chain", extra)(d, port, bport)  # noqa: E731
        return runner.run_target(procs, "dockroute-chain-paired", Row("pair"), tmp, make, with_chain)

    make = lambda d, port: dockroute_with("dockroute", extra)(d, port, bport)  # noqa: E731
    print("chain cost in paired rounds:")
    runner.run_target(procs, "dockroute-paired", Row("pair"), tmp, make, with_plain)


def figures(rows: list[Row]) -> list[str]:
    """The chain's cost and the cache HIT's gain, with the issue's targets; then CPU per request."""
    rps = {r.name: r.result.rps for r in rows if r.result is not None}
    out: list[str] = []
    plain, chain, hit, peer = (
        rps.get(n) for n in ("dockroute", "dockroute-chain", "dockroute-cache", "caddy")
    )
    if PAIRED:
        cost = statistics.median(PAIRED)
        verdict = "met" if cost < 15 else "MISSED"
        out.append(
            f"headers+rateLimit+compress cost: {cost:.1f}% of req/s, median of {len(PAIRED)} paired rounds "
            f"({min(PAIRED):.1f} to {max(PAIRED):.1f}) (target under 15%: {verdict})"
        )
    if plain and chain:
        cost = (1 - chain / plain) * 100
        out.append(f"  in the table's two runs alone: {cost:.1f}%")
    if plain and hit:
        out.append(f"cache HIT / uncached router:     {hit / plain:.2f}x req/s")
    if peer and hit:
        verdict = "met" if hit >= peer else "MISSED"
        out.append(
            f"cache HIT / Caddy reverse_proxy: {hit / peer:.2f}x req/s (target at least 1x: {verdict})"
        )
    if CPU_US:
        out.append("")
        out.append(
            "each target's own CPU per request (µs, user+system, all threads; the backend not counted):"
        )
        out.extend(f"  {name:<17} {us:>6.0f}" for name, us in CPU_US.items())
        plain_cpu, chain_cpu = CPU_US.get("dockroute"), CPU_US.get("dockroute-chain")
        if plain_cpu and chain_cpu:
            out.append(f"  the chain costs {(chain_cpu / plain_cpu - 1) * 100:+.0f}% CPU per request")
    return out


def blocks(rows: list[Row]) -> tuple[list[str], list[str]]:
    return table(rows), figures(rows)


def write_results(rows: list[Row], command: str, duration: int) -> Path:
    return put_bench_section(
        _MARK,
        "Cache and middleware chain",
        f"`{command}` (wrk -t1 -c64 -d{duration}s --latency; backend answers with "
        f"`Cache-Control: {CACHE_CONTROL}`)",
        *blocks(rows),
    )


def main(argv: list[str]) -> int:
    names = [t.name for t in all_targets([])]
    p = argparse.ArgumentParser(prog="python -m bench.cache", description=__doc__.splitlines()[0])
    only_help = (
        f"comma-separated subset of: {', '.join(names)}; alias each: one middleware at a time "
        f"(default: {', '.join(DEFAULT)})"
    )
    runner.add_args(p, only_help, "configs and logs")
    args = runner.parse(p, argv)
    wanted = runner.wanted(p, args.only, names, ALIASES, DEFAULT, ", or each")

    def collect(procs: Procs, tmp: Path, rows: list[Row]) -> None:
        bport = start_backend(procs, tmp, cached_backend)
        print(
            f"backend: nginx on 127.0.0.1:{bport} (Cache-Control: {CACHE_CONTROL}); "
            f"wrk -t1 -c64 -d{args.duration}s, warm-up {args.warmup}s"
        )
        for t in all_targets(args.dockroute_arg):
            if t.name in wanted:
                rows.append(run_target(procs, t, tmp, bport, args.duration, args.warmup))
        if "dockroute" in wanted and "dockroute-chain" in wanted:
            paired_cost(procs, tmp, bport, args.dockroute_arg, args.warmup)

    return runner.main_loop(
        "bench.cache", argv, args, collect, blocks, write_results, "dockroute-bench-cache-"
    )


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
