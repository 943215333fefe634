"""Process handling: free ports, process groups that are always killed, readiness polling."""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path


class NotReady(RuntimeError):
    """A server did not answer 200 before its deadline, or exited."""


def missing_tools(prog: str, tools: Sequence[str]) -> bool:
    """Say which required tool is not installed (on stderr, naming ``prog``); True if any is missing."""
    for tool in tools:
        if shutil.which(tool) is None:
            print(f"{prog}: {tool} is required (apt-get install {tool})", file=sys.stderr)
            return True
    return False


def exit_on_sigterm() -> None:
    """SIGTERM unwinds like Ctrl-C would, so every started server is stopped on the way out."""

    def handler(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def free_port() -> int:
    """A port free on 127.0.0.1 right now (the usual small race with whoever binds it next)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Procs:
    """Every process the bench starts, each the leader of its own process group.

    Killing goes by process group, so a server that forks workers (nginx's master, a multi-process
    dockroute) is taken down whole. ``kill_all`` runs from a ``finally``: on errors and on Ctrl-C too.
    """

    def __init__(self) -> None:
        self._live: list[subprocess.Popen[bytes]] = []

    def start(
        self,
        argv: Sequence[str],
        log_path: Path,
        *,
        cwd: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.Popen[bytes]:
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                env=dict(env) if env is not None else None,
                start_new_session=True,  # own session and process group: killpg takes all its children
            )
        self._live.append(proc)
        return proc

    def run(self, argv: Sequence[str], timeout: float) -> str:
        """Run a short-lived command (wrk) in its own group; return stdout. Killed on any exception."""
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._live.append(proc)
        try:
            out, _ = proc.communicate(timeout=timeout)
        finally:
            self.kill(proc)
        return out.decode("utf-8", "replace")

    def kill(self, proc: subprocess.Popen[bytes], grace: float = 5.0) -> None:
        """SIGTERM the process group, then SIGKILL what is left after ``grace`` seconds."""
        pgid = proc.pid  # leader of its own group (start_new_session)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
        # The leader may be gone while children (workers) linger: always sweep the group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace)
        if proc in self._live:
            self._live.remove(proc)

    def kill_all(self) -> None:
        for proc in reversed(list(self._live)):
            self.kill(proc, grace=3.0)

    def finish(self, tmp: Path, keep_tmp: bool) -> None:
        """End of a bench run, however it ended: every process killed, the temp dir removed or kept."""
        self.kill_all()
        if keep_tmp:
            print(f"configs and logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def wait_ready(
    port: int, host_header: str, proc: subprocess.Popen[bytes], log_path: Path, deadline_s: float = 20.0
) -> None:
    """Poll a TCP connect plus one ``GET /`` until it answers 200; never a fixed sleep."""
    deadline = time.monotonic() + deadline_s
    last = "no answer"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise NotReady(f"exited with status {proc.returncode}; {tail(log_path)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                pass
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2.0)
            try:
                conn.request("GET", "/", headers={"Host": host_header})
                resp = conn.getresponse()
                resp.read()
                if resp.status == 200:
                    return
                last = f"HTTP {resp.status}"
            finally:
                conn.close()
        except OSError as exc:
            last = f"{type(exc).__name__}: {exc}"
        except http.client.HTTPException as exc:
            last = f"{type(exc).__name__}: {exc}"
        time.sleep(0.05)
    raise NotReady(f"no 200 within {deadline_s:.0f}s ({last}); {tail(log_path)}")


def tail(path: Path, lines: int = 3) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "no log"
    return "log: " + " | ".join(text[-lines:]) if text else "log empty"


def count_log_errors(path: Path) -> int:
    """Lines that look like errors in a server's output (Python log/tracebacks, Caddy's JSON)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return 0
    marks = (" ERROR ", " CRITICAL ", '"level":"error"', '"level":"fatal"')
    return sum(1 for line in text.splitlines() if any(m in line for m in marks))
