"""The table, the ratios, the targets, and bench/RESULTS.md."""

from __future__ import annotations

import datetime as dt
import os
import platform
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from bench.targets import REPO_ROOT
from bench.wrk import WrkResult

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
KEEP_RUNS = 5
_RUN_MARK = "<!-- run -->"


@dataclass(frozen=True)
class Row:
    name: str
    result: WrkResult | None = None
    status: str = ""  # why there is no result: "not installed", "failed: ..."
    log_errors: int = 0  # error lines the server logged during its run (shown, not flagged)

    @property
    def flagged(self) -> bool:
        return self.result is not None and self.result.errors > 0


# -- machine and versions ---------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": str(len(os.sched_getaffinity(0))),
        "cpu": model,
        "kernel": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }


def _first_line(argv: list[str], pattern: str | None = None) -> str:
    try:
        cp = subprocess.run(argv, capture_output=True, text=True, timeout=10, cwd=REPO_ROOT)
    except (OSError, subprocess.TimeoutExpired):
        return "not installed"
    text = (cp.stdout + cp.stderr).strip()
    if pattern and (m := re.search(pattern, text)):
        return m.group(m.lastindex or 0)
    return text.splitlines()[0] if text else "unknown"


def versions() -> dict[str, str]:
    return {
        "dockroute": _first_line([sys.executable, "-m", "dockroute", "--version"], r"dockroute (\S+)")
        + _commit(),
        "nginx": _first_line(["nginx", "-v"], r"nginx/(\S+)"),
        "caddy": _first_line(["caddy", "version"], r"^(\S+)"),
        "haproxy": _first_line(["haproxy", "-v"], r"HAProxy version (\S+)"),
        "wrk": _first_line(["wrk", "-v"], r"wrk (\S+)"),
    }


def _commit() -> str:
    """`` (abc1234)`` or `` (abc1234, dirty)`` when the repo has commits, else nothing."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10, cwd=REPO_ROOT
        )
        if sha.returncode != 0:
            return ""
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            cwd=REPO_ROOT,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return f" ({sha.stdout.strip()}{', dirty' if dirty.stdout.strip() else ''})"


# -- table and ratios -------------------------------------------------------------------------------------


def table(rows: list[Row]) -> list[str]:
    out = [
        f"{'target':<17} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8}  errors",
        f"{'-' * 17} {'-' * 10} {'-' * 8} {'-' * 8}  {'-' * 6}",
    ]
    for row in rows:
        r = row.result
        if r is None:
            out.append(f"{row.name:<17} {row.status}")
            continue
        flag = "  << FLAGGED: errors during the run" if row.flagged else ""
        figures = f"{r.rps:>10,.0f} {r.p50_ms:>8.2f} {r.p99_ms:>8.2f}"
        logged = f" (its log: {row.log_errors} error lines)" if row.log_errors else ""
        out.append(f"{row.name:<17} {figures}  {r.error_text()}{flag}{logged}")
    return out


def _get(rows: list[Row], name: str) -> WrkResult | None:
    for row in rows:
        if row.name == name:
            return row.result
    return None


def ratios(rows: list[Row]) -> list[str]:
    out: list[str] = []
    dr = _get(rows, "dockroute")
    if dr is not None:
        legend = "(req/s >1: dockroute faster; p99 <1: dockroute better)"
        for peer in ("direct", "nginx", "caddy", "haproxy"):
            p = _get(rows, peer)
            if p is not None:
                if not out:
                    out.append(f"{'dockroute / peer':<20} {'req/s':>7} {'p99':>7}   {legend}")
                out.append(f"  vs {peer:<16} {dr.rps / p.rps:>6.2f}x {dr.p99_ms / p.p99_ms:>6.2f}x")
    small, big = _get(rows, "dockroute-10r"), _get(rows, "dockroute-1000r")
    if small is not None and big is not None:
        out.append(
            f"{'1000 / 10 routers':<20} {big.rps / small.rps:>6.2f}x {big.p99_ms / small.p99_ms:>6.2f}x"
            "   (dockroute, routing-table scale)"
        )
    return out


def targets(rows: list[Row]) -> list[str]:
    """The project's goals, each PASS / FAIL / n/a."""

    def verdict(ok: bool | None) -> str:
        return "n/a " if ok is None else ("PASS" if ok else "FAIL")

    dr, cad = _get(rows, "dockroute"), _get(rows, "caddy")
    small, big = _get(rows, "dockroute-10r"), _get(rows, "dockroute-1000r")
    rps_ok = None if dr is None or cad is None else dr.rps >= cad.rps
    p99_ok = None if dr is None or cad is None else dr.p99_ms <= cad.p99_ms
    scale_ok = None if small is None or big is None else big.rps >= 0.9 * small.rps
    detail_rps = f" ({dr.rps / cad.rps:.2f}x)" if dr and cad else ""
    detail_p99 = f" ({dr.p99_ms:.2f} vs {cad.p99_ms:.2f} ms)" if dr and cad else ""
    detail_scale = f" ({big.rps / small.rps:.2f}x)" if small and big else ""
    flagged = {row.name for row in rows if row.flagged}
    warn_main = " -- but a run had errors" if flagged & {"dockroute", "caddy"} else ""
    warn_scale = " -- but a run had errors" if flagged & {"dockroute-10r", "dockroute-1000r"} else ""
    return [
        f"[{verdict(rps_ok)}] dockroute req/s >= 1.0x Caddy's{detail_rps}{warn_main}",
        f"[{verdict(p99_ok)}] dockroute p99 <= Caddy's{detail_p99}{warn_main}",
        f"[{verdict(scale_ok)}] 1000-router req/s within 10% of 10-router{detail_scale}{warn_scale}",
    ]


# -- RESULTS.md -------------------------------------------------------------------------------------------

_HEADER = """# Benchmark results

Written by `python -m bench --write-results` (see [README.md](README.md)); the newest run first, the last
{keep} kept. Noise on a small shared machine is ±10-25% between rounds: compare the ratios within one run,
not absolute figures across runs.

Targets: dockroute ≥ 1.0x Caddy's req/s; dockroute p99 ≤ Caddy's; 1000-router req/s within 10% of
10-router.
"""


def now_utc() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def machine_line() -> str:
    m = machine()
    return f"- machine: {m['nproc']} CPUs, {m['cpu']}, {m['kernel']}, Python {m['python']}"


def versions_line(skip: tuple[str, ...] = ()) -> str:
    return "- versions: " + ", ".join(f"{k} {val}" for k, val in versions().items() if k not in skip)


def put_section(mark: str, section: str) -> Path:
    """Replace the part of RESULTS.md between the two ``mark`` lines by ``section`` (which carries the
    marks itself), or append it; the HTTP runs' rotation (:func:`write_results`) keeps such parts."""
    text = RESULTS.read_text() if RESULTS.exists() else ""
    if mark in text:
        before, _, rest = text.partition(mark)
        _, _, after = rest.partition(mark)
        text = before + section.rstrip("\n") + after
    else:
        text = text.rstrip("\n") + "\n\n" + section.rstrip("\n") + "\n"
    RESULTS.write_text(text)
    return RESULTS


def put_bench_section(
    mark: str, title: str, command: str, *blocks: list[str], skip: tuple[str, ...] = ("haproxy",)
) -> Path:
    """A benchmark's own section of RESULTS.md (between its ``mark`` lines): title and date, the machine,
    the versions (but the ``skip`` tools it does not run), the ``command`` line, then the ``blocks`` in one
    code block, a blank line apart."""
    body: list[str] = []
    for i, block in enumerate(blocks):
        body.extend([""] * (i > 0) + block)
    lines = [
        mark,
        f"## {title}, {now_utc()}",
        "",
        machine_line(),
        versions_line(skip=skip),
        f"- command: {command}",
        "",
        "```",
        *body,
        "```",
        mark,
    ]
    return put_section(mark, "\n".join(lines))


def print_blocks(*blocks: list[str]) -> None:
    for block in blocks:
        if block:
            print()
            print("\n".join(block))


def run_section(rows: list[Row], command: str, duration: int) -> str:
    lines = [
        _RUN_MARK,
        f"## {now_utc()}",
        "",
        machine_line(),
        versions_line(),
        f"- command: `{command}` (wrk -t1 -c64 -d{duration}s --latency, after a warm-up)",
        "",
        "```",
        *table(rows),
        "",
        *ratios(rows),
        "",
        *targets(rows),
        "```",
        "",
    ]
    return "\n".join(lines)


# Sections other benchmarks keep between their own pairs of markers (bench.docker_latency, bench.https,
# bench.reload, bench.dns_wildcard, bench.tcp_relay, ...): they survive the rotation of the HTTP runs and
# always come after them.
_OTHER_MARKS = (
    "<!-- docker-latency -->",
    "<!-- https -->",
    "<!-- reload -->",
    "<!-- static-files -->",
    "<!-- compress -->",
    "<!-- cache -->",
    "<!-- faults -->",
    "<!-- dns-wildcard -->",
    "<!-- tcp-relay -->",
)


def write_results(section: str) -> Path:
    previous: list[str] = []
    kept: list[str] = []
    if RESULTS.exists():
        text = RESULTS.read_text()
        for mark in _OTHER_MARKS:
            if text.count(mark) >= 2:
                before, _, rest = text.partition(mark)
                inner, _, after = rest.partition(mark)
                kept.append(mark + inner + mark)
                text = before + after
        previous = [_RUN_MARK + p for p in text.split(_RUN_MARK)[1:]]
    runs = [section, *previous][:KEEP_RUNS]
    body = "\n".join(r.rstrip() + "\n" for r in runs)
    extra = "".join("\n" + k.strip() + "\n" for k in kept)
    RESULTS.write_text(_HEADER.format(keep=KEEP_RUNS) + "\n" + body + extra)
    return RESULTS
