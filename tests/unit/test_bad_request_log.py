"""Bad requests in the log: at most one line a second, the parser's reason without the request's bytes, and
how many were left out in between."""

from __future__ import annotations

import logging

from router.bad_requests import BadRequestLog, reason_of

AIOHTTP_MESSAGE = "400, message:\n  Invalid header value char:\n\n    b'X-A: a\\x00SECRET'\n      ^"


def test_the_reason_never_carries_the_requests_bytes():
    assert reason_of(AIOHTTP_MESSAGE) == "Invalid header value char"
    assert reason_of("Bad status line 'GET /SECRET'") == "Bad status line"
    assert reason_of("") == "malformed request"
    assert reason_of("\x1b[31mred") == "?[31mred"  # printable characters only: no terminal escapes


def test_one_line_a_second_then_the_count_of_those_left_out(caplog):
    now = [100.0]
    bad = BadRequestLog(every=1.0, clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="dockroute.server"):
        for _ in range(5):
            bad.note("192.0.2.1", AIOHTTP_MESSAGE)
        now[0] += 1.5
        bad.note("192.0.2.2", AIOHTTP_MESSAGE)
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "bad request from 192.0.2.1: Invalid header value char",
        "bad request from 192.0.2.2: Invalid header value char (4 more since the last line)",
    ]
    assert all("SECRET" not in line for line in lines)
