"""Running wrk and reading its ``--latency`` report."""

from __future__ import annotations

import re
from dataclasses import dataclass

THREADS = 1
CONNECTIONS = 64

_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_PCT = re.compile(r"^\s*(50|75|90|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s|m|h)\s*$", re.M)
_RPS = re.compile(r"^Requests/sec:\s+([\d.]+)", re.M)
_TOTAL = re.compile(r"^\s*(\d+) requests in ([\d.]+)(\w+),", re.M)
_SOCKET = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
_NON2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")


@dataclass(frozen=True)
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    non2xx: int
    connect_err: int
    read_err: int
    write_err: int
    timeouts: int

    @property
    def socket_errors(self) -> int:
        return self.connect_err + self.read_err + self.write_err + self.timeouts

    @property
    def errors(self) -> int:
        return self.non2xx + self.socket_errors

    def error_text(self) -> str:
        if not self.errors:
            return "0"
        parts = []
        if self.non2xx:
            parts.append(f"non2xx={self.non2xx}")
        for label, n in (
            ("connect", self.connect_err),
            ("read", self.read_err),
            ("write", self.write_err),
            ("timeout", self.timeouts),
        ):
            if n:
                parts.append(f"{label}={n}")
        return " ".join(parts)


class WrkParseError(ValueError):
    pass


def command(url: str, host: str, duration_s: int) -> list[str]:
    return [
        "wrk",
        f"-t{THREADS}",
        f"-c{CONNECTIONS}",
        f"-d{duration_s}s",
        "--latency",
        "-H",
        f"Host: {host}",
        url,
    ]


def parse(out: str) -> WrkResult:
    rps = _RPS.search(out)
    pcts = {m.group(1): float(m.group(2)) * _UNIT_MS[m.group(3)] for m in _PCT.finditer(out)}
    total = _TOTAL.search(out)
    if not rps or "50" not in pcts or "99" not in pcts or not total:
        raise WrkParseError("unexpected wrk output: " + " | ".join(out.strip().splitlines()[-6:]))
    sock = _SOCKET.search(out)
    c, r, w, t = (int(x) for x in sock.groups()) if sock else (0, 0, 0, 0)
    non2xx = _NON2XX.search(out)
    return WrkResult(
        rps=float(rps.group(1)),
        p50_ms=pcts["50"],
        p99_ms=pcts["99"],
        requests=int(total.group(1)),
        non2xx=int(non2xx.group(1)) if non2xx else 0,
        connect_err=c,
        read_err=r,
        write_err=w,
        timeouts=t,
    )
