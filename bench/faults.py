"""``python -m bench.faults``: dockroute under load while things go wrong, with a PASS/FAIL per target.

Three checks, each bounded in time and count, on 127.0.0.1 only (about 1.5 minutes in all):

- ``reloads``: 50 rewrites of the watched dynamic file (an unchanged ``Host(`keep.test`)`` router plus
  200 routers whose rules change every time, :func:`bench.reload.dynamic_yaml`), each waited for until the
  new routes answer, while an open-loop client sends 200 requests/s to ``keep.test``. Target: no
  non-2xx answer and no socket error. Latency is timed from each request's scheduled start, so a stall
  of the proxy shows up in it even while the client is waiting.
- ``idle``: 5,000 connections held open against the same process (half send nothing, half a slowloris
  request head that never ends, one byte a second), reopened whenever dockroute closes them, for
  ``--hold`` seconds, while the same 200 requests/s client measures latency. Targets: the normal
  client's p99 under 1 s, no error, and dockroute's RSS (its whole process group) growing by at most
  64 KiB per held connection. RLIMIT_NOFILE is raised to its hard limit first (dockroute inherits it);
  when that still leaves fewer than 5,000 sockets, the run holds what it can and says so.
- ``docker``: only with ``ALLOW_DOCKERD_RESTART_IN_TESTS=1`` and an engine answering (the same guard as
  ``tests/integration/test_docker.py``: it stops every container without a restart policy). A busybox
  container (restart policy ``always``) routed through the Docker provider gets 200 requests/s while
  dockerd is killed (``--dockerd-signal``, SIGKILL by default: a crash, after which the container keeps
  running in its shim; SIGTERM makes the engine stop it) and started again with its own command line. A
  direct probe of the container's address every 20 ms tells when it was running. Target: no 5xx while
  the container answered directly; other failures (the engine restarting the container) are shown.

``--write-results`` keeps the run in its own section of ``bench/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from bench.procs import NotReady, Procs, exit_on_sigterm, free_port, missing_tools, tail, wait_ready
from bench.reload import KEEP_HOST, dynamic_yaml, percentile, wait_served, write_atomically
from bench.report import print_blocks, put_bench_section
from bench.targets import REPO_ROOT, start_backend

_MARK = "<!-- faults -->"
CHECKS = ("reloads", "idle", "docker")
RATE = 200  # requests/s of the normal client
P99_LIMIT = 1.0  # seconds, the normal client's p99 beside the held connections
KIB_PER_CONN = 64  # RSS growth allowed per held connection
SLOW_HEAD = b"GET / HTTP/1.1\r\nHost: keep.test\r\nX-Slow: "


@dataclass
class Check:
    """One line of the table: what was measured, its figure, the target and the verdict."""

    name: str
    figure: str
    target: str
    ok: bool | None  # None: skipped / not measured

    @property
    def verdict(self) -> str:
        return "SKIP" if self.ok is None else ("PASS" if self.ok else "FAIL")


@dataclass
class Load:
    """An open-loop client: ``rate`` requests/s to ``host`` whatever the answers take (each request its own
    task on a shared keep-alive pool), latency measured from the scheduled start. Runs in its own thread
    (:func:`loading`): ``samples`` and ``errors`` are appended there."""

    url: str
    host: str
    rate: int = RATE
    samples: list[tuple[float, float, int]] = field(default_factory=list)  # (start, end, status; 0: error)
    errors: list[str] = field(default_factory=list)

    async def run(self, stop: threading.Event) -> None:
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=0)) as s:
            tasks: set[asyncio.Task[None]] = set()
            t0 = time.monotonic()
            i = 0
            while not stop.is_set():
                due = t0 + i / self.rate
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                task = asyncio.create_task(self._one(s, due))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                i += 1
            if tasks:
                await asyncio.wait(tasks, timeout=12)

    async def _one(self, s: aiohttp.ClientSession, due: float) -> None:
        try:
            async with s.get(self.url, headers={"Host": self.host}) as resp:
                await resp.read()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            status = 0
            self.errors.append(f"{type(exc).__name__}: {exc}")
        self.samples.append((due, time.monotonic(), status))

    def between(self, start: float, end: float) -> list[tuple[float, float, int]]:
        return [s for s in self.samples if start <= s[0] < end]


def summary(samples: list[tuple[float, float, int]]) -> tuple[int, int, float, float]:
    """(requests, failures: non-2xx or socket errors, p50 s, p99 s) of a list of samples."""
    lat = sorted(end - start for start, end, _ in samples)
    bad = sum(1 for *_, st in samples if not 200 <= st < 300)
    return len(samples), bad, percentile(lat, 0.5), percentile(lat, 0.99)


@contextlib.asynccontextmanager
async def loading(load: Load):  # type: ignore[no-untyped-def]
    """The load running for the body of the ``async with``, then stopped and its last requests awaited. It
    has its own thread and event loop, so what the caller's loop does (5,000 sockets) cannot delay it."""
    stop = threading.Event()
    thread = threading.Thread(target=lambda: asyncio.run(load.run(stop)), name="load", daemon=True)
    thread.start()
    try:
        yield load
    finally:
        stop.set()
        await asyncio.to_thread(thread.join, 20)


def group_rss_kib(pgid: int) -> int:
    """Resident memory of every process in ``pgid`` (dockroute may run workers), in KiB."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.getpgid(int(entry)) != pgid:
                continue
            for line in Path(f"/proc/{entry}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except (OSError, ValueError):
            continue
    return total


def raise_nofile(wanted: int) -> int:
    """Raise the soft RLIMIT_NOFILE to the hard one; return how many connections can be held (the client's
    and dockroute's sockets each count against their own process's limit, with room for the rest)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, wanted + 1024)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return max(0, min(wanted, soft - 512))


def start_dockroute(
    procs: Procs, d: Path, providers: str, args: argparse.Namespace
) -> tuple[int, subprocess.Popen[bytes], Path]:
    """dockroute on a free loopback port with ``providers`` (YAML under ``providers:``), log level WARN."""
    port = free_port()
    (d / "dockroute.yml").write_text(
        f'entryPoints:\n  web:\n    address: "127.0.0.1:{port}"\n'
        f'providers:\n  providersThrottleDuration: "0s"\n{providers}log:\n  level: WARN\n'
    )
    log = d / "dockroute.log"
    argv = [sys.executable, "-m", "dockroute", "--config", str(d / "dockroute.yml"), *args.dockroute_arg]
    return port, procs.start(argv, log, cwd=REPO_ROOT), log


# -- 1. reloads under load ----------------------------------------------------------------------------


async def check_reloads(port: int, routes: Path, bport: int, args: argparse.Namespace) -> Check:
    load = Load(f"http://127.0.0.1:{port}/", KEEP_HOST)
    applied: list[float] = []
    async with loading(load):
        await asyncio.sleep(1.0)  # the load's own first second: connections opened, nothing reloading
        start = time.monotonic()
        for gen in range(1, args.reloads + 1):
            write_atomically(routes, dynamic_yaml(gen, args.routers, bport))
            applied.append(await asyncio.to_thread(wait_served, port, f"r0-g{gen}.test", "/p0", 30))
        await asyncio.sleep(1.0)  # what a reload leaves behind counts too
        end = time.monotonic()
    n, bad, p50, p99 = summary(load.between(start, end))
    for why in load.errors[:3]:
        print(f"    error: {why}")
    applied.sort()
    print(
        f"  reloads: {args.reloads} reloads in {end - start:.1f}s, applied after median "
        f"{percentile(applied, 0.5) * 1000:.0f} ms (max {applied[-1] * 1000:.0f}); {n} requests, "
        f"{bad} failed, p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms",
        flush=True,
    )
    return Check(
        f"{args.reloads} reloads at {RATE} req/s",
        f"{bad} errors / {n} requests, p99 {p99 * 1000:.0f} ms",
        "0 errors",
        bad == 0 and n > 0,
    )


# -- 2. idle and slow connections ------------------------------------------------------------------------


@dataclass
class Holders:
    """The held connections: how many are open now, the most at once, and how the server ended them."""

    port: int
    open_now: int = 0
    most: int = 0
    opened: int = 0
    closed_by_server: list[float] = field(default_factory=list)  # seconds each lived
    failed: int = 0

    async def hold(self, slow: bool, stop: asyncio.Event) -> None:
        """One slot: a connection kept open (``slow``: a request head sent a byte a second), reopened
        when the server closes it, until ``stop``."""
        while not stop.is_set():
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", self.port), 15)
            except (OSError, TimeoutError):
                self.failed += 1
                await _pause(stop, 0.5)
                continue
            self.opened += 1
            self.open_now += 1
            self.most = max(self.most, self.open_now)
            born = time.monotonic()
            try:
                if await self._keep(reader, writer, slow, stop):
                    self.closed_by_server.append(time.monotonic() - born)
            except OSError:
                self.closed_by_server.append(time.monotonic() - born)
            finally:
                self.open_now -= 1
                writer.transport.abort()

    @staticmethod
    async def _keep(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, slow: bool, stop: asyncio.Event
    ) -> bool:
        """True when the server ended the connection, False when ``stop`` did."""
        if slow:
            writer.write(SLOW_HEAD)
        eof = asyncio.create_task(reader.read(65536))
        try:
            while not stop.is_set():
                waiter = asyncio.create_task(stop.wait())
                done, _ = await asyncio.wait({eof, waiter}, timeout=1.0, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                if eof in done:
                    return True
                if slow:
                    writer.write(b"a")
            return False
        finally:
            eof.cancel()


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def check_idle(port: int, pgid: int, args: argparse.Namespace) -> list[Check]:
    wanted = args.connections
    can = raise_nofile(wanted)
    if can < wanted:
        print(f"  idle: RLIMIT_NOFILE allows {can} connections, not {wanted}: holding {can}")
    holders = Holders(port)
    stop = asyncio.Event()
    load = Load(f"http://127.0.0.1:{port}/", KEEP_HOST)
    rss_before = group_rss_kib(pgid)
    rss_peak = rss_before
    async with loading(load):
        await asyncio.sleep(1.0)
        slots: list[asyncio.Task[None]] = []
        for i in range(can):  # opened in bursts of 250, like a client that does not wait for answers
            slots.append(asyncio.create_task(holders.hold(i % 2 == 1, stop)))
            if i % 250 == 249:
                await asyncio.sleep(0.05)
        start = time.monotonic()
        while time.monotonic() - start < args.hold:
            await asyncio.sleep(0.5)
            rss_peak = max(rss_peak, group_rss_kib(pgid))
        end = time.monotonic()
        stop.set()
        await asyncio.wait(slots, timeout=20)
    await asyncio.sleep(2.0)  # the server notices the closed sockets
    rss_after = group_rss_kib(pgid)
    n, bad, p50, p99 = summary(load.between(start, end))
    lived = sorted(holders.closed_by_server)
    growth = rss_peak - rss_before
    print(
        f"  idle: {holders.most} held at most ({holders.opened} opened, {holders.failed} connects failed; "
        f"{len(lived)} closed by dockroute after median {percentile(lived, 0.5):.1f}s); normal client "
        f"{n} requests, {bad} failed, p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms; RSS "
        f"{rss_before / 1024:.0f} MiB before, {rss_peak / 1024:.0f} MiB peak, "
        f"{rss_after / 1024:.0f} MiB after",
        flush=True,
    )
    limit = KIB_PER_CONN * max(holders.most, 1)
    return [
        Check(
            f"{holders.most} held connections: normal p99",
            f"p99 {p99 * 1000:.0f} ms, {bad} errors / {n} requests",
            f"p99 < {P99_LIMIT * 1000:.0f} ms, 0 errors",
            p99 < P99_LIMIT and bad == 0 and n > 0,
        ),
        Check(
            f"{holders.most} held connections: RSS",
            f"{rss_before / 1024:.0f} → peak {rss_peak / 1024:.0f} → {rss_after / 1024:.0f} MiB "
            f"(+{growth / max(holders.most, 1):.1f} KiB/conn)",
            f"growth ≤ {KIB_PER_CONN} KiB/conn",
            growth <= limit and holders.most > 0,
        ),
    ]


async def run_file_checks(procs: Procs, tmp: Path, args: argparse.Namespace) -> list[Check]:
    """Checks 1 and 2 against one dockroute with a watched file (``--only`` may skip either)."""
    bport = start_backend(procs, tmp)
    dyn = tmp / "dynamic"
    dyn.mkdir()
    routes = dyn / "routes.yml"
    write_atomically(routes, dynamic_yaml(0, args.routers, bport))
    d = tmp / "file"
    d.mkdir()
    port, proc, log = start_dockroute(procs, d, f'  file:\n    directory: "{dyn}"\n    watch: true\n', args)
    wait_ready(port, KEEP_HOST, proc, log, deadline_s=60)
    await asyncio.to_thread(wait_served, port, "r0-g0.test", "/p0", 30)
    print(f"dockroute on 127.0.0.1:{port}, file provider, {args.routers + 1} routers; nginx backend :{bport}")
    out: list[Check] = []
    if "reloads" in args.checks:
        out.append(await check_reloads(port, routes, bport, args))
    if "idle" in args.checks:
        out.extend(await check_idle(port, proc.pid, args))
    if proc.poll() is not None:
        raise NotReady(f"dockroute exited during the run; {tail(log)}")
    return out


# -- 3. dockerd restarted under load -------------------------------------------------------------------

DOCKERD_LOG = Path(tempfile.gettempdir()) / "dockerd-bench-faults.log"  # outlives the run, like dockerd


@dataclass
class Probe:
    """The container asked directly every 20 ms: the truth about when it was running."""

    url: str
    seen: list[tuple[float, bool]] = field(default_factory=list)

    async def run(self, stop: asyncio.Event) -> None:
        timeout = aiohttp.ClientTimeout(total=0.3)
        async with aiohttp.ClientSession(timeout=timeout) as s:
            while not stop.is_set():
                t = time.monotonic()
                try:
                    async with s.get(self.url) as resp:
                        await resp.read()
                        ok = resp.status == 200
                except (aiohttp.ClientError, TimeoutError, OSError):
                    ok = False
                self.seen.append((t, ok))
                await _pause(stop, max(0.0, 0.02 - (time.monotonic() - t)))

    def running(self, start: float, end: float) -> bool:
        """True when every probe from just before ``start`` to just after ``end`` got its 200."""
        before = [ok for t, ok in self.seen if t <= start][-1:]
        within = [ok for t, ok in self.seen if start < t <= end + 0.05]
        return bool(before) and all(before + within)

    def down_seconds(self) -> float:
        return sum(
            b[0] - a[0] for a, b in zip(self.seen, self.seen[1:], strict=False) if not a[1] or not b[1]
        )


def docker_skip_reason() -> str:
    if os.environ.get("ALLOW_DOCKERD_RESTART_IN_TESTS") != "1":
        return "skipped: set ALLOW_DOCKERD_RESTART_IN_TESTS=1 to let it restart dockerd"
    if subprocess.run(["pidof", "dockerd"], capture_output=True).returncode != 0:
        return "skipped: no dockerd process to restart"
    return ""


async def until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``condition`` every 50 ms (never a fixed sleep as synchronisation)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not within {timeout:.0f}s")
        await asyncio.sleep(0.05)


async def engine_back(timeout: float) -> None:
    """Poll the engine (in a thread: a starting engine may hold a ping for seconds) until it answers."""
    from tests.integration import docker_env

    deadline = time.monotonic() + timeout
    while await asyncio.to_thread(docker_env.engine) is None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the engine did not answer within {timeout:.0f}s")
        await asyncio.sleep(0.2)


def gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True


async def check_docker(procs: Procs, tmp: Path, args: argparse.Namespace) -> Check:
    name = "dockerd restarted under load"
    target = "0 5xx while the container runs"
    if reason := docker_skip_reason():
        return Check(name, reason, target, None)
    sys.path.insert(0, str(REPO_ROOT))
    from tests.integration import docker_env  # the offline busybox image, shared with the tests

    client = await asyncio.to_thread(docker_env.engine)
    if client is None:
        return Check(name, "skipped: no Docker engine answers", target, None)
    pid = int(subprocess.check_output(["pidof", "dockerd"]).split()[0])
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:-1]
    await asyncio.to_thread(docker_env.ensure_image, client)
    cname = docker_env.unique("faults")
    labels = {f"traefik.http.routers.{cname}.rule": f"Host(`{cname}.test`)"}
    await asyncio.to_thread(docker_env.run, client, cname, labels, restart_policy={"Name": "always"})
    try:
        ip = await asyncio.to_thread(container_ip, cname)
        d = tmp / "docker"
        d.mkdir()
        port, proc, log = start_dockroute(procs, d, "  docker: {}\n", args)
        await asyncio.to_thread(wait_served, port, f"{cname}.test", "/", 30)
        print(f"  docker: container {cname} at {ip} routed by dockroute :{port}; dockerd pid {pid}")
        check = await restart_under_load(port, cname, ip, (pid, cmdline), args)
        if proc.poll() is not None:
            return Check(name, f"dockroute exited; {tail(log)}", target, False)
        return check
    finally:
        with contextlib.suppress(TimeoutError):
            await engine_back(60)
        await asyncio.to_thread(docker_env.remove, await asyncio.to_thread(docker_env.engine), cname)


def container_ip(name: str) -> str:
    """The container's address on the default bridge ("" while it has none, or the engine is away)."""
    from tests.integration import docker_env

    try:
        return docker_env.engine().containers.get(name).attrs["NetworkSettings"]["IPAddress"]
    except Exception:  # docker's own errors, or no engine (None)
        return ""


async def restart_under_load(
    port: int, name: str, ip: str, dockerd: tuple[int, list[bytes]], args: argparse.Namespace
) -> Check:
    """Kill dockerd under load, start it again with its own command line, and classify every answer by
    whether the container answered its direct probe meanwhile."""
    pid, cmdline = dockerd
    host = f"{name}.test"
    load, probe, stop = Load(f"http://127.0.0.1:{port}/", host), Probe(f"http://{ip}/"), asyncio.Event()
    probing = asyncio.create_task(probe.run(stop))
    note = ""
    async with loading(load):
        start = time.monotonic()
        await asyncio.sleep(2.0)
        t_kill = time.monotonic()
        os.kill(pid, getattr(signal, f"SIG{args.dockerd_signal}"))
        try:
            await until(lambda: gone(pid), 30, "dockerd's exit")
            await asyncio.sleep(args.outage)  # the engine is away; the load goes on
        finally:
            with open(DOCKERD_LOG, "ab") as out:
                subprocess.Popen(
                    cmdline, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True
                )
        try:
            await engine_back(60)
            t_up = time.monotonic()
            await asyncio.to_thread(wait_served, port, host, "/", 30)
            moved = await asyncio.to_thread(container_ip, name)  # the engine's restart may move it
            probe.url = f"http://{moved or ip}/"
        except TimeoutError as exc:
            t_up, note = time.monotonic(), f"; {exc}"
            print(f"  docker: {exc}; dockerd's log: {DOCKERD_LOG}", file=sys.stderr)
        await asyncio.sleep(3.0)
        end = time.monotonic()
    stop.set()
    await probing
    return classify(load.between(start, end), probe, t_kill, t_up, note)


def classify(
    samples: list[tuple[float, float, int]], probe: Probe, t_kill: float, t_up: float, note: str
) -> Check:
    """The verdict: failures (5xx or no answer) of requests made while the container answered directly."""
    up = [st for s, e, st in samples if probe.running(s, e)]
    bad_up = sum(1 for st in up if st >= 500 or st == 0)
    other_up = sorted(st for st in up if not 200 <= st < 300 and 0 < st < 500)  # e.g. 404: route missing
    away = [st for s, _, st in samples if t_kill <= s < t_up]
    away_ok = sum(1 for st in away if 200 <= st < 300)
    down = sum(1 for *_, st in samples if not 200 <= st < 300) - bad_up - len(other_up)
    figure = (
        f"{bad_up} 5xx / {len(up)} requests while running ({len(other_up)} other non-2xx); engine away "
        f"{t_up - t_kill:.1f}s ({away_ok}/{len(away)} 2xx); {down} failed while the container was down"
    )
    statuses = sorted({st for *_, st in samples if not 200 <= st < 300})
    print(f"  docker: {figure}, {probe.down_seconds():.1f}s down; statuses {statuses}{note}", flush=True)
    return Check(
        "dockerd restarted under load",
        figure,
        "0 5xx while the container runs",
        not bad_up and bool(up) and not note,
    )


# -- the command ----------------------------------------------------------------------------------------


def table(checks: list[Check]) -> list[str]:
    """One line per check, in the style of ``python -m bench``'s targets: ``[PASS] name: figure (target)``."""
    return [f"[{c.verdict}] {c.name}: {c.figure} (target: {c.target})" for c in checks]


async def collect(procs: Procs, tmp: Path, args: argparse.Namespace) -> list[Check]:
    checks: list[Check] = []
    if {"reloads", "idle"} & set(args.checks):
        checks += await run_file_checks(procs, tmp, args)
    if "docker" in args.checks:
        checks.append(await check_docker(procs, tmp, args))
    return checks


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.faults", description=__doc__.splitlines()[0])
    p.add_argument("--only", default="", help=f"comma-separated subset of: {', '.join(CHECKS)}")
    p.add_argument("--reloads", type=int, default=50, help="file rewrites under load (50)")
    p.add_argument("--routers", type=int, default=200, help="routers whose rules change each reload (200)")
    p.add_argument("--connections", type=int, default=5000, help="idle/slow connections held (5000)")
    p.add_argument("--hold", type=float, default=20.0, help="seconds the connections are held (20)")
    p.add_argument("--outage", type=float, default=3.0, help="seconds dockerd stays down (3)")
    p.add_argument("--dockerd-signal", choices=("KILL", "TERM"), default="KILL")
    p.add_argument("--budget", type=float, default=170.0, help="hard limit on the whole run, s (170)")
    p.add_argument("--dockroute-arg", action="append", default=[], metavar="ARG")
    p.add_argument("--write-results", action="store_true", help="keep this run in bench/RESULTS.md")
    p.add_argument("--keep-tmp", action="store_true", help="keep the temp dir (configs and logs)")
    args = p.parse_args(argv)
    args.checks = [c.strip() for c in args.only.split(",") if c.strip()] or list(CHECKS)
    if unknown := set(args.checks) - set(CHECKS):
        p.error(f"unknown check(s) {', '.join(sorted(unknown))}; choose from {', '.join(CHECKS)}")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if missing_tools("bench.faults", ("nginx",)):
        return 2
    exit_on_sigterm()
    raise_nofile(args.connections)  # before anything starts: dockroute inherits the limit
    procs = Procs()
    tmp = Path(tempfile.mkdtemp(prefix="dockroute-bench-faults-"))
    t0 = time.monotonic()
    try:
        checks = asyncio.run(asyncio.wait_for(collect(procs, tmp, args), args.budget))
    except (NotReady, TimeoutError) as exc:
        print(f"bench.faults: {exc or 'over the time budget'}", file=sys.stderr)
        return 1
    finally:
        procs.finish(tmp, args.keep_tmp)
    print_blocks(table(checks), [f"run took {time.monotonic() - t0:.0f}s"])
    if args.write_results:
        command = "`python -m bench.faults" + (" " + shlex.join(argv) if argv else "") + "`"
        print(f"\nwrote {put_bench_section(_MARK, 'Load and faults', command, table(checks))}")
    return 0 if all(c.ok is not False for c in checks) else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
