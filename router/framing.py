"""The backend's answer, relayed to the client: response head and body framing.

The head is assembled once from the backend's raw header pairs, minus hop-by-hop headers (and those the
backend's own ``Connection`` header names), with the framing recomputed for the client: the backend's
``Content-Length`` when it gave one, the length of a body already complete, chunked encoding for a body
of unknown length (HTTP/1.1), or the end of the connection (HTTP/1.0). A complete answer leaves in one
write; a longer one streams chunk by chunk, paced by the client (flow control in both directions).
"""

from __future__ import annotations

import asyncio
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from router.exchange import Headers
from router.headers import RESPONSE_DROP, Memo, edit_line
from router.replies import SENT_CLOSE, SENT_KEEP, Sent
from router.rules import RequestInfo
from router.upstream import Connection, UpstreamError

if TYPE_CHECKING:
    from router.exchange import Exchange
    from router.proxy import EntryPointHandler
    from router.targets import ServiceTarget

WRITE_HIGH = 1 << 20  # client write buffer above which the backend is no longer read


def abandon(conn: Connection, body_task: asyncio.Task[None] | None) -> None:
    """Give up on a backend exchange: close its connection and stop sending the request body."""
    conn.close()
    if body_task is not None and not body_task.done():
        body_task.cancel()


async def respond(
    ep: EntryPointHandler,
    request: Any,
    transport: Any,
    msg: Any,
    conn: Connection,
    info: RequestInfo,
    target: ServiceTarget,
    up: Any,
    close: bool,
    set_cookies: list[str] | None,
    body_task: asyncio.Task[None] | None,
    edits: list[tuple[tuple[str, str | None], ...]] | None = None,
) -> Sent:
    """Relay the response whose head ``conn`` has received, then give the connection back to the pool.
    ``edits``: headers middlewares set or remove on it (:func:`router.exchange.raw_edits`)."""
    status = conn.status
    if body_task is not None and not body_task.done():
        # The backend answered before taking the whole request body (a 413, a 401): the client's
        # connection can't carry another request after it, and must be told so in this response.
        close = True
    if edits:
        skip, added = _edit_plan(edits)
        out, length = _head_lines(conn, status, set_cookies, skip)
        out.extend(added)
    else:
        out, length = _head_lines(conn, status, set_cookies)
    bodyless = info.method == "HEAD" or status in (204, 304) or status < 200
    http10 = msg.version[1] == 0
    reason = None
    if conn.complete:
        sent, close = _write_whole(transport, conn, out, length, bodyless, close, http10)
    else:
        counted = [0]  # body bytes written so far, kept when the stream is cut
        try:
            sent, close, reason = await _write_streamed(
                ep, request, transport, conn, up, out, length, bodyless, close, http10, body_task, counted
            )
        except asyncio.CancelledError:  # the client went away mid-stream: the status it got, the bytes
            if ep.observe:
                why = "client went away during the response"
                ep.log(request, info, status, counted[0], target.router, up, why)
            raise
    if body_task is not None and not body_task.done():
        # The backend answered before reading the whole request body: this connection can't be reused.
        abandon(conn, body_task)
        close = True
    ep.pool.release(conn)
    if ep.observe:
        ep.log(request, info, status, sent, target.router, up, reason)
    return SENT_CLOSE if close else SENT_KEEP


async def relay(
    ex: Exchange,
    conn: Connection,
    up: Any,
    set_cookies: list[str] | None,
    body_task: asyncio.Task[None] | None,
) -> None:
    """:func:`respond` for a route with middlewares: the backend's answer through ``ex.sink``, which may
    change it. The head keeps the backend's ``Content-Length`` (or the length of a body already whole),
    so that a middleware knows it; the last sink frames the body for the client."""
    if body_task is not None and not body_task.done():
        ex.close = True  # answered before taking the whole request body (see respond)
    headers, length = response_headers(conn, set_cookies)
    whole = conn.complete
    body = conn.take_body() if whole else b""
    if length is not None:
        headers["Content-Length"] = length.decode("latin-1")
    elif whole and not (ex.method == "HEAD" or conn.status in (204, 304) or conn.status < 200):
        headers["Content-Length"] = str(len(body))
    sink = ex.sink
    try:
        await sink.start(conn.status, headers, conn.reason.decode("latin-1") if conn.reason else "")
        if whole:
            await sink.write(body)
        else:
            while chunk := await conn.read():
                await sink.write(chunk)
        await sink.end()
    except UpstreamError as exc:
        ex.reason, ex.close = f"{up.url}: {exc} (response truncated)", True
        ex.transport.abort()  # a reset: no client mistakes the cut body for a whole one
    except (ConnectionError, TimeoutError) as exc:
        ex.reason, ex.close = f"client went away or too slow during the response ({exc})", True
        conn.close()
        ex.transport.close()
    except BaseException:  # cancelled, or a middleware's sink failed: never leave the connection open
        abandon(conn, body_task)
        raise
    if body_task is not None and not body_task.done():
        abandon(conn, body_task)
        ex.close = True
    ex.ep.pool.release(conn)


def response_headers(conn: Connection, set_cookies: list[str] | None) -> tuple[Headers, bytes | None]:
    """The backend's end-to-end response headers (text) and its Content-Length value if any: what
    :func:`_head_lines` writes, for the middlewares to see (built in one call: this is per request)."""
    length: bytes | None = None
    tokens: frozenset[bytes] = frozenset()
    raw = conn.headers
    for name, value in raw:
        if len(name) in (10, 14):
            ln = name.lower()
            if ln == b"connection":
                tokens = frozenset(t.strip().lower() for t in value.split(b","))
            elif ln == b"content-length":
                length = value
    pairs = [
        (name.decode("latin-1"), value.decode("latin-1"))
        for name, value in raw
        if (ln := name.lower()) not in RESPONSE_DROP and ln not in tokens
    ]
    if set_cookies:
        pairs.extend(("Set-Cookie", sc) for sc in set_cookies)
    return Headers(pairs), length


def _head_lines(
    conn: Connection, status: int, set_cookies: list[str] | None, skip: frozenset[bytes] = RESPONSE_DROP
) -> tuple[list[bytes], bytes | None]:
    """The status line and end-to-end header lines, and the backend's Content-Length value if any.
    ``skip``: the lower-case names not relayed, hop-by-hop ones and ``Content-Length`` (written by the
    framing), plus those middlewares set or remove (:func:`_edit_plan`): one set test per line either way."""
    length: bytes | None = None
    tokens: frozenset[bytes] | None = None
    out = [b"HTTP/1.1 %d %s\r\n" % (status, conn.reason or HTTPStatus(status).phrase.encode())]
    append = out.append
    for name, value in conn.headers:
        ln = name.lower()
        if ln in skip:
            if ln == b"content-length":
                length = value
            elif ln == b"connection":
                tokens = frozenset(t.strip().lower() for t in value.split(b","))
            continue
        if tokens is not None and ln in tokens:
            continue
        append(name + b": " + value + b"\r\n")
    if tokens:  # a Connection header after the headers it names: drop those too
        out = [line for line in out if line.split(b":", 1)[0].lower() not in tokens]
    if set_cookies and b"set-cookie" not in skip:
        out.extend(b"Set-Cookie: " + sc.encode("latin-1") + b"\r\n" for sc in set_cookies)
    return out, length


def _edit_plan(edits: list[tuple[tuple[str, str | None], ...]]) -> tuple[frozenset[bytes], list[bytes]]:
    """(the lower-case names of the lines not to relay, with :data:`RESPONSE_DROP`; the lines to add) for
    a list of edits applied in order
    (a value replaces every line of that name, None removes them), as :class:`router.exchange.EditSink`
    does to header objects. Worked out once per distinct list."""
    key = tuple(edits)
    plan = _EDIT_PLANS.get(key)
    if plan is not None:
        return plan
    final: dict[bytes, bytes | None] = {}
    for group in edits:
        for name, value in group:
            lname = name.lower().encode("latin-1")
            final.pop(lname, None)  # a later edit of the same name goes after the earlier ones
            final[lname] = None if value is None else edit_line(name, value)
    plan = RESPONSE_DROP | frozenset(final), [line for line in final.values() if line is not None]
    _EDIT_PLANS.keep(key, plan)
    return plan


# The edits a configuration's middlewares make are few and fixed (a CSP nonce aside): their plan is worked
# out once (a lookup is the whole per-request cost).
_EDIT_PLANS = Memo(256)  # edits → (skip set, lines to add)


# (close, HTTP/1.0 client) → the head's last line(s): a lookup rather than a call, once per response.
_HEAD_END = {
    (True, False): b"Connection: close\r\n\r\n",
    (True, True): b"Connection: close\r\n\r\n",
    (False, True): b"Connection: keep-alive\r\n\r\n",  # HTTP/1.0 closes unless told otherwise
    (False, False): b"\r\n",
}


def _write_whole(
    transport: Any,
    conn: Connection,
    out: list[bytes],
    length: bytes | None,
    bodyless: bool,
    close: bool,
    http10: bool,
) -> tuple[int, bool]:
    """A response the backend has sent whole: head and body in one write. (body bytes, close)"""
    body = b"" if bodyless else conn.take_body()
    if length is not None:
        out.append(b"Content-Length: " + length + b"\r\n")
    elif not bodyless:
        out.append(b"Content-Length: %d\r\n" % len(body))
    out.append(_HEAD_END[(close, http10)])
    out.append(body)
    data = b"".join(out)
    if transport.is_closing():  # the client left while the backend answered
        return 0, True
    transport.write(data)
    return len(body), close


async def _write_streamed(
    ep: EntryPointHandler,
    request: Any,
    transport: Any,
    conn: Connection,
    up: Any,
    out: list[bytes],
    length: bytes | None,
    bodyless: bool,
    close: bool,
    http10: bool,
    body_task: asyncio.Task[None] | None,
    counted: list[int],
) -> tuple[int, bool, str | None]:
    """The head now, the body as it arrives, within writeTimeout. (body bytes, close, why it was cut);
    ``counted[0]``: the body bytes written so far, also when it raises."""
    chunk_out = False
    if length is not None:
        out.append(b"Content-Length: " + length + b"\r\n")
    elif not bodyless:
        if http10:
            close = True  # no length and no chunking in HTTP/1.0: the end is the close
        else:
            chunk_out = True
            out.append(b"Transfer-Encoding: chunked\r\n")
    out.append(_HEAD_END[(close, http10)])
    data = b"".join(out)
    try:
        if transport.is_closing():
            raise ConnectionResetError("client went away")
        transport.write(data)
        async with asyncio.timeout(ep.write_timeout):
            await _stream(transport, request.writer, conn, chunk_out, counted)
    except TimeoutError:
        conn.close()
        transport.close()
        return counted[0], True, f"response not written within writeTimeout ({ep.write_timeout}s)"
    except UpstreamError as exc:
        transport.abort()  # a reset, so that no client mistakes the cut body for a whole one
        return counted[0], True, f"{up.url}: {exc} (response truncated)"
    except ConnectionError:
        conn.close()
        return counted[0], True, "client went away during the response"
    except asyncio.CancelledError:
        abandon(conn, body_task)
        raise
    return counted[0], close, None


async def _stream(transport: Any, writer: Any, conn: Connection, chunk_out: bool, counted: list[int]) -> None:
    """Copy the response body to the client as it arrives; the client's pace throttles the backend.
    ``counted[0]`` grows with the bytes written (a cut stream keeps its count)."""
    while True:
        chunk = await conn.read()
        if not chunk:
            break
        if transport.is_closing():
            raise ConnectionResetError("client went away")
        if chunk_out:
            transport.write(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
        else:
            transport.write(chunk)
        counted[0] += len(chunk)
        if transport.get_write_buffer_size() > WRITE_HIGH:
            await writer.drain()
    if chunk_out and not transport.is_closing():
        transport.write(b"0\r\n\r\n")
