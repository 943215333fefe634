"""Access log in Traefik's formats: ``common``, ``genericCLF`` or ``json``, with Traefik's field names,
``accessLog.fields`` (keep, drop or redact fields and request headers) and ``accessLog.filters``.

One :class:`AccessRecord` per answered request is made by the entry point's handler
(:meth:`router.proxy.EntryPointHandler.log`); the filters decide first whether it is written at all, then
its fields are kept or dropped and the line formatted. Lines are buffered and handed to a writer thread at
most every half second, every 64 KiB or every ``bufferingSize`` lines, so the hot path pays no system
call per request and a slow output never stalls it. A 502/504 line carries the reason (which backend,
what failed): in ``common`` after Traefik's fields, in ``json`` as ``error``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import IO, Any
from urllib.parse import quote, unquote_to_bytes

from discover.middlewares.resilience import status_ranges

__all__ = ["AccessLog", "AccessLogFields", "AccessLogFilters", "AccessRecord", "KEEP", "DROP", "REDACT"]

_log = logging.getLogger("dockroute.accesslog")

KEEP, DROP, REDACT = "keep", "drop", "redact"
FORMATS = ("common", "genericCLF", "json")


@dataclass(frozen=True, slots=True)
class AccessLogFields:
    """``accessLog.fields``, Traefik's defaults: every field kept, every request header dropped, query
    kept. ``names``/``header_names``: (name, mode) pairs; modes are keep | drop (| redact for headers)."""

    default_mode: str = KEEP
    names: tuple[tuple[str, str], ...] = ()
    headers_default_mode: str = DROP
    header_names: tuple[tuple[str, str], ...] = ()
    query_parameters_mode: str = KEEP


@dataclass(frozen=True, slots=True)
class AccessLogFilters:
    """``accessLog.filters``: keep a line only when its status is in ``status_codes`` (Traefik's ranges,
    "200-299"), a retry happened (``retry_attempts``) or it took longer than ``min_duration`` seconds.
    None set: every line is kept."""

    status_codes: tuple[str, ...] = ()
    retry_attempts: bool = False
    min_duration: float = 0.0


@dataclass(frozen=True, slots=True)
class AccessLogOptions:
    """Everything of ``accessLog`` besides where and how lines are written."""

    fields: AccessLogFields = field(default_factory=AccessLogFields)
    filters: AccessLogFilters | None = None
    buffering_size: int = 0  # lines kept before a write (0: by time and size only)
    add_internals: bool = False  # log requests to internal services (api@internal...) too


@dataclass(slots=True)
class AccessRecord:
    """One answered request, as the handler saw it. ``size``: body bytes sent to the client. (Not frozen:
    made for every line written, and a frozen dataclass's ``__init__`` costs three times as much.)"""

    client: str  # the peer's IP
    method: str
    path: str  # the request target as sent
    proto: str  # "HTTP/1.1"
    status: int
    size: int
    referer: str
    user_agent: str
    router: str
    server: str  # the backend server's URL ("" when dockroute answered itself)
    entry_point: str
    host: str
    reason: str
    duration: float  # seconds
    service: str = ""
    client_port: int | None = None
    request_addr: str = ""  # the Host header as sent
    scheme: str = "http"
    request_size: int = 0
    headers: Any = None  # the request's headers (a multidict)
    forwarded_for: str = ""
    retry_attempts: int = 0
    origin: bool = False  # a backend gave the answer (OriginStatus/OriginContentSize are known)
    tls: tuple[str, str] | None = None  # (version, cipher)


def _q(value: str) -> str:
    """A quoted field of a common line, as Traefik's toLogEntry: ``"`` escaped, nothing else."""
    return '"' + (value.replace('"', '\\"') if value else "-") + '"'


# Go's validEncoded(s, encodePath): the characters a request's path may hold and still print as sent in
# url.URL.String() (Traefik's RequestPath); anything else makes Go print the path re-escaped.
_PATH_OK = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.~$&+,/:;=@!'()*[]%")
# What Go's escape(path, encodePath) leaves as it is (alphanumerics aside).
_PATH_SAFE = "-_.~$&+,/:;=@"


def go_request_path(target: str) -> str:
    """RequestPath as Traefik prints it (url.URL.String() of the path and query): a path holding a ``"``,
    a control character, a space or non-ASCII is printed percent-escaped, as Go re-escapes it; the query as
    sent. Keeps a quote in a path from breaking a common line."""
    path, sep, query = target.partition("?")
    if not _PATH_OK.issuperset(path):
        path = quote(unquote_to_bytes(path.encode("utf-8", "surrogateescape")), safe=_PATH_SAFE)
    return path + sep + query


def canonical_header(name: str) -> str:
    """Go's CanonicalMIMEHeaderKey (``x-real-ip`` → ``X-Real-Ip``), which Traefik's header fields use."""
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


def _split_host_port(value: str) -> tuple[str, str]:
    """Go's SplitHostPort as Traefik uses it: (value, "-") when there is no port."""
    if value.startswith("["):
        end = value.find("]")
        if end > 0 and value[end + 1 : end + 2] == ":":
            return value[1:end], value[end + 2 :]
        return value, "-"
    host, sep, port = value.rpartition(":")
    if not sep or ":" in host:
        return value, "-"
    return host, port


class _Clock:
    """Timestamps as Traefik writes them, the part down to the second formatted once per second (a busy
    proxy logs thousands of lines in each)."""

    __slots__ = ("_sec", "_utc", "_local", "_local_suffix", "_clf_utc", "_clf_local")

    def __init__(self) -> None:
        self._sec = -1

    def _at(self, sec: int) -> None:
        if sec != self._sec:
            utc = time.gmtime(sec)
            local = time.localtime(sec)
            self._utc = time.strftime("%Y-%m-%dT%H:%M:%S", utc)
            self._local = time.strftime("%Y-%m-%dT%H:%M:%S", local)
            off = local.tm_gmtoff or 0
            sign = "-" if off < 0 else "+"
            self._local_suffix = (
                "Z" if off == 0 else f"{sign}{abs(off) // 3600:02d}:{abs(off) % 3600 // 60:02d}"
            )
            self._clf_utc = time.strftime("%d/%b/%Y:%H:%M:%S +0000", utc)
            self._clf_local = time.strftime("%d/%b/%Y:%H:%M:%S %z", local)
            self._sec = sec

    def rfc3339(self, ts: float, utc: bool) -> str:
        """Go's RFC3339Nano (fraction without trailing zeros), as Traefik's JSON shows StartUTC/StartLocal."""
        sec = int(ts)
        self._at(sec)
        frac = f"{int((ts - sec) * 1e6):06d}".rstrip("0")
        dot = "." if frac else ""
        return f"{self._utc}{dot}{frac}Z" if utc else f"{self._local}{dot}{frac}{self._local_suffix}"

    def seconds(self, ts: float) -> str:
        """RFC 3339 to the second, local time: logrus's ``time`` field."""
        self._at(int(ts))
        return self._local + self._local_suffix

    def clf(self, ts: float, utc: bool = True) -> str:
        """Common Log Format's ``02/Jan/2006:15:04:05 -0700``."""
        self._at(int(ts))
        return self._clf_utc if utc else self._clf_local


class AccessLog:
    def __init__(
        self,
        path: str | None = None,
        fmt: str = "common",
        stream: IO[str] | None = None,
        options: AccessLogOptions | None = None,
    ) -> None:
        self.format = fmt if fmt in FORMATS else "common"
        self.options = options or AccessLogOptions()
        f = self.options.fields
        self._names = {k.lower(): v for k, v in f.names}
        self._header_modes = {canonical_header(k): v for k, v in f.header_names}
        self._filters = self.options.filters
        self._ranges = status_ranges(self._filters.status_codes) if self._filters else ()
        self._own = False
        if stream is not None:
            self._out = stream
        elif path:
            # backslashreplace: what is not UTF-8 is escaped, never a reason to lose lines
            self._out = open(path, "a", encoding="utf-8", errors="backslashreplace")  # noqa: SIM115
            self._own = True
        else:
            self._out = sys.stdout
        self._writer = _Writer(self._out)
        self._buf: list[str] = []
        self._size = 0
        self._flush_handle: asyncio.TimerHandle | None = None
        self._count = 0
        self._clock = _Clock()
        # Every core field kept (Traefik's default): lines are formatted from the record directly.
        self._all_fields = not self._names and f.default_mode != DROP
        self._headers_logged = f.headers_default_mode != DROP or bool(self._header_modes)
        self._referer_mode = self._header_modes.get("Referer", f.headers_default_mode)
        self._agent_mode = self._header_modes.get("User-Agent", f.headers_default_mode)

    @property
    def add_internals(self) -> bool:
        return self.options.add_internals

    # -- what is written -------------------------------------------------------------------------------

    def keeps(self, status: int, retry_attempts: int, duration: float) -> bool:
        """Counts the request (``RequestCount`` counts every request, logged or not, as Traefik's) and
        says whether its line is written: Traefik's keepAccessLog, no filter set keeps everything, else
        any one that matches. Asked before the record is made, so that a line filtered out costs none."""
        self._count += 1
        flt = self._filters
        if flt is None or (not self._ranges and not flt.retry_attempts and not flt.min_duration):
            return True
        if any(lo <= status <= hi for lo, hi in self._ranges):
            return True
        if flt.retry_attempts and retry_attempts > 0:
            return True
        return bool(flt.min_duration) and duration > flt.min_duration

    def _keep(self, name: str) -> bool:
        mode = self._names.get(name.lower(), self.options.fields.default_mode)
        return mode != DROP if mode in (KEEP, DROP) else self.options.fields.default_mode != DROP

    def fields(self, r: AccessRecord, count: int, now: float) -> dict[str, Any]:
        """Traefik's log data of a record (``CoreLogData`` plus ``request_<Header>``), after ``fields``."""
        start = now - r.duration
        path = go_request_path(r.path)
        if self.options.fields.query_parameters_mode == DROP:
            path = path.split("?", 1)[0]
        host, port = _split_host_port(r.request_addr) if r.request_addr else ("", "")
        ns = int(r.duration * 1e9)
        core: dict[str, Any] = {
            "StartUTC": self._clock.rfc3339(start, True),
            "StartLocal": self._clock.rfc3339(start, False),
            "Duration": ns,
            "RouterName": r.router,
            "ServiceName": r.service,
            "ServiceURL": r.server,
            "ServiceAddr": _service_addr(r.server),
            "ClientAddr": f"{r.client}:{r.client_port}" if r.client_port is not None else r.client,
            "ClientHost": r.forwarded_for or r.client,
            "ClientPort": str(r.client_port) if r.client_port is not None else "-",
            "ClientUsername": "-",
            "RequestAddr": r.request_addr,
            "RequestHost": host,
            "RequestPort": port,
            "RequestMethod": r.method,
            "RequestPath": path,
            "RequestProtocol": r.proto,
            "RequestScheme": r.scheme,
            "RequestContentSize": r.request_size,
            "DownstreamStatus": r.status,
            "DownstreamContentSize": r.size,
            "RequestCount": count,
            "RetryAttempts": r.retry_attempts,
            "entryPointName": r.entry_point,
        }
        if not r.request_addr:
            del core["RequestAddr"], core["RequestHost"], core["RequestPort"]
        if r.origin:
            core["OriginStatus"] = r.status
            core["OriginContentSize"] = r.size
        else:
            core["Overhead"] = ns  # dockroute answered itself: all of it is dockroute's time
        if r.tls is not None:
            core["TLSVersion"], core["TLSCipher"] = r.tls
        out = core if self._all_fields else {k: v for k, v in core.items() if self._keep(k)}
        if r.headers is not None and self._headers_logged:
            self._add_headers(out, r.headers)
        return out

    def _add_headers(self, out: dict[str, Any], headers: Any) -> None:
        default = self.options.fields.headers_default_mode
        seen: dict[str, list[str]] = {}
        for name, value in headers.items():
            seen.setdefault(canonical_header(name), []).append(value)
        for name, values in seen.items():
            mode = self._header_modes.get(name, default)
            if mode == KEEP:
                out["request_" + name] = ",".join(values)
            elif mode == REDACT:
                out["request_" + name] = "REDACTED"

    def format_record(self, r: AccessRecord) -> str:
        """The line of a record kept by :meth:`keeps` (which counted it)."""
        now = time.time()
        if self.format != "json" and self._all_fields:
            return self._clf_record(r, self._count, now - r.duration)
        data = self.fields(r, self._count, now)
        if self.format == "json":
            data["level"] = "info"
            data["msg"] = ""
            data["time"] = self._clock.seconds(now)
            if r.reason:
                data["error"] = r.reason
            return json.dumps(data, separators=(",", ":"), sort_keys=True, default=str)
        return self._clf(data, r, now - r.duration)

    @staticmethod
    def _header_text(mode: str, value: str) -> str:
        """A request header in a common line: quoted when kept, ``"-"`` when dropped or absent."""
        if not value or mode == DROP:
            return '"-"'
        return _q(value) if mode == KEEP else '"REDACTED"'

    def _clf_record(self, r: AccessRecord, count: int, start: float) -> str:
        """Traefik's CommonLogFormatter with every field kept, straight from the record (the usual case)."""
        path = go_request_path(r.path)
        if self.options.fields.query_parameters_mode == DROP:
            path = path.split("?", 1)[0]
        line = (
            f"{r.forwarded_for or r.client or '-'} - - [{self._clock.clf(start)}] "
            f'"{r.method or "-"} {path or "-"} {r.proto or "-"}" {r.status} {r.size} '
            f"{self._header_text(self._referer_mode, r.referer)} "
            f"{self._header_text(self._agent_mode, r.user_agent)}"
        )
        if self.format == "genericCLF":
            return line
        line += f" {count} {_q(r.router)} {_q(r.server)} {int(r.duration * 1000)}ms"
        return f"{line} {_q(r.reason)}" if r.reason else line

    def _clf(self, data: dict[str, Any], r: AccessRecord, start: float) -> str:
        """Traefik's CommonLogFormatter (or GenericCLFLogFormatter) over the kept fields: an absent field
        prints as ``-``."""
        if "StartUTC" in data:
            ts = self._clock.clf(start)
        elif "StartLocal" in data:
            ts = self._clock.clf(start, utc=False)
        else:
            ts = "-"

        def plain(key: str) -> str:
            v = data.get(key)
            return "-" if v is None or v == "" else str(v)

        def quoted(key: str) -> str:
            v = data.get(key)
            return _q(str(v)) if v not in (None, "") else '"-"'

        line = (
            f"{plain('ClientHost')} - {plain('ClientUsername')} [{ts}] "
            f'"{plain("RequestMethod")} {plain("RequestPath")} {plain("RequestProtocol")}" '
            f"{plain('DownstreamStatus')} {plain('DownstreamContentSize')} "
            f"{quoted('request_Referer')} {quoted('request_User-Agent')}"
        )
        if self.format == "genericCLF":
            return line
        ms = int(data["Duration"] / 1e6) if "Duration" in data else 0
        line += f" {plain('RequestCount')} {quoted('RouterName')} {quoted('ServiceURL')} {ms}ms"
        return f"{line} {_q(r.reason)}" if r.reason else line

    # -- writing ---------------------------------------------------------------------------------------

    def write(self, record: AccessRecord) -> None:
        """Log one request: counted, then written unless the filters leave it out."""
        if self.keeps(record.status, record.retry_attempts, record.duration):
            self.emit(record)

    def emit(self, record: AccessRecord) -> None:
        """Buffer the line of a request :meth:`keeps` kept."""
        line = self.format_record(record) + "\n"
        self._buf.append(line)
        self._size += len(line)
        limit = self.options.buffering_size
        if self._size > 65536 or (limit and len(self._buf) >= limit):
            self.flush()
        elif self._flush_handle is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self.flush()
                return
            self._flush_handle = loop.call_later(0.5, self.flush)

    def flush(self, wait: bool = False) -> None:
        """Hand the buffered lines to the writer thread (``wait``: and wait until they are written)."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if self._buf:
            self._writer.put("".join(self._buf), len(self._buf))
            self._buf.clear()
            self._size = 0
        if wait:
            self._writer.wait()

    @property
    def dropped(self) -> int:
        """Lines dropped because the output did not keep up (see :class:`_Writer`)."""
        return self._writer.dropped

    def close(self) -> None:
        self.flush()
        self._writer.close()
        if self._own:
            self._out.close()


class _Writer:
    """Writes the access log's batches of lines in a thread of its own, so that a slow output (standard
    output piped to a busy ``docker logs`` driver, a full disk, a stalled NFS mount) never stalls the event
    loop and every request with it. At most :data:`QUEUE` batches (of up to 64 KiB each) wait; when the
    output is that far behind, further batches are dropped and counted (``dropped``, with a warning) rather
    than grow memory without bound or block the loop (Traefik blocks its requests on a full channel).
    Bytes that are not UTF-8 (aiohttp keeps them as surrogates) are written as ``\\xNN`` escapes: one
    odd header never costs the lines around it."""

    QUEUE = 64

    def __init__(self, out: IO[str]) -> None:
        self.out = out
        self.dropped = 0
        self._queue: queue.Queue[str | None] = queue.Queue(self.QUEUE)
        self._thread: threading.Thread | None = None
        self._warned = 0.0

    def put(self, text: str, lines: int) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="access-log", daemon=True)
            self._thread.start()
        try:
            self._queue.put_nowait(text)
        except queue.Full:
            self.dropped += lines
            now = time.monotonic()
            if now - self._warned > 60:
                self._warned = now
                _log.warning("access log output too slow: %d lines dropped so far", self.dropped)

    def _run(self) -> None:
        while True:
            text = self._queue.get()
            try:
                if text is None:
                    return
                if not text.isascii():
                    text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
                self.out.write(text)
                self.out.flush()
            except (OSError, ValueError) as exc:  # a full disk, a closed pipe: these lines are lost
                _log.warning("access log not written: %s", exc)
            finally:
                self._queue.task_done()

    def wait(self) -> None:
        """Block until every batch handed over is written (tests, shutdown)."""
        if self._thread is not None:
            self._queue.join()

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=5)
            self._thread = None


def _service_addr(url: str) -> str:
    """Traefik's ServiceAddr: the ``host:port`` of the backend URL."""
    if not url:
        return ""
    rest = url.split("://", 1)[-1]
    return rest.split("/", 1)[0]
