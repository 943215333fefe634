"""router.targets: each kind of target answers its requests itself, and the entry point's handler only
routes (any object with ``handle`` is a target; nothing asks which kind it is)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp.test_utils import make_mocked_request

from router.proxy import EntryPointHandler
from router.replies import SENT_CLOSE, SENT_KEEP
from router.rules import parse_rule
from router.settings import EntryPoint, Transport
from router.table import Route, RoutingTable
from router.targets import CHALLENGE_PREFIX, ChallengeTarget, RedirectTarget
from router.upstream import Pool


class FakeTransport:
    def __init__(self) -> None:
        self.written = b""

    def write(self, data: bytes) -> None:
        self.written += data

    def is_closing(self) -> bool:
        return False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("192.0.2.7", 40000) if name == "peername" else default


def handler_with(target: object, rule: str = "PathPrefix(`/`)") -> EntryPointHandler:
    ep = EntryPointHandler(EntryPoint(name="web", address="127.0.0.1:0"), Pool(Transport()))
    ep.table = RoutingTable([Route("r", 1, parse_rule(rule), target)])
    return ep


async def call(ep: EntryPointHandler, method: str, target: str, host: str = "a.test") -> tuple[Any, bytes]:
    transport = FakeTransport()
    request = make_mocked_request(method, target, headers={"Host": host}, transport=transport)
    sent = await ep(request)
    return sent, transport.written


async def test_any_object_with_handle_is_a_target():
    calls = []

    class Teapot:
        async def handle(self, ep, request, transport, msg, info, host_header, close):
            calls.append((info.method, info.host, info.path, info.raw_query, host_header, close))
            transport.write(b"HTTP/1.1 418 I'm a teapot\r\nContent-Length: 0\r\n\r\n")
            return SENT_KEEP

    sent, written = await call(handler_with(Teapot()), "GET", "/a/../b?x=1", host="Tea.Test:8080")
    assert sent is SENT_KEEP
    assert written.startswith(b"HTTP/1.1 418")
    assert calls == [("GET", "tea.test", "/b", "x=1", "Tea.Test:8080", False)]


async def test_redirect_target_answers_with_the_scheme_port_and_whole_target():
    ep = handler_with(RedirectTarget("to-https", "https", "8443", permanent=True))
    sent, written = await call(ep, "GET", "/p/q?x=1&y")
    assert sent is SENT_KEEP
    assert written.startswith(b"HTTP/1.1 301 Moved Permanently\r\n")
    assert b"\r\nLocation: https://a.test:8443/p/q?x=1&y\r\n" in written
    _, written = await call(ep, "POST", "/p")
    assert written.startswith(b"HTTP/1.1 308 ")
    _, written = await call(handler_with(RedirectTarget("r", "https", None, permanent=False)), "PUT", "/")
    assert written.startswith(b"HTTP/1.1 307 ") and b"\r\nLocation: https://a.test/\r\n" in written


async def test_challenge_target_answers_known_tokens_only():
    tokens = {"tok1": "tok1.thumbprint"}
    ep = handler_with(ChallengeTarget("acme-http@internal", tokens.get), f"PathPrefix(`{CHALLENGE_PREFIX}`)")
    sent, written = await call(ep, "GET", CHALLENGE_PREFIX + "tok1")
    assert sent is SENT_KEEP
    assert written.startswith(b"HTTP/1.1 200 OK\r\n") and written.endswith(b"\r\n\r\ntok1.thumbprint")
    _, written = await call(ep, "GET", CHALLENGE_PREFIX + "other")
    assert written.startswith(b"HTTP/1.1 404 ")


async def test_challenge_target_awaits_an_answer_read_off_the_loop():
    """Another replica's token: the lookup gives an awaitable (a read in a thread), and its answer is sent."""
    loop = asyncio.get_running_loop()

    def lookup(token: str) -> asyncio.Future[str | None]:
        future = loop.create_future()
        loop.call_soon(future.set_result, f"{token}.thumbprint" if token == "tok2" else None)
        return future

    ep = handler_with(ChallengeTarget("acme-http@internal", lookup), f"PathPrefix(`{CHALLENGE_PREFIX}`)")
    sent, written = await call(ep, "GET", CHALLENGE_PREFIX + "tok2")
    assert sent is SENT_KEEP
    assert written.startswith(b"HTTP/1.1 200 OK\r\n") and written.endswith(b"\r\n\r\ntok2.thumbprint")
    _, written = await call(ep, "GET", CHALLENGE_PREFIX + "other")
    assert written.startswith(b"HTTP/1.1 404 ")


async def test_no_route_and_a_bad_target_get_the_canned_answers():
    ep = handler_with(RedirectTarget("r", "https", None, True), "Host(`b.test`)")
    sent, written = await call(ep, "GET", "/")
    assert sent is SENT_KEEP and written.startswith(b"HTTP/1.1 404 ") and b"404 page not found" in written
    sent, written = await call(ep, "GET", "/a%zz")
    assert sent is SENT_CLOSE and written.startswith(b"HTTP/1.1 400 ")
