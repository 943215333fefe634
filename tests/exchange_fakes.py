"""Running a middleware on an :class:`router.exchange.Exchange` without a server: the fakes the unit tests
of the middleware families share (a transport that keeps what is written, a sink that records the answer,
an exchange built from a method, target, host and headers) and the option readers they use."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import SimpleNamespace
from typing import Any

import pytest
from multidict import CIMultiDict

from discover.middlewares.registry import read_middleware_options
from discover.readers import At, ConfigError
from router.exchange import Exchange, Sink
from router.headers import TrustedNetworks
from router.middlewares import BuildContext
from router.rules import RequestInfo

__all__ = ["FakeTransport", "Recorder", "ctx", "fake_exchange", "read_options", "refusal"]


class FakeTransport:
    """The client's transport: keeps every byte written (``data``), never closing, never backed up."""

    def __init__(self) -> None:
        self.data = b""

    def is_closing(self) -> bool:
        return False

    def write(self, data: bytes) -> None:
        self.data += data

    def writelines(self, parts: Iterable[bytes]) -> None:
        self.data += b"".join(parts)

    def get_write_buffer_size(self) -> int:
        return 0


class Recorder(Sink):
    """A sink that records the answer a middleware gives: status, headers and body."""

    def __init__(self) -> None:
        self.status, self.headers, self.body = 0, None, b""

    async def start(self, status, headers, reason=""):
        self.status, self.headers = status, headers

    async def write(self, data):
        self.body += data

    async def end(self):
        pass


_NO_BODY = SimpleNamespace(content=SimpleNamespace(is_eof=lambda: True))  # the request's body all read


class _Info(RequestInfo):
    """A RequestInfo whose ``via`` (the proxy's per-entry-point class attribute) is set per instance: one
    class for every fake, no class made per exchange."""

    __slots__ = ("via",)


def fake_exchange(
    method: str = "GET",
    target: str = "/",
    host: str = "a.test",
    headers: Mapping[str, str] | Iterable[tuple[str, str]] | CIMultiDict = (),
    client: str = "127.0.0.1",
    host_header: str | None = None,
    version: tuple[int, int] = (1, 1),
    info_host: str | None = None,
    **ep: Any,
) -> Exchange:
    """An exchange for ``method target`` to ``host`` (the Host header as sent: ``host_header``, by default
    ``host``) from ``client``; ``ep`` sets entry-point attributes (``scheme``, ``trusted``, ...). What the
    client receives is in ``ex.transport.data`` unless ``ex.sink`` is replaced."""
    entry = SimpleNamespace(
        access_log=None,
        observe=False,
        scheme="http",
        write_timeout=None,
        read_timeout=None,
        trusted=TrustedNetworks(()),
    )
    vars(entry).update(ep)
    h = headers if isinstance(headers, CIMultiDict) else CIMultiDict(headers)
    path, _, query = target.partition("?")
    msg = SimpleNamespace(version=version, headers=h, path=target)
    host_header = host if host_header is None else host_header
    # as the proxy builds it: its entry point in ``via``, the Host as sent (router.forwarded_view reads both)
    info = _Info(method, info_host or host, path, query, h, client, host_header)
    info.via = entry
    return Exchange(entry, _NO_BODY, FakeTransport(), msg, info, host_header, False, "r")


def ctx() -> BuildContext:
    return BuildContext("m@file", "r@file", None)


def read_options(mtype: str, value: object) -> object:
    """``value`` read as the options of a middleware of type ``mtype`` from a file."""
    return read_middleware_options(mtype, value, At(f"http.middlewares.m.{mtype}"))


def refusal(mtype: str, value: object) -> str:
    """The ConfigError ``value`` gets as ``mtype``'s options: "path: message"."""
    with pytest.raises(ConfigError) as info:
        read_options(mtype, value)
    return f"{info.value.path}: {info.value}"
