"""A hostile request against a catastrophic regex does not stall the proxy (the real process).

With Python's backtracking ``re``, ``PathRegexp(`^/(a+)+$`)`` and a 27-character path held the event loop
for about 2 s, and ``HeaderRegexp(`X-Id`, `^(a|aa)+$`)`` with a 60-character header for minutes, and
every other client waited behind them. Rules are Go regexes, matched by RE2 in linear time: the hostile
requests are answered at once and a concurrent request to an unrelated router is not delayed.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.integration.harness import routers

pytestmark = pytest.mark.integration

HOSTILE_PATH = "/" + "a" * 27 + "!"
HOSTILE_HEADER = "a" * 60 + "!"


async def send(port: int, path: str, host: str, headers: dict[str, str] | None = None) -> tuple:
    """Open a connection and write one request; return (reader, writer, time the request was sent)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n".encode())
    await writer.drain()
    return reader, writer, time.monotonic()


async def answer(sent: tuple) -> tuple[int, float]:
    """(status, seconds from sending the request to having the whole response)."""
    reader, writer, start = sent
    try:
        async with asyncio.timeout(10):
            data = await reader.read()  # Connection: close: the response ends with the connection
    finally:
        writer.close()
    elapsed = time.monotonic() - start
    return int(data.split(b" ", 2)[1]), elapsed


async def request(
    port: int, path: str, host: str, headers: dict[str, str] | None = None
) -> tuple[int, float]:
    return await answer(await send(port, path, host, headers))


@pytest.mark.timing
async def test_hostile_regex_inputs_do_not_stall_other_clients(backends, proxy):
    (be,) = await backends("be")
    dr = await proxy(
        routers(
            ("path-re", "PathRegexp(`^/(a+)+$`)", "svc"),
            ("header-re", "Host(`hdr.test`) && HeaderRegexp(`X-Id`, `^(a|aa)+$`)", "svc"),
            ("other", "Host(`other.test`)", "svc"),
            ("refused", "Host(`bad.test`) && PathRegexp(`^/(a)\\1$`)", "svc"),
            services={"svc": [be.url]},
        )
    )
    # A pattern RE2 (and Go) refuses leaves its router out, with one line naming it, the column and why.
    lines = [line for line in dr.log().splitlines() if "refused" in line]
    assert len(lines) == 1, lines
    assert "column 32" in lines[0] and "backreferences are not supported" in lines[0], lines[0]

    # The others work, with benign input.
    assert (await request(dr.port, "/aaa", "any.test"))[0] == 200
    assert (await request(dr.port, "/", "hdr.test", {"X-Id": "aaaa"}))[0] == 200
    assert (await request(dr.port, "/", "other.test"))[0] == 200

    # Both hostile requests are on the wire before the innocent one is sent: with a backtracking
    # engine the proxy is inside the regex when the innocent request arrives.
    hostile_path = await send(dr.port, HOSTILE_PATH, "any.test")
    hostile_header = await send(dr.port, "/", "hdr.test", {"X-Id": HOSTILE_HEADER})
    innocent = await send(dr.port, "/", "other.test")
    (path_status, path_s), (header_status, header_s), (other_status, other_s) = await asyncio.gather(
        answer(hostile_path), answer(hostile_header), answer(innocent)
    )

    assert (path_status, header_status, other_status) == (404, 404, 200)
    assert path_s < 0.5, f"hostile path answered in {path_s:.3f} s"
    assert header_s < 0.5, f"hostile header answered in {header_s:.3f} s"
    assert other_s < 0.3, f"the unrelated router waited {other_s:.3f} s"
