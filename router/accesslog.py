"""Access log in Traefik's formats: ``common`` (CLF plus router, server and duration) or ``json``.

Lines are buffered and flushed at most every half second or every 64 KiB, so the hot path pays one list
append per request; a 502/504 line carries the reason (which backend, what failed).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import asdict, dataclass
from typing import IO


@dataclass(frozen=True, slots=True)
class AccessRecord:
    client: str
    method: str
    path: str
    proto: str
    status: int
    size: int
    referer: str
    user_agent: str
    router: str
    server: str
    entry_point: str
    host: str
    reason: str
    duration: float


def _q(value: str) -> str:
    return '"' + (value.replace("\\", "\\\\").replace('"', '\\"') if value else "-") + '"'


class AccessLog:
    def __init__(self, path: str | None = None, fmt: str = "common", stream: IO[str] | None = None) -> None:
        self.format = fmt
        self._own = False
        if stream is not None:
            self._out = stream
        elif path:
            self._out = open(path, "a", encoding="utf-8")  # noqa: SIM115 - kept open for the process's life
            self._own = True
        else:
            self._out = sys.stdout
        self._buf: list[str] = []
        self._size = 0
        self._flush_handle: asyncio.TimerHandle | None = None
        self._count = 0

    def format_record(self, r: AccessRecord) -> str:
        if self.format == "json":
            d = asdict(r)
            d["duration_ms"] = round(d.pop("duration") * 1000, 3)
            return json.dumps(
                {
                    "ClientHost": d["client"],
                    "RequestMethod": d["method"],
                    "RequestPath": d["path"],
                    "RequestProtocol": d["proto"],
                    "RequestHost": d["host"],
                    "DownstreamStatus": d["status"],
                    "DownstreamContentSize": d["size"],
                    "RouterName": d["router"],
                    "ServiceURL": d["server"],
                    "entryPointName": d["entry_point"],
                    "Duration": int(r.duration * 1e9),
                    "error": d["reason"],
                    "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                },
                separators=(",", ":"),
            )
        self._count += 1
        ts = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime())
        line = (
            f"{r.client or '-'} - - [{ts}] {_q(f'{r.method} {r.path} {r.proto}')} {r.status} {r.size} "
            f"{_q(r.referer)} {_q(r.user_agent)} {self._count} {_q(r.router)} {_q(r.server)} "
            f"{int(r.duration * 1000)}ms"
        )
        if r.reason:
            line += f" {_q(r.reason)}"
        return line

    def write(self, record: AccessRecord) -> None:
        line = self.format_record(record) + "\n"
        self._buf.append(line)
        self._size += len(line)
        if self._size > 65536:
            self.flush()
        elif self._flush_handle is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self.flush()
                return
            self._flush_handle = loop.call_later(0.5, self.flush)

    def flush(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if self._buf:
            try:
                self._out.write("".join(self._buf))
                self._out.flush()
            except (OSError, ValueError):
                pass
            self._buf.clear()
            self._size = 0

    def close(self) -> None:
        self.flush()
        if self._own:
            self._out.close()
