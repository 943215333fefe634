"""HTTP to a port the engine published on this machine, as the e2e tests need it."""

from __future__ import annotations

import aiohttp


async def get(port: int, host: str = "localhost", path: str = "/") -> tuple[int, str] | None:
    """One request to 127.0.0.1:``port`` with ``host`` as Host: (status, body), or None while nothing
    answers yet (the engine's port forwarder accepts connections before the proxy listens behind it)."""
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as s,
            s.get(f"http://127.0.0.1:{port}{path}", headers={"Host": host}) as r,
        ):
            return r.status, await r.text()
    except (TimeoutError, aiohttp.ClientError):
        return None
