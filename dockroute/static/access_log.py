"""The static ``accessLog`` section: where and how (``filePath``, ``format``), and what is written
(``filters``, ``fields``, ``bufferingSize``, ``addInternals``), Traefik v3's keys and defaults.

Traefik quietly falls back to the default for a mode word it does not know (``fields.defaultMode: kep``
keeps every field); dockroute refuses it by key instead, since a typo there decides what personal data
(headers, query strings) ends up in a log file. ``otlp`` and ``dualOutput`` (OpenTelemetry export) are
accepted and reported as not acted on (the schema's ``IGNORED`` / ``WARNED``).
"""

from __future__ import annotations

from typing import Any

from discover.middlewares.resilience import status_ranges
from dockroute.static.readers import Reader
from dockroute.static.settings import AccessLogSettings, StaticConfigError
from dockroute.static.tree import get, where
from router.accesslog import (
    DROP,
    FORMATS,
    KEEP,
    REDACT,
    AccessLogFields,
    AccessLogFilters,
    AccessLogOptions,
)

__all__ = ["read_access_log"]

_FIELD_MODES = (KEEP, DROP)
_HEADER_MODES = (KEEP, DROP, REDACT)


def read_access_log(tree: Any) -> AccessLogSettings | None:
    """``accessLog``: None when absent or switched off (Traefik's access log is off by default)."""
    if not isinstance(tree, dict):
        return None
    r = Reader(tree, "accessLog")
    r.flag("dualOutput", False)  # checked as Traefik reads it; not acted on (reported by name)
    return AccessLogSettings(
        file_path=r.text("filePath"),
        format=r.text("format", "common", choices=FORMATS),
        options=AccessLogOptions(
            fields=_fields(r.sub("fields")),
            filters=_filters(r.sub("filters")) if isinstance(get(tree, "filters"), dict) else None,
            buffering_size=r.integer("bufferingSize", 0),
            add_internals=r.flag("addInternals", False),
        ),
    )


def _filters(r: Reader) -> AccessLogFilters:
    codes = tuple(item for item, _ in r.items("statusCodes"))
    try:
        status_ranges(codes)
    except ValueError as exc:
        raise StaticConfigError(f"{r.path}.statusCodes", f"{exc}{where(r.origin('statusCodes'))}") from None
    return AccessLogFilters(
        status_codes=codes,
        retry_attempts=r.flag("retryAttempts", False),
        min_duration=r.duration("minDuration", 0.0),
    )


def _modes(r: Reader, choices: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """A ``names`` map: (field or header name, mode) pairs in name order, each mode checked."""
    return tuple((name.strip(), r.text(name, choices=choices)) for name in sorted(r.tree))


def _fields(r: Reader) -> AccessLogFields:
    d = AccessLogFields()
    headers = r.sub("headers")
    return AccessLogFields(
        default_mode=r.text("defaultMode", d.default_mode, choices=_FIELD_MODES),
        names=_modes(r.sub("names"), _FIELD_MODES),
        headers_default_mode=headers.text("defaultMode", d.headers_default_mode, choices=_HEADER_MODES),
        header_names=_modes(headers.sub("names"), _HEADER_MODES),
        query_parameters_mode=r.sub("queryParameters").text(
            "defaultMode", d.query_parameters_mode, choices=_FIELD_MODES
        ),
    )
