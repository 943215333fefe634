"""Request smuggling shapes against the real dockroute process: each gets a fixed 400 (or 501) and a closed
connection, and never reaches the backend.

A proxy and its backend that frame one message differently let a client hide a second request inside the
first (request smuggling: CL.TE, TE.CL, TE.TE). dockroute's answer is to refuse every ambiguous shape at its
own parser, aiohttp's C parser (llhttp), before routing. The backend here is a raw asyncio server that
records every byte it receives: for a refused request it must receive nothing. After each case a normal
request goes through the same route, so the backend demonstrably records what reaches it.

Every request carries a marker in the offending spot; the answer must not contain it (aiohttp's default
error page repeats the request, an echo that turns a parser error into reflected content).

Go's net/http (Traefik's parser) answers ``501 Not Implemented`` for a Transfer-Encoding other than one
``chunked``; llhttp answers those with 400. Both refuse and close, so either status passes for the TE
cases; everything else must be 400.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.hardening.backends import RecordingBackend, recording  # noqa: F401  (a fixture)
from tests.hardening.rawclient import exchange
from tests.integration.conftest import proxy  # noqa: F401  (the real process, a fixture)
from tests.integration.harness import routers
from tests.polling import wait_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
MARK = b"zq-smuggle-marker"
GOOD = b"GET /good HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n"


def _req(head: bytes, body: bytes = b"", method: bytes = b"POST") -> bytes:
    """A request to the routed host with ``head`` as its extra header lines (CRLF-terminated each)."""
    return method + b" /p HTTP/1.1\r\nHost: a.test\r\n" + head + b"\r\n" + body


# (id naming the advisory, raw request, statuses accepted). Each offending value carries MARK.
SMUGGLING = [
    pytest.param(
        _req(
            b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\nX-M: " + MARK + b"\r\n", b"0\r\n\r\nGET /x"
        ),
        (400,),
        id="CL.TE-both-RFC9112-6.3-CVE-2023-30589-GHSA-45c4-8wx5-qw6w",
    ),
    pytest.param(
        _req(b"Content-Length: 1\r\nContent-Length: 12\r\nX-M: " + MARK + b"\r\n", b"x" * 12),
        (400,),
        id="duplicate-CL-differing-RFC9112-6.3-GHSA-gfw2-4jvh-wgfg",
    ),
    pytest.param(
        _req(b"Content-Length: 3\r\nContent-Length: 3\r\nX-M: " + MARK + b"\r\n", b"abc"),
        (400,),
        id="duplicate-CL-equal-llhttp-strict-GHSA-gfw2-4jvh-wgfg",
    ),
    pytest.param(
        _req(b"Content-Length: \r\nX-M: " + MARK + b"\r\n"),
        (400,),
        id="empty-CL-RFC9112-6.3-GHSA-gfw2-4jvh-wgfg",
    ),
    pytest.param(
        _req(b"Content-Length: +3\r\nX-M: " + MARK + b"\r\n", b"abc"),
        (400,),
        id="signed-CL-CVE-2023-47627-GHSA-gfw2-4jvh-wgfg",
    ),
    pytest.param(
        _req(b"Content-Length: 3 3\r\nX-M: " + MARK + b"\r\n", b"abc"),
        (400,),
        id="CL-list-in-one-line-CVE-2023-47627",
    ),
    pytest.param(
        _req(b"X-M: a\r\n " + MARK + b"\r\nContent-Length: 0\r\n"),
        (400,),
        id="obs-fold-RFC9112-5.2-GHSA-gfw2-4jvh-wgfg",
    ),
    pytest.param(
        _req(b"Transfer-Encoding:\r\n chunked\r\nX-M: " + MARK + b"\r\n", b"0\r\n\r\n"),
        (400,),
        id="obs-fold-TE-RFC9112-5.2-PortSwigger-TE.TE",
    ),
    pytest.param(
        _req(b"Transfer-Encoding: chunked\r\nX-M: " + MARK + b"\r\n", b"zz\r\nabc\r\n0\r\n\r\n"),
        (400,),
        id="chunk-size-not-hex-RFC9112-7.1",
    ),
    pytest.param(
        _req(b"Transfer-Encoding: chunked\r\nX-M: " + MARK + b"\r\n", b"-1\r\nabc\r\n0\r\n\r\n"),
        (400,),
        id="chunk-size-negative-CVE-2023-47627",
    ),
    pytest.param(
        _req(b"Transfer-Encoding: chunked\r\nX-M: " + MARK + b"\r\n", b"0x3\r\nabc\r\n0\r\n\r\n"),
        (400,),
        id="chunk-size-0x-prefix-CVE-2023-47627",
    ),
    pytest.param(
        _req(b"Transfer-Encoding: chunked\r\nX-M: " + MARK + b"\r\n", b"1ffffffffffffffff\r\nabc\r\n"),
        (400,),
        id="chunk-size-overflow-llhttp-HPE_INVALID_CHUNK_SIZE",
    ),
    pytest.param(
        _req(b"Transfer-Encoding: chunked\r\nX-M: " + MARK + b"\r\n", b"3;a\nb\r\nabc\r\n0\r\n\r\n"),
        (400,),
        id="chunk-extension-LF-CVE-2024-52304-GHSA-8495-4g3g-x7pr",
    ),
    pytest.param(
        _req(b"Transfer-Encoding: chunked\r\nX-M: " + MARK + b"\r\n", b"3\r\nabcXX0\r\n\r\n"),
        (400,),
        id="chunk-data-without-CRLF-llhttp-CVE-2023-30589",
    ),
    pytest.param(
        b"POST /p HTTP/1.1\nHost: a.test\nX-M: " + MARK + b"\nContent-Length: 0\n\n",
        (400,),
        id="bare-LF-line-ends-RFC9112-2.2-CVE-2023-30589",
    ),
    pytest.param(
        _req(b"X-M: " + MARK + b"\nTransfer-Encoding: chunked\r\n", b"0\r\n\r\n"),
        (400,),
        id="bare-LF-hides-TE-CVE-2023-30589",
    ),
    pytest.param(
        _req(b"X-M: \r" + MARK + b"Transfer-Encoding: chunked\r\n", b"1\r\nA\r\n0\r\n\r\n"),
        (400,),
        id="bare-CR-in-value-CVE-2023-37276-GHSA-45c4-8wx5-qw6w",
    ),
    pytest.param(
        _req(b"X-M: a\x00" + MARK + b"\r\nContent-Length: 0\r\n"),
        (400,),
        id="NUL-in-value-RFC9110-5.5-CVE-2023-47627",
    ),
    pytest.param(
        _req(b"Transfer-Encoding: gzip\r\nX-M: " + MARK + b"\r\n", b"abc"),
        (400, 501),
        id="TE-not-chunked-Go-501-RFC9112-6.3",
    ),
    pytest.param(
        _req(b"Transfer-Encoding: chunked, gzip\r\nX-M: " + MARK + b"\r\n", b"0\r\n\r\n"),
        (400, 501),
        id="TE-chunked-not-last-RFC9112-6.3",
    ),
    pytest.param(
        _req(b"Transfer-Encoding: xchunked\r\nX-M: " + MARK + b"\r\n", b"0\r\n\r\n"),
        (400, 501),
        id="TE-obfuscated-xchunked-PortSwigger-TE.TE",
    ),
    pytest.param(
        _req(b"Transfer-Encoding: gzip, chunked\r\nX-M: " + MARK + b"\r\n", b"0\r\n\r\n"),
        (400, 501),
        id="TE-coding-before-chunked-Go-501-RFC9112-6.1",
    ),
    pytest.param(
        _req(
            b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\nX-M: " + MARK + b"\r\n",
            b"0\r\n\r\n",
        ),
        (400, 501),
        id="TE-twice-Go-501-PortSwigger-TE.TE",
    ),
    pytest.param(
        _req(b"Host: " + MARK + b".test\r\nContent-Length: 0\r\n"),
        (400,),
        id="duplicate-Host-RFC9112-3.2-Go-too-many-Host",
    ),
]


def _config(url: str) -> dict:
    return routers(("r", "Host(`a.test`)", "s"), services={"s": [url]})


@pytest.mark.parametrize(("raw", "statuses"), SMUGGLING)
async def test_smuggling_shape_is_refused_closed_and_never_forwarded(proxy, recording, raw, statuses):  # noqa: F811
    """Each shape names its advisory in its id (aiohttp GHSA-45c4-8wx5-qw6w / CVE-2023-37276,
    GHSA-gfw2-4jvh-wgfg / CVE-2023-47627, GHSA-8495-4g3g-x7pr / CVE-2024-52304, llhttp CVE-2023-30589,
    PortSwigger's TE.TE obfuscations, RFC 9112 sections): 400 (501 allowed for a TE Go refuses
    that way), the connection closed, no echo of the request, nothing at the backend."""
    dr = await proxy(_config(recording.url))
    answer = await exchange(dr.port, raw, timeout=3.0)
    assert answer.status in statuses, answer.data[:300]
    assert answer.closed, "the connection stayed open after a refused request"
    assert answer.answers == 1, answer.data[:600]
    assert MARK not in answer.data
    assert b"/p" not in answer.body
    # The route works: a good request reaches the backend, and it is the only thing that did.
    good = await exchange(dr.port, GOOD, timeout=3.0)
    assert good.status == 200, good.data[:300]
    await wait_for(lambda: b"/good" in recording.received, timeout=5)
    assert MARK not in recording.received
    assert recording.received.count(b"HTTP/1.1\r\n") == 1, bytes(recording.received)


async def test_error_page_is_fixed_text(proxy, recording):  # noqa: F811
    """aiohttp's default 400 page repeats the parser's message, which quotes the request's bytes (a
    reflection of attacker bytes into a response, OWASP A03 injection class). dockroute's body is one
    fixed line. Its head names no software or version either (aiohttp's says ``HTTP/1.0`` and
    ``Server: Python/3.x aiohttp/3.y``: the exact parser version, for anyone probing for a known bug in
    it); the same holds for the 431 of a request line over the parser's limit."""
    dr = await proxy(_config(recording.url))
    answer = await exchange(dr.port, _req(b"Content-Length: x" + MARK + b"\r\n"))
    assert answer.status == 400 and answer.closed
    assert answer.body == b"400 Bad Request\n"
    too_many = b"".join(b"X-%d: y\r\n" % i for i in range(1100))
    for bad in (answer, await exchange(dr.port, _req(too_many))):
        head = bad.data.partition(b"\r\n\r\n")[0].lower()
        assert head.startswith(b"http/1.1 4"), bad.data[:200]
        assert b"aiohttp" not in head and b"python" not in head and b"server:" not in head


async def test_bad_requests_log_one_rate_limited_line_without_their_bytes(proxy, recording):  # noqa: F811
    """A flood of malformed requests must not become a flood of log lines carrying attacker bytes (log
    injection and disk filling: CWE-117, CWE-779). Each bad request is one line naming the peer and the
    reason, never the request's bytes, and a burst is summarised rather than logged once per request."""
    dr = await proxy(_config(recording.url))
    for i in range(30):
        raw = _req(b"X-M: a\x00" + MARK + str(i).encode() + b"\r\n")
        assert (await exchange(dr.port, raw)).status == 400
    await wait_for(lambda: "bad request" in dr.log(), timeout=5)
    log = dr.log()
    assert MARK.decode() not in log
    lines = log.splitlines()
    bad = [n for n, line in enumerate(lines) if "bad request" in line]
    assert 1 <= len(bad) < 30, len(bad)
    for n in bad:  # one line each: the next line is a new log record (it starts with the date)
        assert n + 1 == len(lines) or lines[n + 1][:4].isdigit(), lines[n : n + 3]


def test_refuses_to_start_without_the_c_parser(tmp_path):
    """aiohttp's pure-Python parser is the one its smuggling advisories hit (GHSA-gfw2-4jvh-wgfg /
    CVE-2023-47627, GHSA-8495-4g3g-x7pr / CVE-2024-52304, GHSA-9548-qrrj-x5pj / CVE-2025-53643):
    with ``AIOHTTP_NO_EXTENSIONS=1`` the real process must exit non-zero with one clear line."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKROUTE_", "TRAEFIK_"))}
    env["PYTHONPATH"] = str(ROOT)
    env["AIOHTTP_NO_EXTENSIONS"] = "1"
    proc = subprocess.run(
        [sys.executable, "-m", "dockroute", "--entryPoints.web.address=127.0.0.1:0"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode != 0, proc.stderr
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert "C HTTP parser is not in use" in last and "AIOHTTP_NO_EXTENSIONS" in last, proc.stderr
