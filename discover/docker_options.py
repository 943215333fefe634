"""Middleware options given as Docker labels → typed options with Traefik's canonical names.

A label carries every value as a string (``...redirectscheme.permanent=true``) and its key in any case. A
file gives typed values, so the file parser passes a middleware's options through; labels need this
schema of the label-visible fields of each middleware type (Traefik's dynamic middleware configuration)
to turn ``"true"`` into a boolean, ``"a,b"`` into a list and ``"3"`` into an integer, and to refuse an
unknown option by name. Booleans are Go's words (:func:`discover.values.parse_bool`), option names are
matched with :func:`discover.values.find_key`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from discover.readers import ConfigError, Key
from discover.values import BOOL_WORDS, find_key, parse_bool

__all__ = ["ANY", "MIDDLEWARE_OPTIONS", "Schema", "middleware_options"]

ANY = "any"  # options passed through as given (plugins)
_S, _B, _I, _D, _L, _M, _ANY = "string", "bool", "int", "duration", "list", "map", ANY
Schema = Mapping[str, Any]

_CLIENT_TLS: Schema = {"ca": _S, "cert": _S, "key": _S, "insecureSkipVerify": _B, "caOptional": _B}
_IP_STRATEGY: Schema = {"depth": _I, "excludedIPs": _L, "ipv6Subnet": _I}
_SOURCE_CRITERION: Schema = {"ipStrategy": _IP_STRATEGY, "requestHeaderName": _S, "requestHost": _B}
_DN_ISSUER: Schema = {
    k: _B
    for k in (
        "country",
        "province",
        "locality",
        "organization",
        "commonName",
        "serialNumber",
        "domainComponent",
    )
}
_DN_SUBJECT: Schema = {**_DN_ISSUER, "organizationalUnit": _B}

MIDDLEWARE_OPTIONS: Mapping[str, Schema | str] = {
    "addPrefix": {"prefix": _S},
    "basicAuth": {"users": _L, "usersFile": _S, "realm": _S, "removeHeader": _B, "headerField": _S},
    "buffering": {
        "maxRequestBodyBytes": _I,
        "memRequestBodyBytes": _I,
        "maxResponseBodyBytes": _I,
        "memResponseBodyBytes": _I,
        "retryExpression": _S,
    },
    "chain": {"middlewares": _L},
    "circuitBreaker": {
        "expression": _S,
        "checkPeriod": _D,
        "fallbackDuration": _D,
        "recoveryDuration": _D,
        "responseCode": _I,
    },
    "compress": {
        "excludedContentTypes": _L,
        "includedContentTypes": _L,
        "minResponseBodyBytes": _I,
        "encodings": _L,
        "defaultEncoding": _S,
    },
    "contentType": {"autoDetect": _B},
    "digestAuth": {"users": _L, "usersFile": _S, "removeHeader": _B, "realm": _S, "headerField": _S},
    "errors": {"status": _L, "statusRewrites": _M, "service": _S, "query": _S, "errorRequestHeaders": _L},
    "forwardAuth": {
        "address": _S,
        "tls": _CLIENT_TLS,
        "trustForwardHeader": _B,
        "authResponseHeaders": _L,
        "authResponseHeadersRegex": _S,
        "authRequestHeaders": _L,
        "maxResponseBodySize": _I,
        "addAuthCookiesToResponse": _L,
        "headerField": _S,
        "forwardBody": _B,
        "maxBodySize": _I,
        "preserveLocationHeader": _B,
        "preserveRequestMethod": _B,
        "authSigninURL": _S,
    },
    "grpcWeb": {"allowOrigins": _L},
    "headers": {
        "customRequestHeaders": _M,
        "customResponseHeaders": _M,
        "accessControlAllowCredentials": _B,
        "accessControlAllowHeaders": _L,
        "accessControlAllowMethods": _L,
        "accessControlAllowOriginList": _L,
        "accessControlAllowOriginListRegex": _L,
        "accessControlExposeHeaders": _L,
        "accessControlMaxAge": _I,
        "addVaryHeader": _B,
        "allowedHosts": _L,
        "hostsProxyHeaders": _L,
        "sslProxyHeaders": _M,
        "stsSeconds": _I,
        "stsIncludeSubdomains": _B,
        "stsPreload": _B,
        "forceSTSHeader": _B,
        "frameDeny": _B,
        "customFrameOptionsValue": _S,
        "contentTypeNosniff": _B,
        "browserXssFilter": _B,
        "customBrowserXSSValue": _S,
        "contentSecurityPolicy": _S,
        "contentSecurityPolicyReportOnly": _S,
        "publicKey": _S,
        "referrerPolicy": _S,
        "permissionsPolicy": _S,
        "isDevelopment": _B,
        "featurePolicy": _S,
        "sslRedirect": _B,
        "sslTemporaryRedirect": _B,
        "sslHost": _S,
        "sslForceHost": _B,
    },
    "inFlightReq": {"amount": _I, "sourceCriterion": _SOURCE_CRITERION},
    "ipAllowList": {"sourceRange": _L, "ipStrategy": _IP_STRATEGY, "rejectStatusCode": _I},
    "ipWhiteList": {"sourceRange": _L, "ipStrategy": _IP_STRATEGY},
    "passTLSClientCert": {
        "pem": _B,
        "info": {
            "notAfter": _B,
            "notBefore": _B,
            "sans": _B,
            "serialNumber": _B,
            "subject": _DN_SUBJECT,
            "issuer": _DN_ISSUER,
        },
    },
    "plugin": _ANY,
    "rateLimit": {
        "average": _I,
        "period": _D,
        "burst": _I,
        "sourceCriterion": _SOURCE_CRITERION,
        "redis": {
            "endpoints": _L,
            "tls": _CLIENT_TLS,
            "username": _S,
            "password": _S,
            "db": _I,
            "poolSize": _I,
            "minIdleConns": _I,
            "maxActiveConns": _I,
            "readTimeout": _D,
            "writeTimeout": _D,
            "dialTimeout": _D,
        },
    },
    "redirectRegex": {"regex": _S, "replacement": _S, "permanent": _B},
    "redirectScheme": {"scheme": _S, "port": _S, "permanent": _B},
    "replacePath": {"path": _S},
    "replacePathRegex": {"regex": _S, "replacement": _S},
    "retry": {
        "attempts": _I,
        "timeout": _D,
        "initialInterval": _D,
        "maxRequestBodyBytes": _I,
        "status": _L,
        "disableRetryOnNetworkError": _B,
        "retryNonIdempotentMethod": _B,
    },
    "stripPrefix": {"prefixes": _L, "forceSlash": _B},
    "stripPrefixRegex": {"regex": _L},
}


_INT = re.compile(r"[+-]?\d+")


def middleware_options(value: Any, schema: Schema | str, keys: tuple[Key, ...], path: str) -> Any:
    """Label strings → typed middleware options, canonical names; unknown options raise ConfigError.

    A section given a boolean instead of sub-keys (``compress=true``, ``ipstrategy=true``: Traefik's
    ``allowEmpty``) is present and empty when true; a nested one that is false is left out. ``None`` is
    returned for that case only, and only below the middleware type itself (the caller refuses it there).
    """
    if schema == _ANY:
        return value
    if isinstance(schema, Mapping):
        return _section(value, schema, keys, path)
    if schema == _M:
        if not isinstance(value, Mapping) or any(not isinstance(v, str) for v in value.values()):
            raise ConfigError(path, "expected <name>=<value> sub-keys", keys=keys)
        return dict(value)
    if not isinstance(value, str):
        raise ConfigError(path, "expected a value, got sub-keys", keys=keys)
    if schema == _L:
        return [p.strip() for p in value.split(",") if p.strip()]
    if schema == _B:
        b = parse_bool(value)
        if b is None:
            raise ConfigError(path, f"expected {BOOL_WORDS}, got {value!r}", keys=keys)
        return b
    if schema == _I:
        if not _INT.fullmatch(value.strip()):
            raise ConfigError(path, f"expected an integer, got {value!r}", keys=keys)
        return int(value.strip())
    return value  # string, duration (parse_duration reads Go's format)


def _section(value: Any, schema: Schema, keys: tuple[Key, ...], path: str) -> dict[str, Any] | None:
    if isinstance(value, str):
        enabled = parse_bool(value)
        if enabled is None:
            raise ConfigError(path, f"expected sub-options or {BOOL_WORDS}, got {value!r}", keys=keys)
        return {} if enabled else None
    if not isinstance(value, Mapping):
        raise ConfigError(path, "expected sub-options", keys=keys)
    out: dict[str, Any] = {}
    for raw, v in value.items():
        canonical = find_key(schema, str(raw))
        if canonical is None:
            raise ConfigError(
                f"{path}.{raw}",
                f"unknown option {raw!r}; expected one of {', '.join(schema)}",
                keys=(*keys, raw),
            )
        option = middleware_options(v, schema[canonical], (*keys, raw), f"{path}.{canonical}")
        if option is not None or not isinstance(schema[canonical], Mapping):
            out[canonical] = option
    return out
