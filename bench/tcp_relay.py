"""``python -m bench.tcp_relay``: TCP relay throughput, dockroute's ``tcp.routers`` against HAProxy
(``mode tcp``) and nginx ``stream``, in MB/s over one connection and over 64.

The backend and the load are iperf3 (C, one thread each side): for every row a fresh ``iperf3 -s`` on
127.0.0.1, then the relay in front of it, then ``iperf3 -c <relay> -P <streams> [-R] -t <duration>
-O <warm-up> -J`` ``--runs`` times per mode; the figure is the median of what the receiving side counted
(MB = 10^6 bytes, the warm-up seconds left out). The modes: client to backend (``up``) and backend to
client (``down``, iperf3's ``-R``), one connection and 64. The ``direct`` row is iperf3 without a relay:
the ceiling of the load generator and backend on this machine, well above any relay's row. The relay
shares the cores with both iperf3 ends, so beside each figure stands the relay's CPU during the runs (its
whole process group, from /proc, in % of one core): MB/s per CPU, the cost of a byte, is steadier than
MB/s when the machine is small or busy.

Every relay gets one core's worth of workers, as in ``python -m bench``: dockroute one process, HAProxy
``nbthread 1``, nginx one worker. HAProxy and nginx run with their default 16 KiB buffers (what a user
gets) and again with 256 KiB ones (``haproxy-256k``: ``tune.bufsize``, ``nginx-256k``:
``proxy_buffer_size``), closer to dockroute's own: a plain TCP route (no TLS on either side) is relayed
with splice(2) through a pipe per direction (router/tcp/splice.py), so the bytes never enter Python; a TLS
side would take the asyncio relay instead, which this bench does not measure (iperf3 speaks no TLS).
``--write-results`` puts the run into ``bench/RESULTS.md`` between ``<!-- tcp-relay -->`` markers.
Needs ``iperf3``, and ``haproxy`` / ``nginx`` with ``libnginx-mod-stream`` for the peers' rows.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench import report, runner
from bench.procs import NotReady, Procs, count_log_errors, free_port, tail
from bench.runner import Started
from bench.targets import Launch, dockroute_launch, nginx_launch

_MARK = "<!-- tcp-relay -->"
STREAM_MODULE = Path("/usr/lib/nginx/modules/ngx_stream_module.so")
PEERS = ("haproxy", "nginx", "haproxy-256k", "nginx-256k")


class IperfError(RuntimeError):
    """iperf3 exited without a result (its own error message, or output that is not its JSON)."""


@dataclass(frozen=True)
class Mode:
    """One measurement: ``streams`` connections at once, data flowing to the backend or (reverse) back."""

    streams: int
    reverse: bool = False

    @property
    def label(self) -> str:
        return f"{'down' if self.reverse else 'up'} x{self.streams}"


MODES = (Mode(1), Mode(64), Mode(1, reverse=True), Mode(64, reverse=True))


@dataclass
class RelayRow:
    """One relay's figures: MB/s and relay CPU % per run, by mode label."""

    name: str
    mbps: dict[str, list[float]] = field(default_factory=dict)
    cpu: dict[str, list[float]] = field(default_factory=dict)
    status: str = ""
    log_errors: int = 0

    def median(self, label: str) -> float | None:
        runs = self.mbps.get(label)
        return statistics.median(runs) if runs else None

    def cpu_median(self, label: str) -> float | None:
        runs = self.cpu.get(label)
        return statistics.median(runs) if runs else None


# -- relays -----------------------------------------------------------------------------------------------

Make = Callable[[Path, int, int], Launch]  # (own dir, listen port, backend port) → how to start it


def dockroute_tcp(extra: list[str]) -> Make:
    """dockroute with one ``HostSNI(`*`)`` TCP router (plain TCP, no TLS) to the backend."""

    def make(d: Path, port: int, backend_port: int) -> Launch:
        dynamic = f"""tcp:
  routers:
    bench:
      entryPoints: [tcp]
      rule: "HostSNI(`*`)"
      service: sink
  services:
    sink:
      loadBalancer:
        servers:
          - address: "127.0.0.1:{backend_port}"
"""
        return dockroute_launch(d, port, extra, dynamic, entry_point="tcp")

    return make


def haproxy_tcp(bufsize: int | None = None) -> Make:
    """HAProxy 1 thread, ``mode tcp``; ``bufsize`` sets ``tune.bufsize`` (default 16 KiB)."""

    def make(d: Path, port: int, backend_port: int) -> Launch:
        tune = f"    tune.bufsize {bufsize}\n" if bufsize else ""
        (d / "haproxy.cfg").write_text(
            f"""global
    nbthread 1
    maxconn 4096
{tune}
defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s

frontend fe
    bind 127.0.0.1:{port}
    default_backend be

backend be
    server s1 127.0.0.1:{backend_port}
"""
        )
        return Launch(["haproxy", "-db", "-f", str(d / "haproxy.cfg")])

    return make


def nginx_stream(buffer: str | None = None) -> Make:
    """nginx 1 worker, the ``stream`` module (loaded here: the config is the bench's own) proxying TCP;
    ``buffer`` sets ``proxy_buffer_size`` (default 16k)."""

    def make(d: Path, port: int, backend_port: int) -> Launch:
        size = f"        proxy_buffer_size {buffer};\n" if buffer else ""
        conf = f"""load_module {STREAM_MODULE};
worker_processes 1;
daemon off;
pid {d / "nginx.pid"};
error_log {d / "error.log"} warn;
events {{ worker_connections 4096; }}
stream {{
    server {{
        listen 127.0.0.1:{port} backlog=4096;
{size}        proxy_pass 127.0.0.1:{backend_port};
    }}
}}
"""
        return nginx_launch(d, conf)

    return make


@dataclass(frozen=True)
class RelayTarget:
    name: str
    binary: str  # "python" for dockroute, "" for direct
    make: Make | None

    def missing(self) -> str:
        """Why this row cannot run here, or ""."""
        if self.binary not in ("", "python") and shutil.which(self.binary) is None:
            return "not installed"
        if self.binary == "nginx" and not STREAM_MODULE.exists():
            return "not installed (nginx's stream module: apt-get install libnginx-mod-stream)"
        return ""


def all_targets(dockroute_args: list[str]) -> list[RelayTarget]:
    return [
        RelayTarget("direct", "", None),
        RelayTarget("dockroute", "python", dockroute_tcp(dockroute_args)),
        RelayTarget("haproxy", "haproxy", haproxy_tcp()),
        RelayTarget("nginx", "nginx", nginx_stream()),
        RelayTarget("haproxy-256k", "haproxy", haproxy_tcp(bufsize=256 * 1024)),
        RelayTarget("nginx-256k", "nginx", nginx_stream("256k")),
    ]


# -- iperf3 -----------------------------------------------------------------------------------------------


def iperf_command(port: int, mode: Mode, duration: float, omit: float) -> list[str]:
    argv = ["iperf3", "-c", "127.0.0.1", "-p", str(port), "-P", str(mode.streams), "-J"]
    argv += ["-t", f"{duration:g}", "-O", f"{omit:g}", "--connect-timeout", "3000"]
    return argv + (["-R"] if mode.reverse else [])


def parse_iperf(text: str) -> float:
    """MB/s the receiving side counted (10^6 bytes), from iperf3's ``-J`` output."""
    try:
        doc = json.loads(text)
    except ValueError:
        raise IperfError(f"not iperf3's JSON: {text.strip()[-300:]!r}") from None
    if doc.get("error"):
        raise IperfError(str(doc["error"]))
    try:
        return float(doc["end"]["sum_received"]["bits_per_second"]) / 8e6
    except (KeyError, TypeError, ValueError):
        raise IperfError("iperf3's JSON has no end.sum_received") from None


def group_cpu_seconds(pgid: int) -> float:
    """User + system CPU seconds of every live process in group ``pgid`` (threads included)."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        rest = stat[stat.rfind(")") + 2 :].split()
        if int(rest[2]) == pgid:
            total += int(rest[11]) + int(rest[12])
    return total / os.sysconf("SC_CLK_TCK")


def start_sink(procs: Procs, d: Path) -> tuple[int, subprocess.Popen[bytes]]:
    """A fresh ``iperf3 -s`` on 127.0.0.1, answering a transfer; returns (port, process). Readiness is a
    tiny iperf3 transfer, not a bare connect: iperf3's server takes a connection that closes without its
    handshake as a failed test and resets the next client's for a moment."""
    d.mkdir()
    port = free_port()
    log = d / "iperf3-server.log"
    proc = procs.start(["iperf3", "-s", "-B", "127.0.0.1", "-p", str(port)], log)
    wait_relaying(port, procs, proc, log, deadline_s=10.0)
    return port, proc


def wait_relaying(
    port: int, procs: Procs, proc: subprocess.Popen[bytes], log: Path, deadline_s: float = 20.0
) -> None:
    """Poll a tiny iperf3 transfer to ``port`` until it works (through a relay: the route loaded and the
    backend reached); never a fixed sleep. ``proc`` is the server, watched for an early exit."""
    deadline = time.monotonic() + deadline_s
    last = "no answer"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise NotReady(f"exited with status {proc.returncode}; {tail(log)}")
        argv = ["iperf3", "-c", "127.0.0.1", "-p", str(port), "-n", "256K", "-J", "--connect-timeout", "1000"]
        try:
            parse_iperf(procs.run(argv, timeout=10))
            return
        except (IperfError, subprocess.TimeoutExpired) as exc:
            last = str(exc)
        time.sleep(0.2)
    raise NotReady(f"no transfer through it within {deadline_s:.0f}s ({last}); {tail(log)}")


@dataclass(frozen=True)
class Plan:
    modes: tuple[Mode, ...]
    runs: int
    duration: float
    omit: float


def run_iperf(procs: Procs, argv: list[str], plan: Plan) -> float:
    """One measured iperf3 run; once more if iperf3 failed (its server sometimes refuses the test that
    follows a long one while it is still tearing that down), so a single hiccup does not void a row."""
    try:
        return parse_iperf(procs.run(argv, timeout=plan.duration + plan.omit + 30))
    except IperfError as exc:
        print(f" (iperf3 failed: {exc}; once more)", end="", flush=True)
        time.sleep(0.5)
        return parse_iperf(procs.run(argv, timeout=plan.duration + plan.omit + 30))


def measure(procs: Procs, row: RelayRow, port: int, pgid: int | None, plan: Plan) -> None:
    """Every mode ``plan.runs`` times through ``port``, appending to ``row``; ``pgid``: the relay's
    process group, whose CPU is counted (None for the direct row)."""
    for mode in plan.modes:
        print(f"    {mode.label:<9}", end="", flush=True)
        for _ in range(plan.runs):
            cpu0, t0 = (group_cpu_seconds(pgid) if pgid else 0.0), time.monotonic()
            mbps = run_iperf(procs, iperf_command(port, mode, plan.duration, plan.omit), plan)
            if pgid:
                cpu = (group_cpu_seconds(pgid) - cpu0) / (time.monotonic() - t0) * 100
                row.cpu.setdefault(mode.label, []).append(cpu)
            row.mbps.setdefault(mode.label, []).append(mbps)
            print(f" {mbps:8,.0f}", end="", flush=True)
        cpu_text = f"  relay CPU {row.cpu_median(mode.label):.0f}%" if pgid else ""
        print(f"  MB/s, median {row.median(mode.label):,.0f}{cpu_text}")


def run_row(procs: Procs, t: RelayTarget, tmp: Path, plan: Plan) -> RelayRow:
    """One row: a fresh iperf3 server, the relay in front of it (none for ``direct``), measured, and both
    killed whatever happens."""
    row = RelayRow(t.name)
    if why := t.missing():
        row.status = why
        return row
    try:
        bport, sink = start_sink(procs, tmp / f"{t.name}-sink")
    except NotReady as exc:
        row.status = f"failed: the iperf3 backend: {exc}"
        return row
    try:
        if t.make is None:
            print(f"  {t.name}: iperf3 straight to the backend on 127.0.0.1:{bport}")
            measure(procs, row, bport, None, plan)
            return row

        def body(s: Started) -> RelayRow:
            wait_relaying(s.port, procs, s.proc, s.log)
            print(f" ready in {s.ready_in()}", flush=True)
            measure(procs, row, s.port, s.proc.pid, plan)
            if s.proc.poll() is not None:
                row.status = runner.died(s.proc)
            row.log_errors = count_log_errors(s.log)
            return row

        make = t.make
        return runner.run_target(procs, t.name, row, tmp, lambda d, port: make(d, port, bport), body)
    except (IperfError, subprocess.TimeoutExpired) as exc:
        print(" failed")
        row.status = f"failed: {exc}"
        return row
    finally:
        procs.kill(sink)


# -- output -----------------------------------------------------------------------------------------------


def table(rows: list[RelayRow], modes: tuple[Mode, ...] = MODES) -> list[str]:
    """MB/s medians per mode, the relay's CPU % beside each."""
    out = [
        f"{'relay':<15}" + "".join(f" {m.label + ' MB/s (CPU)':>22}" for m in modes),
        f"{'-' * 15}" + f" {'-' * 22}" * len(modes),
    ]
    for row in rows:
        if not row.mbps:
            out.append(f"{row.name:<15} {row.status}")
            continue
        cells = ""
        for m in modes:
            mb, cpu = row.median(m.label), row.cpu_median(m.label)
            text = "-" if mb is None else f"{mb:,.0f}" + (f" ({cpu:3.0f}%)" if cpu is not None else " " * 7)
            cells += f" {text:>22}"
        extra = f"  ({row.status})" if row.status else ""
        logged = f" (its log: {row.log_errors} error lines)" if row.log_errors else ""
        out.append(f"{row.name:<15}{cells}{extra}{logged}".rstrip())
    return out


def ratios(rows: list[RelayRow], modes: tuple[Mode, ...] = MODES) -> list[str]:
    """dockroute / each peer: MB/s, and MB/s per CPU-% (the cost of a byte, less sensitive to load)."""
    by = {r.name: r for r in rows}
    dr = by.get("dockroute")
    if dr is None or not dr.mbps:
        return []
    out = [f"{'dockroute / peer':<28}" + "".join(f" {m.label:>10}" for m in modes)]
    for peer in ("direct", *PEERS):
        p = by.get(peer)
        if p is None or not p.mbps:
            continue
        per_second = "".join(_cell(_ratio(dr, p, m.label, False)) for m in modes)
        out.append(f"{'  MB/s vs ' + peer:<28}" + per_second)
        if peer != "direct":
            per_cpu = "".join(_cell(_ratio(dr, p, m.label, True)) for m in modes)
            out.append(f"{'  per CPU vs ' + peer:<28}" + per_cpu)
    out.append("(>1: dockroute moves more bytes per second, or per second of CPU)")
    return out


def _ratio(a: RelayRow, b: RelayRow, label: str, per_cpu: bool) -> float | None:
    x, y = a.median(label), b.median(label)
    if x is None or y is None or y == 0:
        return None
    if not per_cpu:
        return x / y
    cx, cy = a.cpu_median(label), b.cpu_median(label)
    return None if not cx or not cy else (x / cx) / (y / cy)


def _cell(value: float | None) -> str:
    return f" {'-':>10}" if value is None else f" {value:>9.2f}x"


def blocks(rows: list[RelayRow]) -> tuple[list[str], list[str]]:
    return table(rows), ratios(rows)


def load_line(when: str) -> str:
    one, five, _ = os.getloadavg()
    return f"load average {when}: {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} CPUs"


def iperf_version() -> str:
    try:
        cp = subprocess.run(["iperf3", "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "iperf3 not installed"
    return cp.stdout.split(" (", 1)[0].strip() or "iperf3 unknown"


def write_results(rows: list[RelayRow], command: str, plan: Plan, load: str) -> Path:
    how = (
        f"`{command}` (iperf3 -t {plan.duration:g} -O {plan.omit:g}, median of {plan.runs} runs per mode; "
        "dockroute one process, HAProxy nbthread 1, nginx 1 worker, their buffers at 16 KiB and 256 KiB)"
    )
    notes = [f"{iperf_version()} as backend and client; {load}"]
    title = "TCP relay throughput"
    return report.put_bench_section(_MARK, title, how, notes, *blocks(rows), skip=("caddy", "wrk"))


# -- main -------------------------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    names = [t.name for t in all_targets([])]
    p = argparse.ArgumentParser(
        prog="python -m bench.tcp_relay",
        description="TCP relay throughput (iperf3): dockroute against HAProxy and nginx stream.",
    )
    runner.add_args(
        p,
        f"comma-separated subset of: {', '.join(names)}; alias: peers",
        "configs and logs",
        per="iperf3 run",
        dockroute_help="extra argument for dockroute (repeatable)",
        duration=3,
        quick_help="smoke run: one 2 s run per mode, 1 s warm-up",
    )
    p.add_argument("--runs", type=int, default=3, help="runs per mode, the median is shown (default 3)")
    args = runner.parse(p, argv)
    if args.quick:
        args.duration, args.runs = 2, 1
    args.wanted = runner.wanted(p, args.only, names, {"peers": list(PEERS)})
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    plan = Plan(MODES, args.runs, args.duration, max(1.0, round(args.warmup)))
    load = load_line("before the run")

    def collect(procs: Procs, tmp: Path, rows: list[RelayRow]) -> None:
        print(f"iperf3 -t {plan.duration:g} -O {plan.omit:g}, {plan.runs} runs per mode; {load}")
        for t in all_targets(args.dockroute_arg):
            if t.name in args.wanted:
                rows.append(run_row(procs, t, tmp, plan))

    return runner.main_loop(
        "bench.tcp_relay",
        argv,
        args,
        collect,
        lambda rows: (*blocks(rows), [load_line("after the run")]),
        lambda rows, command, _duration: write_results(rows, command, plan, f"{load}, {load_line('after')}"),
        "dockroute-bench-tcp-",
        tmp_mode=0o755,  # nginx's worker runs as an unprivileged user when the bench runs as root
        tools=("iperf3",),
    )


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
