"""Options of the headers middlewares (``headers``, ``contentType``), declared as
:mod:`discover.middlewares.fields` says.

Every option Traefik v3 has is declared. The values end up in header lines written as they are, so names
must be HTTP tokens and values must not hold a line break (a ``\\r\\n`` in a label would let one option
write arbitrary headers); both are refused here, by name, when the configuration is read. So are custom
headers naming what the proxy itself manages per connection (``Connection``, ``Content-Length``,
``Transfer-Encoding``...): Traefik's proxy drops or overrides those, so setting one would not do what
it says.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from discover.middlewares.fields import BOOL, INT, LIST, MAP, STR, option

_TSPECIALS = frozenset('()<>@,;:\\"/[]?={} \t')

# Managed by the proxy per connection or per message: a custom header cannot set or remove them.
FRAMING = frozenset(
    {
        "connection",
        "content-length",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)

# Options removed in Traefik v3: still accepted there, and ignored. dockroute ignores them too, with a
# warning naming them and what replaces them (see router/middlewares/headers.py).
REMOVED = {
    "featurePolicy": "use permissionsPolicy (the Permissions-Policy header)",
    "sslRedirect": "use the entry point's redirection or a redirectScheme middleware",
    "sslTemporaryRedirect": "use the entry point's redirection or a redirectScheme middleware",
    "sslHost": "use a redirectRegex middleware",
    "sslForceHost": "use a redirectRegex middleware",
}


def is_token(name: str) -> bool:
    """Whether ``name`` is a valid header name (RFC 9110 token)."""
    return bool(name) and all(33 <= ord(c) < 127 and c not in _TSPECIALS for c in name)


def bad_header_value(value: str) -> bool:
    """Whether ``value`` holds a character that would end the header line (CR, LF) or NUL."""
    return "\r" in value or "\n" in value or "\0" in value


def _check_map(key: str, headers: Mapping[str, str]) -> Iterator[tuple[str, str]]:
    for name, value in headers.items():
        if not is_token(name):
            yield key, f"{name!r} is not a valid header name"
        elif name.lower() in FRAMING:
            yield key, f"{name} is managed by the proxy for each connection; it cannot be set or removed"
        elif bad_header_value(value):
            yield key, f"the value of {name} holds a line break or NUL"


@dataclass(frozen=True, slots=True)
class Headers:
    """``headers``: custom request/response headers, security headers (unrolled/secure's set, as Traefik)
    and CORS, with the preflight answered by the proxy."""

    custom_request_headers: Mapping[str, str] = option("customRequestHeaders", MAP)
    custom_response_headers: Mapping[str, str] = option("customResponseHeaders", MAP)
    access_control_allow_credentials: bool = option("accessControlAllowCredentials", BOOL, False)
    access_control_allow_headers: tuple[str, ...] = option("accessControlAllowHeaders", LIST)
    access_control_allow_methods: tuple[str, ...] = option("accessControlAllowMethods", LIST)
    access_control_allow_origin_list: tuple[str, ...] = option("accessControlAllowOriginList", LIST)
    access_control_allow_origin_list_regex: tuple[str, ...] = option(
        "accessControlAllowOriginListRegex", LIST
    )
    access_control_expose_headers: tuple[str, ...] = option("accessControlExposeHeaders", LIST)
    access_control_max_age: int | None = option("accessControlMaxAge", INT, None)
    add_vary_header: bool = option("addVaryHeader", BOOL, False)
    allowed_hosts: tuple[str, ...] = option("allowedHosts", LIST)
    hosts_proxy_headers: tuple[str, ...] = option("hostsProxyHeaders", LIST)
    ssl_proxy_headers: Mapping[str, str] = option("sslProxyHeaders", MAP)
    sts_seconds: int | None = option("stsSeconds", INT, None, minimum=0)
    sts_include_subdomains: bool = option("stsIncludeSubdomains", BOOL, False)
    sts_preload: bool = option("stsPreload", BOOL, False)
    force_sts_header: bool = option("forceSTSHeader", BOOL, False)
    frame_deny: bool = option("frameDeny", BOOL, False)
    custom_frame_options_value: str = option("customFrameOptionsValue", STR, "")
    content_type_nosniff: bool = option("contentTypeNosniff", BOOL, False)
    browser_xss_filter: bool = option("browserXssFilter", BOOL, False)
    custom_browser_xss_value: str = option("customBrowserXSSValue", STR, "")
    content_security_policy: str = option("contentSecurityPolicy", STR, "")
    content_security_policy_report_only: str = option("contentSecurityPolicyReportOnly", STR, "")
    public_key: str = option("publicKey", STR, "")
    referrer_policy: str = option("referrerPolicy", STR, "")
    permissions_policy: str = option("permissionsPolicy", STR, "")
    is_development: bool = option("isDevelopment", BOOL, False)
    # Removed in Traefik v3 (accepted, ignored): see REMOVED.
    feature_policy: str | None = option("featurePolicy", STR, None)
    ssl_redirect: bool | None = option("sslRedirect", BOOL, None)
    ssl_temporary_redirect: bool | None = option("sslTemporaryRedirect", BOOL, None)
    ssl_host: str | None = option("sslHost", STR, None)
    ssl_force_host: bool | None = option("sslForceHost", BOOL, None)

    def __post_init__(self) -> None:
        # Traefik refuses a headers middleware that sets nothing ("headers configuration not valid").
        if not (self.has_custom or self.has_cors or self.has_secure):
            raise ValueError("a headers middleware needs at least one option set (Traefik refuses it empty)")

    @property
    def has_custom(self) -> bool:
        return bool(self.custom_request_headers or self.custom_response_headers)

    @property
    def has_cors(self) -> bool:
        return bool(
            self.access_control_allow_credentials
            or self.access_control_allow_headers
            or self.access_control_allow_methods
            or self.access_control_allow_origin_list
            or self.access_control_allow_origin_list_regex
            or self.access_control_expose_headers
            or self.access_control_max_age is not None
            or self.add_vary_header
        )

    @property
    def has_secure(self) -> bool:
        return bool(
            self.allowed_hosts
            or self.hosts_proxy_headers
            or self.ssl_redirect
            or self.ssl_temporary_redirect
            or self.ssl_force_host
            or self.ssl_host
            or self.ssl_proxy_headers
            or self.sts_seconds is not None
            or self.sts_include_subdomains
            or self.sts_preload
            or self.force_sts_header
            or self.frame_deny
            or self.custom_frame_options_value
            or self.content_type_nosniff
            or self.browser_xss_filter
            or self.custom_browser_xss_value
            or self.content_security_policy
            or self.content_security_policy_report_only
            or self.public_key
            or self.referrer_policy
            or self.feature_policy
            or self.permissions_policy
            or self.is_development
        )

    def problems(self) -> Iterator[tuple[str, str]]:
        yield from _check_map("customRequestHeaders", self.custom_request_headers)
        yield from _check_map("customResponseHeaders", self.custom_response_headers)
        for name in self.ssl_proxy_headers:
            if not is_token(name):
                yield "sslProxyHeaders", f"{name!r} is not a valid header name"
        for key, names in (
            ("hostsProxyHeaders", self.hosts_proxy_headers),
            ("accessControlAllowHeaders", tuple(n for n in self.access_control_allow_headers if n != "*")),
            ("accessControlExposeHeaders", tuple(n for n in self.access_control_expose_headers if n != "*")),
            ("accessControlAllowMethods", tuple(n for n in self.access_control_allow_methods if n != "*")),
        ):
            for name in names:
                if not is_token(name):
                    yield key, f"{name!r} is not a valid header name or method"
        for key, values in (
            ("customFrameOptionsValue", (self.custom_frame_options_value,)),
            ("customBrowserXSSValue", (self.custom_browser_xss_value,)),
            ("contentSecurityPolicy", (self.content_security_policy,)),
            ("contentSecurityPolicyReportOnly", (self.content_security_policy_report_only,)),
            ("publicKey", (self.public_key,)),
            ("referrerPolicy", (self.referrer_policy,)),
            ("permissionsPolicy", (self.permissions_policy,)),
            ("accessControlAllowOriginList", self.access_control_allow_origin_list),
        ):
            if any(bad_header_value(v) for v in values):
                yield key, "the value holds a line break or NUL"


@dataclass(frozen=True, slots=True)
class ContentType:
    """``contentType``: a response the backend sent without ``Content-Type`` gets one sniffed from its
    first bytes (Go's ``http.DetectContentType``). ``autoDetect`` is deprecated in Traefik v3: ``false``
    leaves the middleware doing nothing, ``true`` is the same as not setting it."""

    auto_detect: bool | None = option("autoDetect", BOOL, None)


# Traefik's type name → its options dataclass; collected by discover.middlewares.registry.
TYPES: dict[str, type] = {"headers": Headers, "contentType": ContentType}
