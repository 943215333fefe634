"""Traefik v3's HTTP middleware options, type by type, as Traefik documents them: the reference the
completeness test holds every options dataclass to (tests/unit/test_mw_options.py). Values are the kind of
each option ("string", "bool", "int", "duration", "list", "map") or a nested section."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from discover.docker_options import MIDDLEWARE_OPTIONS

_S, _B, _I, _D, _L, _M = "string", "bool", "int", "duration", "list", "map"
Schema = Mapping[str, Any]

_CLIENT_TLS: Schema = {"ca": _S, "cert": _S, "key": _S, "insecureSkipVerify": _B, "caOptional": _B}
_IP_STRATEGY: Schema = {"depth": _I, "excludedIPs": _L, "ipv6Subnet": _I}
_SOURCE_CRITERION: Schema = {"ipStrategy": _IP_STRATEGY, "requestHeaderName": _S, "requestHost": _B}
# The types dockroute does not implement (grpcWeb, passTLSClientCert, plugin) are read with the schema of
# discover.docker_options, which lists their Traefik options already.
TRAEFIK_OPTIONS: Mapping[str, Schema | str] = {
    **MIDDLEWARE_OPTIONS,
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
    "encodedCharacters": dict.fromkeys(
        (
            "allowEncodedSlash",
            "allowEncodedBackSlash",
            "allowEncodedNullCharacter",
            "allowEncodedSemicolon",
            "allowEncodedPercent",
            "allowEncodedQuestionMark",
            "allowEncodedHash",
        ),
        _B,
    ),
}
