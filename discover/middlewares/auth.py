"""Options of the auth middlewares (``basicAuth``, ``digestAuth``, ``forwardAuth``), declared as
:mod:`discover.middlewares.fields` says.

Only what can be checked without files or the network is checked here (an address that is not a URL, a
limit below -1); the router's modules read ``usersFile``, check every hash scheme and load TLS material
when the configuration is compiled, and refuse a middleware they cannot build by option name.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

from discover.middlewares.fields import BOOL, INT, LIST, SECTION, STR, check, option

__all__ = ["BasicAuth", "DigestAuth", "ForwardAuth", "ForwardAuthTLS", "TYPES"]


def _no_controls(value: str, name: str) -> Iterator[tuple[str, str]]:
    """CR, LF or NUL in a value sent in a response header (``WWW-Authenticate``, ``Location``) would split
    or end the header: refused by name rather than sent."""
    yield from check(
        not any(c in value for c in "\r\n\0"), name, "must not contain CR, LF or NUL (it goes into a header)"
    )


@dataclass(frozen=True, slots=True)
class BasicAuth:
    """``basicAuth``: htpasswd lines (``user:hash``) from ``users`` and ``usersFile``; ``users`` wins for a
    name in both, as in Traefik."""

    users: tuple[str, ...] = option("users", LIST)
    users_file: str = option("usersFile", STR, "")
    realm: str = option("realm", STR, "traefik")
    remove_header: bool = option("removeHeader", BOOL, False)
    header_field: str = option("headerField", STR, "")

    def problems(self) -> Iterator[tuple[str, str]]:
        yield from check(bool(self.users or self.users_file), "users", "no users: set users or usersFile")
        yield from check('"' not in self.realm, "realm", "must not contain '\"'")
        yield from _no_controls(self.realm, "realm")


@dataclass(frozen=True, slots=True)
class DigestAuth(BasicAuth):
    """``digestAuth``: ``user:realm:HA1`` lines (htdigest form) from ``users`` and ``usersFile``; the same
    options and checks as ``basicAuth`` (a distinct type: the two never compare equal)."""


@dataclass(frozen=True, slots=True)
class ForwardAuthTLS:
    """``forwardAuth.tls``: how the proxy connects to an https auth server (file paths or PEM text)."""

    ca: str = option("ca", STR, "")
    cert: str = option("cert", STR, "")
    key: str = option("key", STR, "")
    insecure_skip_verify: bool = option("insecureSkipVerify", BOOL, False)
    ca_optional: bool | None = option("caOptional", BOOL, None)

    def problems(self) -> Iterator[tuple[str, str]]:
        yield from check(bool(self.cert) == bool(self.key), "cert", "cert and key go together")


@dataclass(frozen=True, slots=True)
class ForwardAuth:
    """``forwardAuth``: every request is first asked of ``address``; a 2xx lets it through."""

    address: str = option("address", STR, "")
    tls: ForwardAuthTLS | None = option("tls", SECTION, section=ForwardAuthTLS)
    # None (not set) is Traefik's legacy behaviour, different from an explicit false
    trust_forward_header: bool | None = option("trustForwardHeader", BOOL, None)
    auth_response_headers: tuple[str, ...] = option("authResponseHeaders", LIST)
    auth_response_headers_regex: str = option("authResponseHeadersRegex", STR, "")
    auth_request_headers: tuple[str, ...] = option("authRequestHeaders", LIST)
    max_response_body_size: int = option("maxResponseBodySize", INT, -1, minimum=-1)
    add_auth_cookies_to_response: tuple[str, ...] = option("addAuthCookiesToResponse", LIST)
    header_field: str = option("headerField", STR, "")
    forward_body: bool = option("forwardBody", BOOL, False)
    max_body_size: int = option("maxBodySize", INT, -1, minimum=-1)
    preserve_location_header: bool = option("preserveLocationHeader", BOOL, False)
    preserve_request_method: bool = option("preserveRequestMethod", BOOL, False)
    auth_signin_url: str = option("authSigninURL", STR, "")

    def problems(self) -> Iterator[tuple[str, str]]:
        yield from _no_controls(self.auth_signin_url, "authSigninURL")
        if not self.address:
            yield "address", "required: the auth server's URL"
            return
        try:
            parts = urlsplit(self.address)
            ok = parts.scheme in ("http", "https") and bool(parts.hostname)
        except ValueError:
            ok = False
        yield from check(
            ok,
            "address",
            f"must be an http:// or https:// URL, got {self.address!r}",
        )


# Traefik's type name → its options dataclass; collected by discover.middlewares.registry.
TYPES: dict[str, type] = {"basicAuth": BasicAuth, "digestAuth": DigestAuth, "forwardAuth": ForwardAuth}
