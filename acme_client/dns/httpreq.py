"""lego's ``httpreq``: an HTTP endpoint of yours writes the records, so any DNS host works without new code.

As lego: ``POST <HTTPREQ_ENDPOINT>/present`` and ``/cleanup`` with a JSON body, ``{"fqdn":
"_acme-challenge.example.com.", "value": "<TXT value>"}``, or with ``HTTPREQ_MODE=RAW`` the challenge
itself, ``{"domain": "example.com", "token": "...", "keyAuth": "..."}``; basic authentication when both
``HTTPREQ_USERNAME`` and ``HTTPREQ_PASSWORD`` are set (else the endpoint's own ``user:password@``, as
Go's client and ``requests`` both send it); any 2xx answer is success. ``/present`` and ``/cleanup`` are
joined onto the endpoint's path as lego's ``url.JoinPath`` does, keeping its query string. The endpoint's
password and query values count as secrets: messages name its host and port only. The endpoint must
accept a second present at one name beside the first (a wildcard and its apex in one order) and remove
only the value a cleanup names.
"""

from __future__ import annotations

import posixpath
from urllib.parse import SplitResult, parse_qsl, unquote, urlsplit, urlunsplit

from acme_client.dns.base import DnsConfigError, ProviderConfig, ProviderSpec, TxtRecord
from acme_client.dns.credentials import raw_mode, seconds
from acme_client.dns.http_api import DEFAULT_HTTP_TIMEOUT, call, refusal

__all__ = ["SPEC", "HttpReqProvider"]

NAME = "httpreq"


class HttpReqProvider:
    """Hands each record to the endpoint (blocking)."""

    def __init__(self, config: ProviderConfig) -> None:
        self._endpoint = _endpoint(config.get("HTTPREQ_ENDPOINT") or "")
        self._raw = raw_mode(config, "HTTPREQ_MODE")
        username = config.get("HTTPREQ_USERNAME") or ""
        password = config.get("HTTPREQ_PASSWORD") or ""
        if bool(username) != bool(password):
            # lego then sends no authentication at all, silently: refused here, naming what is missing.
            missing = "HTTPREQ_PASSWORD" if username else "HTTPREQ_USERNAME"
            raise DnsConfigError(
                f"{missing} is not set: basic authentication needs HTTPREQ_USERNAME and HTTPREQ_PASSWORD "
                "(set both, or neither for an endpoint without authentication)",
                missing,
            )
        self._auth = (username, password) if username else None
        secrets = {password, *_url_secrets(self._endpoint)} - {""}
        self._secrets = tuple(sorted(secrets, key=len, reverse=True))  # the longest first: none left half
        self._timeout = seconds(config, "HTTPREQ_HTTP_TIMEOUT", DEFAULT_HTTP_TIMEOUT)

    def present(self, record: TxtRecord) -> None:
        self._post("/present", record)

    def cleanup(self, record: TxtRecord) -> None:
        self._post("/cleanup", record)

    def _post(self, path: str, record: TxtRecord) -> None:
        if self._raw:
            body = {"domain": record.domain, "token": record.token, "keyAuth": record.key_authorization}
        else:
            body = {"fqdn": record.fqdn, "value": record.value}
        api = f"POST {path}"
        answer = call(
            "POST", _joined(self._endpoint, path), provider=NAME, api=api, timeout=self._timeout, json=body,
            auth=self._auth, headers={"Accept": "application/json"}, secrets=self._secrets,
        )  # fmt: skip
        if answer.status_code // 100 != 2:
            raise refusal(answer, provider=NAME, api=api, secrets=self._secrets)


def _endpoint(text: str) -> SplitResult:
    """``HTTPREQ_ENDPOINT`` parsed; DnsConfigError when it is not an http(s) URL with a host. The value
    itself is never quoted: it may hold a password or a token."""
    parts = urlsplit(text.strip())
    problem = None
    if parts.scheme not in ("http", "https"):
        problem = "is not an http:// or https:// URL"
    elif not parts.hostname:
        problem = "names no host"
    else:
        try:
            parts.port  # noqa: B018 - a malformed port raises here
        except ValueError:
            problem = "has a port that is not a number from 0 to 65535"
    if problem is not None:
        raise DnsConfigError(f"HTTPREQ_ENDPOINT: the URL {problem}", "HTTPREQ_ENDPOINT")
    return parts


def _url_secrets(parts: SplitResult) -> set[str]:
    """What of the endpoint must not reach a message: its password and its query values (``?key=``), as
    written and decoded. Query values under 4 characters are left: no key is that short, and scrubbing
    ``1`` or ``v2`` would garble every status code and path in a message."""
    query = [pair.partition("=")[2] for pair in parts.query.split("&")]
    query += [unquote(v) for v in query] + [v for _, v in parse_qsl(parts.query)]
    password = parts.password or ""
    return {v for v in query if len(v) >= 4} | {password, unquote(password)}


def _joined(parts: SplitResult, leaf: str) -> str:
    """lego's ``url.JoinPath``: ``leaf`` joined onto the endpoint's path (cleaned as Go's ``path.Join``
    cleans it), the query string kept."""
    path = "/" + posixpath.normpath("/" + parts.path + "/" + leaf).lstrip("/")
    return urlunsplit(parts._replace(path=path))


SPEC = ProviderSpec(
    name=NAME,
    required=(("HTTPREQ_ENDPOINT",),),
    optional=(
        "HTTPREQ_MODE",
        "HTTPREQ_USERNAME",
        "HTTPREQ_PASSWORD",
        "HTTPREQ_PROPAGATION_TIMEOUT",
        "HTTPREQ_POLLING_INTERVAL",
        "HTTPREQ_HTTP_TIMEOUT",
    ),
    prefixes=("HTTPREQ_",),
    build=HttpReqProvider,
)
