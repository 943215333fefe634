"""The zero-copy relay: Linux ``splice(2)`` moves bytes socket → pipe → socket inside the kernel.

Used when neither side is TLS (passthrough and plain TCP: the bytes are relayed untouched). Each direction
has a pipe (1 MiB where the kernel allows): readiness of the source moves what it holds into the pipe, the
pipe is drained into the destination; when the destination's buffer is full the source is no longer
watched until the destination is writable again, so a slow reader holds the writer on the other end at
the kernel's buffers, both ways. No byte is copied into Python. Half-close and ``terminationDelay`` as
:class:`router.tcp.relay.Relay`: a FIN is passed on (``shutdown(SHUT_WR)``) once the pipe is drained, and
the other direction then has the delay to finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import socket

SUPPORTED = hasattr(os, "splice")
PIPE_SIZE = 1 << 20
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
_F_GETPIPE_SZ = getattr(fcntl, "F_GETPIPE_SZ", 1032)
_FLAGS = getattr(os, "SPLICE_F_MOVE", 1) | getattr(os, "SPLICE_F_NONBLOCK", 2)


class _Direction:
    """Bytes from ``src`` to ``dst`` through one pipe."""

    __slots__ = (
        "relay",
        "src",
        "dst",
        "dst_sock",
        "r",
        "w",
        "size",
        "queued",
        "eof",
        "done",
        "reading",
        "writing",
    )

    def __init__(self, relay: SpliceRelay, src: socket.socket, dst: socket.socket) -> None:
        self.relay = relay
        self.src, self.dst, self.dst_sock = src.fileno(), dst.fileno(), dst
        self.r, self.w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            self.size = fcntl.fcntl(self.w, _F_SETPIPE_SZ, PIPE_SIZE)
        except OSError:  # refused (above pipe-max-size, or the user's pipe quota): the size it has
            self.size = fcntl.fcntl(self.w, _F_GETPIPE_SZ)
        self.queued = 0
        self.eof = False
        self.done = False
        self.reading = False
        self.writing = False

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self.reading = True
        loop.add_reader(self.src, self.on_readable)

    def on_readable(self) -> None:
        try:
            n = os.splice(self.src, self.w, self.size - self.queued, flags=_FLAGS)
        except BlockingIOError:
            return
        except OSError:
            self.relay.abort()
            return
        if n == 0:
            self.eof = True
            self._stop_reading()
        self.queued += n
        self.flush()

    def on_writable(self) -> None:
        self.flush()

    def flush(self) -> None:
        loop = self.relay.loop
        while self.queued:
            try:
                n = os.splice(self.r, self.dst, self.queued, flags=_FLAGS)
            except BlockingIOError:
                self._stop_reading()  # the destination is full: hold the source (backpressure)
                if not self.writing:
                    self.writing = True
                    loop.add_writer(self.dst, self.on_writable)
                return
            except OSError:
                self.relay.abort()
                return
            self.queued -= n
        if self.writing:
            self.writing = False
            loop.remove_writer(self.dst)
        if not self.eof:
            if not self.reading:
                self.reading = True
                loop.add_reader(self.src, self.on_readable)
        elif not self.done:
            self.done = True
            with contextlib.suppress(OSError):
                self.dst_sock.shutdown(socket.SHUT_WR)
            self.relay.half_closed()

    def _stop_reading(self) -> None:
        if self.reading:
            self.reading = False
            self.relay.loop.remove_reader(self.src)

    def close(self) -> None:
        loop = self.relay.loop
        self._stop_reading()
        if self.writing:
            self.writing = False
            loop.remove_writer(self.dst)
        os.close(self.r)
        os.close(self.w)


class SpliceRelay:
    """``client`` and ``backend`` joined with :func:`os.splice`; ``done`` is set once both are closed."""

    __slots__ = ("loop", "client", "backend", "up", "down", "termination_delay", "_timer", "done")

    def __init__(self, client: socket.socket, backend: socket.socket, termination_delay: float) -> None:
        self.loop = asyncio.get_running_loop()
        self.client, self.backend = client, backend
        self.termination_delay = termination_delay
        self._timer: asyncio.TimerHandle | None = None
        self.done: asyncio.Future[None] = self.loop.create_future()
        self.up = _Direction(self, client, backend)
        try:
            self.down = _Direction(self, backend, client)
        except OSError:
            self.up.close()
            raise

    def start(self) -> None:
        self.up.start(self.loop)
        self.down.start(self.loop)

    def half_closed(self) -> None:
        if self.up.done and self.down.done:
            self.close()
        elif self._timer is None and self.termination_delay >= 0:
            self._timer = self.loop.call_later(self.termination_delay, self.close)

    def close(self) -> None:
        if self.done.done():
            return
        if self._timer is not None:
            self._timer.cancel()
        self.up.close()
        self.down.close()
        self.client.close()
        self.backend.close()
        self.done.set_result(None)

    def abort(self) -> None:
        for sock in (self.client, self.backend):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        self.close()
