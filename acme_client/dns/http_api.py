"""What the HTTP-API providers (cloudflare, duckdns, httpreq) share: one way to call an API with a
timeout, and one way to word its refusal as a :class:`DnsError`.

Every message names the provider and the API call and says what answered (a status and the API's own
error text, or why nothing did), so one log line is enough to act on. Secrets never reach a message:
``requests``' own exception texts carry the URL (DuckDNS puts its token in the query string, an httpreq
endpoint may hold ``user:password@``), so only the host and port and the underlying cause are quoted, and
every message is scrubbed of the values the provider names secret.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

import requests

from acme_client.dns.base import DnsError

__all__ = ["DEFAULT_HTTP_TIMEOUT", "USER_AGENT", "call", "host", "refusal", "scrub"]

DEFAULT_HTTP_TIMEOUT = 30.0  # lego's default for <P>_HTTP_TIMEOUT
USER_AGENT = "dockroute"
_TAIL = 300  # characters of an answer's body quoted in an error
_CONNECTION_REPR = re.compile(r"^(<[^>]*>|\w+\([^)]*\)): ")


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every non-empty secret replaced by ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def host(url: str) -> str:
    """How a message names where ``url`` points: its host and port only. The netloc would carry the
    ``user:password@`` an endpoint may hold (lego passes it through as basic authentication)."""
    parts = urlsplit(url)
    name = parts.hostname or "?"
    if ":" in name:  # an IPv6 address, bracketed as in a URL
        name = f"[{name}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    return name if port is None else f"{name}:{port}"


def call(
    method: str,
    url: str,
    *,
    provider: str,
    api: str,
    timeout: float,
    headers: Mapping[str, str] | None = None,
    params: Mapping[str, str] | None = None,
    json: object = None,
    auth: tuple[str, str] | None = None,
    secrets: Iterable[str] = (),
) -> requests.Response:
    """One HTTP request; a timeout or a connection failure becomes a DnsError naming ``api`` and the host.

    ``api`` is how the message names the call (``GET /zones``); redirects are not followed (an API
    that redirects a write is answered as a refusal, not silently re-sent elsewhere)."""
    try:
        return requests.request(
            method,
            url,
            timeout=timeout,
            allow_redirects=False,
            headers={"User-Agent": USER_AGENT, **(headers or {})},
            params=params,
            json=json,
            auth=auth,
        )
    except requests.Timeout:
        raise DnsError(f"{provider}: {api} at {host(url)} did not answer within {timeout:g} s") from None
    except requests.RequestException as exc:
        cause = scrub(_cause(exc), secrets)
        raise DnsError(f"{provider}: {api} at {host(url)} could not be reached: {cause}") from None


def refusal(
    response: requests.Response, *, provider: str, api: str, detail: str = "", secrets: Iterable[str] = ()
) -> DnsError:
    """The DnsError for an answer the provider did not accept: its status, and ``detail`` (the API's
    own error text) or else the start of its body."""
    text = detail or " ".join(response.text.split())[:_TAIL] or "(empty body)"
    status = f"{response.status_code} {response.reason}".strip()
    return DnsError(f"{provider}: {api} answered {status}: {scrub(text, secrets)}")


def _cause(exc: requests.RequestException) -> str:
    """The underlying reason of a failed request, without the URL ``str(exc)`` would quote."""
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    if reason is None:
        return type(exc).__name__
    # urllib3's texts start with the connection's repr (<...HTTPConnection object at 0x...> or
    # HTTPConnection(host=..., port=...)): the message already names the host, keep what follows
    return _CONNECTION_REPR.sub("", str(reason), count=1)
