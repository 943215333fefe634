"""Static ``accessLog``: every Traefik v3 key read into AccessLogSettings.options (filters, fields,
bufferingSize, addInternals), bad modes and status ranges refused by key, OpenTelemetry keys reported."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockroute.static import StaticConfig, StaticConfigError, load_static
from router.accesslog import AccessLogFields, AccessLogFilters, AccessLogOptions


def load(argv=(), text: str | None = None, tmp: Path | None = None) -> StaticConfig:
    if text is not None:
        assert tmp is not None
        (tmp / "dockroute.yml").write_text(text)
        return load_static(list(argv), {}, search_dirs=(str(tmp),))
    return load_static(list(argv), {}, search_dirs=())


FULL = """
accessLog:
  filePath: /var/log/access.log
  format: json
  bufferingSize: 50
  addInternals: true
  filters:
    statusCodes: ["200", "300-302"]
    retryAttempts: true
    minDuration: 10ms
  fields:
    defaultMode: drop
    names:
      ClientUsername: keep
      StartUTC: drop
    headers:
      defaultMode: keep
      names:
        User-Agent: redact
        Authorization: drop
    queryParameters:
      defaultMode: drop
"""


def test_every_key_from_a_file(tmp_path):
    al = load(text=FULL, tmp=tmp_path).access_log
    assert al is not None and (al.file_path, al.format) == ("/var/log/access.log", "json")
    assert al.options == AccessLogOptions(
        fields=AccessLogFields(
            default_mode="drop",
            names=(("ClientUsername", "keep"), ("StartUTC", "drop")),
            headers_default_mode="keep",
            header_names=(("Authorization", "drop"), ("User-Agent", "redact")),
            query_parameters_mode="drop",
        ),
        filters=AccessLogFilters(status_codes=("200", "300-302"), retry_attempts=True, min_duration=0.01),
        buffering_size=50,
        add_internals=True,
    )


def test_defaults_are_traefiks():
    al = load(["--accesslog"]).access_log
    assert al is not None and al.format == "common" and al.file_path is None
    assert al.options == AccessLogOptions()  # keep fields, drop headers, keep query; no filters
    assert al.options.filters is None
    assert load(["--accesslog.format=GENERICCLF"]).access_log.format == "genericCLF"  # type: ignore[union-attr]


def test_flags():
    al = load(
        [
            "--accesslog.filters.statuscodes=400-499,500",
            "--accesslog.fields.headers.names.X-Token=redact",
            "--accesslog.fields.queryparameters.defaultmode=DROP",
        ]
    ).access_log
    assert al is not None
    assert al.options.filters == AccessLogFilters(status_codes=("400-499", "500"))
    assert al.options.fields.header_names == (("X-Token", "redact"),)
    assert al.options.fields.query_parameters_mode == "drop"


@pytest.mark.parametrize(
    ("flag", "key"),
    [
        ("--accesslog.format=xml", "accessLog.format"),
        ("--accesslog.fields.defaultmode=redact", "accessLog.fields.defaultMode"),  # headers only
        ("--accesslog.fields.names.StartUTC=kep", "accessLog.fields.names.StartUTC"),
        ("--accesslog.fields.headers.defaultmode=hide", "accessLog.fields.headers.defaultMode"),
        (
            "--accesslog.fields.queryparameters.defaultmode=redact",
            "accessLog.fields.queryParameters.defaultMode",
        ),
        ("--accesslog.filters.statuscodes=200-abc", "accessLog.filters.statusCodes"),
        ("--accesslog.filters.minduration=soon", "accessLog.filters.minDuration"),
        ("--accesslog.bufferingsize=-1", "accessLog.bufferingSize"),
        ("--accesslog.addinternals=maybe", "accessLog.addInternals"),
    ],
)
def test_bad_values_refused_by_key(flag, key):
    with pytest.raises(StaticConfigError) as info:
        load([flag])
    assert info.value.key == key


def test_opentelemetry_keys_are_reported():
    cfg = load(["--accesslog.otlp", "--accesslog.dualoutput=true"])
    assert cfg.ignored == ("accessLog.dualOutput", "accessLog.otlp")
