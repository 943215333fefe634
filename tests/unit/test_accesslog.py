"""The access log's formats (Traefik's common, genericCLF, json), ``fields`` (keep/drop/redact of fields and
request headers, query parameters) and ``filters`` (statusCodes, retryAttempts, minDuration)."""

from __future__ import annotations

import io
import json
import re
import time

from multidict import CIMultiDict

from router.accesslog import (
    AccessLog,
    AccessLogFields,
    AccessLogFilters,
    AccessLogOptions,
    AccessRecord,
    _Writer,
    canonical_header,
)

HEADERS = CIMultiDict(
    [
        ("Host", "app.test:8080"),
        ("user-agent", "curl/8"),
        ("Referer", "https://from.test/"),
        ("Authorization", "Bearer secret"),
        ("X-Forwarded-For", "203.0.113.9"),
        ("Accept", "a"),
        ("accept", "b"),
    ]
)


def _record(**kw) -> AccessRecord:
    base = dict(
        client="127.0.0.1",
        method="GET",
        path="/a/b?token=x",
        proto="HTTP/1.1",
        status=200,
        size=23,
        referer="https://from.test/",
        user_agent="curl/8",
        router="app@file",
        server="http://10.0.0.2:8000",
        entry_point="web",
        host="app.test",
        reason="",
        duration=0.0125,
        service="svc@file",
        client_port=40000,
        request_addr="app.test:8080",
        headers=HEADERS,
        forwarded_for="203.0.113.9",
        origin=True,
    )
    base.update(kw)
    return AccessRecord(**base)


def _log(fmt: str = "json", **options) -> tuple[AccessLog, io.StringIO]:
    out = io.StringIO()
    return AccessLog(fmt=fmt, stream=out, options=AccessLogOptions(**options)), out


def _lines(log: AccessLog, out: io.StringIO) -> list[str]:
    log.flush(wait=True)
    return out.getvalue().splitlines()


def test_json_has_traefiks_fields():
    log, out = _log()
    log.write(_record())
    (line,) = _lines(log, out)
    d = json.loads(line)
    assert d["ClientHost"] == "203.0.113.9"  # X-Forwarded-For, as Traefik
    assert d["ClientAddr"] == "127.0.0.1:40000" and d["ClientPort"] == "40000"
    assert (d["RequestMethod"], d["RequestPath"], d["RequestProtocol"]) == ("GET", "/a/b?token=x", "HTTP/1.1")
    assert (d["RequestAddr"], d["RequestHost"], d["RequestPort"]) == ("app.test:8080", "app.test", "8080")
    assert d["RequestScheme"] == "http" and d["RequestContentSize"] == 0
    assert d["DownstreamStatus"] == 200 and d["DownstreamContentSize"] == 23
    assert d["OriginStatus"] == 200 and d["OriginContentSize"] == 23
    assert (d["RouterName"], d["ServiceName"]) == ("app@file", "svc@file")
    assert (d["ServiceURL"], d["ServiceAddr"]) == ("http://10.0.0.2:8000", "10.0.0.2:8000")
    assert d["entryPointName"] == "web" and d["Duration"] == 12_500_000 and d["RetryAttempts"] == 0
    assert d["StartUTC"].endswith("Z") and re.match(r"\d{4}-\d\d-\d\dT", d["StartLocal"])
    assert d["level"] == "info" and d["msg"] == "" and "time" in d and d["RequestCount"] == 1
    assert not any(k.startswith("request_") for k in d)  # Traefik's default: headers dropped
    assert list(d) == sorted(d)  # Go's encoding/json writes a map's keys sorted


def test_header_modes_keep_drop_redact_with_canonical_names():
    fields = AccessLogFields(
        headers_default_mode="keep", header_names=(("authorization", "redact"), ("x-forwarded-for", "drop"))
    )
    log, out = _log(fields=fields)
    log.write(_record())
    d = json.loads(_lines(log, out)[0])
    assert d["request_Authorization"] == "REDACTED"
    assert "request_X-Forwarded-For" not in d
    assert d["request_User-Agent"] == "curl/8" and d["request_Accept"] == "a,b"
    assert "Bearer" not in json.dumps(d)
    assert canonical_header("x-real-ip") == "X-Real-Ip"


def test_field_modes_and_query_parameters():
    fields = AccessLogFields(
        default_mode="drop",
        names=(("ClientHost", "keep"), ("downstreamstatus", "keep")),
        query_parameters_mode="drop",
    )
    log, out = _log(fields=fields)
    log.write(_record())
    d = json.loads(_lines(log, out)[0])
    assert set(d) == {"ClientHost", "DownstreamStatus", "level", "msg", "time"}
    log, out = _log(fields=AccessLogFields(names=(("RouterName", "drop"),), query_parameters_mode="drop"))
    log.write(_record())
    d = json.loads(_lines(log, out)[0])
    assert "RouterName" not in d and d["RequestPath"] == "/a/b" and "ServiceName" in d


def test_common_format_is_traefiks():
    log, out = _log("common", fields=AccessLogFields(headers_default_mode="keep"))
    log.write(_record())
    (line,) = _lines(log, out)
    assert re.fullmatch(
        r'203\.0\.113\.9 - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d \+0000\] "GET /a/b\?token=x HTTP/1\.1" 200 23 '
        r'"https://from\.test/" "curl/8" 1 "app@file" "http://10\.0\.0\.2:8000" 12ms',
        line,
    ), line
    log, out = _log("common")  # headers dropped by default: referer and user agent print as "-"
    log.write(_record(status=502, reason="http://10.0.0.2:8000: connection refused"))
    (line,) = _lines(log, out)
    assert ' 502 23 "-" "-" 1 "app@file"' in line and line.endswith(
        '"http://10.0.0.2:8000: connection refused"'
    )


def test_generic_clf_stops_after_the_user_agent():
    log, out = _log("genericCLF", fields=AccessLogFields(headers_default_mode="keep"))
    log.write(_record())
    (line,) = _lines(log, out)
    assert line.endswith('"GET /a/b?token=x HTTP/1.1" 200 23 "https://from.test/" "curl/8"')


def test_filters_keep_any_matching_line():
    log, out = _log(filters=AccessLogFilters(status_codes=("500-599", "404")))
    for status in (200, 404, 502, 301):
        log.write(_record(status=status))
    assert [json.loads(x)["DownstreamStatus"] for x in _lines(log, out)] == [404, 502]
    log, out = _log(filters=AccessLogFilters(min_duration=0.1))
    log.write(_record(duration=0.05))
    log.write(_record(duration=0.5))
    assert [json.loads(x)["Duration"] for x in _lines(log, out)] == [500_000_000]
    log, out = _log(filters=AccessLogFilters(retry_attempts=True))
    log.write(_record())
    log.write(_record(retry_attempts=2))
    assert [json.loads(x)["RetryAttempts"] for x in _lines(log, out)] == [2]
    log, out = _log(filters=AccessLogFilters())  # filters given but empty: everything kept (Traefik)
    log.write(_record())
    assert len(_lines(log, out)) == 1


async def test_buffering_size_writes_every_n_lines():
    log, out = _log(buffering_size=3)
    for _ in range(2):
        log.write(_record())
    assert out.getvalue() == ""  # kept for the half-second timer...
    log.write(_record())
    log._writer.wait()  # handed to the writer thread: written once it has run
    assert len(out.getvalue().splitlines()) == 3  # ...until bufferingSize lines are waiting
    log.close()


def test_self_answered_requests_have_overhead_and_no_origin():
    log, out = _log()
    log.write(_record(origin=False, server="", router="", service=""))
    d = json.loads(_lines(log, out)[0])
    assert "OriginStatus" not in d and d["Overhead"] == d["Duration"]


def test_a_header_that_is_not_utf8_costs_no_line(tmp_path):
    """aiohttp keeps non-UTF-8 header bytes as surrogates: the line is written with them escaped, and the
    lines buffered with it are kept, in a file and on a strict UTF-8 stream (standard output)."""
    path = tmp_path / "access.log"
    raw = io.BytesIO()
    strict = io.TextIOWrapper(raw, encoding="utf-8", errors="strict")
    keep = AccessLogOptions(fields=AccessLogFields(headers_default_mode="keep"))
    for log in (
        AccessLog(str(path), "common", options=keep),
        AccessLog(fmt="common", stream=strict, options=keep),
    ):
        log.write(_record(user_agent="before"))
        log.write(_record(user_agent="caf\udce9 \u00e9t\u00e9"))  # a Latin-1 byte, then real UTF-8
        log.write(_record(user_agent="after"))
        log.close()
    for text in (path.read_text(encoding="utf-8"), raw.getvalue().decode("utf-8")):
        lines = text.splitlines()
        assert len(lines) == 3, text
        assert '"caf\\xe9 \u00e9t\u00e9"' in lines[1] and '"after"' in lines[2]


def test_the_common_line_is_traefiks_byte_for_byte():
    """Only ``"`` is escaped in a quoted field (Traefik's toLogEntry), a path holding a quote, a space or
    non-ASCII is printed percent-escaped (Go's URL.String()), and RequestCount counts every request,
    logged or not."""
    log, out = _log(
        "common",
        fields=AccessLogFields(headers_default_mode="keep"),
        filters=AccessLogFilters(status_codes=("500-599",)),
    )
    log.write(_record(status=200))  # filtered out, but counted
    log.write(_record(status=502, path='/a"b c/\u00e9?q="x"', user_agent='a\\b"c', reason="refused"))
    (line,) = _lines(log, out)
    assert '"GET /a%22b%20c/%C3%A9?q="x" HTTP/1.1" 502' in line
    assert '"a\\b\\"c"' in line  # the backslash as it is, the quote escaped
    assert line.endswith(' 2 "app@file" "http://10.0.0.2:8000" 12ms "refused"')
    log, out = _log()
    log.write(_record(path='/a"b'))
    assert json.loads(_lines(log, out)[0])["RequestPath"] == "/a%22b"


class _Slow(io.StringIO):
    """An output that takes its time (standard output piped to a busy log driver)."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay

    def write(self, text: str) -> int:
        time.sleep(self.delay)
        return super().write(text)


def test_a_slow_output_never_blocks_the_caller_and_drops_what_cannot_wait(monkeypatch):
    monkeypatch.setattr(_Writer, "QUEUE", 2)
    out = _Slow(0.3)
    log = AccessLog(fmt="json", stream=out, options=AccessLogOptions(buffering_size=1))
    started = time.monotonic()
    for _ in range(6):
        log.write(_record())  # each line is a batch handed to the writer thread
    assert time.monotonic() - started < 0.2  # not 6 x 0.3 s on the caller (the event loop)
    assert log.dropped >= 1  # one in writing, two waiting: the others were dropped and counted
    log.flush(wait=True)
    assert len(out.getvalue().splitlines()) == 6 - log.dropped
    log.close()
