"""What every benchmark's command does the same way: its common options, starting one target and always
killing it, the warm-up before a wrk run, and the main loop that stops everything on Ctrl-C or SIGTERM,
prints the blocks and writes its RESULTS.md section.

The benchmarks (``python -m bench``, ``bench.https``, ``bench.static_files``, ``bench.compress``,
``bench.cache``) differ only in their targets, what they measure and how they show it; keeping the
process handling in one place means a fix there (a target that dies, a run interrupted) serves them all.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from subprocess import Popen
from typing import Protocol, TypeVar

from bench import report, wrk
from bench.procs import NotReady, Procs, exit_on_sigterm, free_port, missing_tools
from bench.targets import Launch


class HasStatus(Protocol):
    status: str


R = TypeVar("R", bound=HasStatus)


def add_args(
    p: argparse.ArgumentParser,
    only_help: str,
    keep_what: str,
    per: str = "measurement",
    dockroute_help: str | None = None,
    write_help: str = "put this run into bench/RESULTS.md",
    duration: int = 10,
    quick_help: str = "",
) -> None:
    """The options all benchmarks share; ``per`` names what one ``--duration`` measures."""
    p.add_argument("--duration", type=int, default=duration, help=f"seconds per {per} (default {duration})")
    quick_help = quick_help or f"smoke run: 3 s per {per}, 1 s warm-up"
    p.add_argument("--quick", action="store_true", help=quick_help)
    p.add_argument("--warmup", type=float, default=None, help=f"warm-up seconds per {per} (default 2)")
    p.add_argument("--only", default="", help=only_help)
    p.add_argument("--dockroute-arg", action="append", default=[], metavar="ARG", help=dockroute_help)
    p.add_argument("--write-results", action="store_true", help=write_help)
    p.add_argument("--keep-tmp", action="store_true", help=f"keep the temp dir ({keep_what})")


def parse(p: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """Parse, then apply --quick (3 s runs) and the warm-up's default (1 s quick, else 2 s)."""
    args = p.parse_args(argv)
    if args.quick:
        args.duration = 3
    if args.warmup is None:
        args.warmup = 1.0 if args.quick else 2.0
    return args


def wanted(
    p: argparse.ArgumentParser,
    only: str,
    names: Sequence[str],
    aliases: Mapping[str, list[str]] | None = None,
    default: Sequence[str] | None = None,
    or_also: str = "",
) -> list[str]:
    """The targets ``--only`` names (aliases expanded), or ``default`` (all targets) when it names none."""
    out: list[str] = []
    for item in filter(None, (s.strip() for s in only.split(","))):
        for name in (aliases or {}).get(item, [item]):
            if name not in names:
                p.error(f"unknown target {name!r}; choose from {', '.join(names)}{or_also}")
            out.append(name)
    return out or list(names if default is None else default)


def warm_up(procs: Procs, command: Callable[[int], list[str]], warmup: float) -> None:
    """A wrk run whose figures are dropped; ``command(seconds)`` is the wrk argv."""
    if warmup > 0:
        procs.run(command(max(1, round(warmup))), timeout=warmup + 30)


def run_wrk(procs: Procs, command: Callable[[int], list[str]], duration: int) -> wrk.WrkResult:
    return wrk.parse(procs.run(command(duration), timeout=duration + 30))


def measure(procs: Procs, command: Callable[[int], list[str]], duration: int, warmup: float) -> wrk.WrkResult:
    """The warm-up, then the measured run."""
    warm_up(procs, command, warmup)
    return run_wrk(procs, command, duration)


@dataclass
class Started:
    """A target just started: where it listens, its process and its log."""

    port: int
    proc: Popen[bytes]
    log: Path
    at: float

    def ready_in(self) -> str:
        return f"{time.monotonic() - self.at:.1f}s"


def run_target(
    procs: Procs,
    name: str,
    row: R,
    tmp: Path,
    make: Callable[[Path, int], Launch],
    body: Callable[[Started], R],
    installed: bool = True,
    how: str = "",
) -> R:
    """Start one target in its own dir under ``tmp``, run ``body`` on it and always kill it. A target not
    installed, failing to start, never ready or whose wrk run fails gives ``row`` with the reason."""
    if not installed:
        row.status = "not installed"
        return row
    d = tmp / name
    d.mkdir()
    port = free_port()
    launch = make(d, port)
    log = d / "output.log"
    print(f"  {name}: starting on 127.0.0.1:{port}{how} ...", end="", flush=True)
    try:
        proc = procs.start(launch.argv, log, cwd=launch.cwd, env=launch.env)
    except OSError as exc:
        print(" failed")
        row.status = f"failed to start: {exc}"
        return row
    try:
        return body(Started(port, proc, log, time.monotonic()))
    except NotReady as exc:
        print(" not ready")
        row.status = f"failed: {exc}"
        return row
    except wrk.WrkParseError as exc:
        print(" wrk failed")
        row.status = f"failed: {exc}"
        return row
    finally:
        procs.kill(proc)


def died(proc: Popen[bytes]) -> str:
    return f"failed: exited ({proc.returncode}) during the run"


def main_loop(
    prog: str,
    argv: list[str],
    args: argparse.Namespace,
    collect: Callable[[Procs, Path, list[R]], None],
    blocks: Callable[[list[R]], Sequence[list[str]]],
    write: Callable[[list[R], str, int], Path],
    tmp_prefix: str = "dockroute-bench-",
    tmp_mode: int | None = None,
    tools: Sequence[str] = ("wrk", "nginx"),
) -> int:
    """Check the tools, run ``collect`` (which starts the backend if any and appends one row per target),
    stop every process even on Ctrl-C or SIGTERM, print ``blocks(rows)`` and, with --write-results and
    an uninterrupted run, ``write(rows, command, duration)``. Returns the exit status."""
    if missing_tools(prog, tools):
        return 2
    exit_on_sigterm()
    command = f"python -m {prog}" + ("" if not argv else " " + shlex.join(argv))
    procs = Procs()
    tmp = Path(tempfile.mkdtemp(prefix=tmp_prefix))
    if tmp_mode is not None:
        tmp.chmod(tmp_mode)
    rows: list[R] = []
    interrupted = False
    try:
        collect(procs, tmp, rows)
    except NotReady as exc:
        print(f"{prog}: the nginx backend did not start: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        interrupted = True
        print("\ninterrupted; stopping everything", file=sys.stderr)
    finally:
        procs.finish(tmp, args.keep_tmp)

    report.print_blocks(*blocks(rows))
    if args.write_results and not interrupted:
        print(f"\nwrote {write(rows, command, args.duration)}")
    return 130 if interrupted else 0
