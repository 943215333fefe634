"""Traefik v3 keys of entry points and logs that a Traefik file may carry: acted on (per-entry-point
observability, encodedCharacters, maxHeaderBytes, underscoreHeadersStrategy), else reported by name as not
supported."""

from __future__ import annotations

import pytest

from dockroute.static import StaticConfig, StaticConfigError, load_static
from router.accesslog import AccessLog
from router.metrics import Metrics
from router.proxy import EntryPointHandler
from router.settings import EntryPoint, PrometheusSettings


def load(argv=()) -> StaticConfig:
    return load_static(list(argv), {}, search_dirs=())


def _ep(cfg: StaticConfig, name: str) -> EntryPoint:
    return next(ep for ep in cfg.entry_points if ep.name == name)


def test_entry_point_observability_switches_are_read_per_entry_point():
    cfg = load(
        [
            "--entrypoints.web.address=:80",
            "--entrypoints.admin.address=:81",
            "--entrypoints.admin.observability.accesslogs=false",
            "--entrypoints.admin.observability.metrics=false",
        ]
    )
    assert (_ep(cfg, "web").access_logs, _ep(cfg, "web").metrics) == (True, True)
    assert (_ep(cfg, "admin").access_logs, _ep(cfg, "admin").metrics) == (False, False)
    assert not any("observability" in key for key in cfg.ignored)  # acted on: never reported


def test_an_entry_point_without_access_logs_or_metrics_observes_nothing_there(tmp_path):
    log = AccessLog(str(tmp_path / "access.log"), "common")
    metrics = Metrics(PrometheusSettings())
    quiet = EntryPointHandler(
        EntryPoint("admin", ":0", access_logs=False, metrics=False), None, log, metrics=metrics
    )  # type: ignore[arg-type]
    assert (quiet.access_log, quiet.metrics, quiet.observe) == (None, None, False)
    no_log = EntryPointHandler(EntryPoint("web", ":0", access_logs=False), None, log, metrics=metrics)  # type: ignore[arg-type]
    assert (no_log.access_log, no_log.metrics, no_log.observe) == (None, metrics, True)
    both = EntryPointHandler(EntryPoint("web", ":0"), None, log, metrics=metrics)  # type: ignore[arg-type]
    assert (both.access_log, both.metrics) == (log, metrics)


def test_entry_point_tracing_is_reported_by_name():
    cfg = load(["--entrypoints.web.address=:80", "--entrypoints.web.observability.tracing=false"])
    assert cfg.ignored == ("entryPoints.web.observability.tracing",)
    cfg = load(["--entrypoints.web.address=:80", "--entrypoints.web.observability.traceverbosity=detailed"])
    assert cfg.ignored == ("entryPoints.web.observability.traceVerbosity",)


def test_access_log_dual_output_is_a_flag_and_still_reported():
    cfg = load(["--accesslog.dualoutput"])  # a bare flag: true
    assert cfg.ignored == ("accessLog.dualOutput",)
    with pytest.raises(StaticConfigError) as info:
        load(["--accesslog.dualoutput=maybe"])
    assert info.value.key == "accessLog.dualOutput"


@pytest.mark.parametrize(
    ("flag", "key"),
    [
        (
            "--entrypoints.web.forwardedheaders.notappendxforwardedfor",
            "forwardedHeaders.notAppendXForwardedFor",
        ),
        (
            "--entrypoints.web.forwardedheaders.addxforwardedschemeheaders=true",
            "forwardedHeaders.addXForwardedSchemeHeaders",
        ),
    ],
)
def test_traefik_v3_forwarded_header_keys_load_and_are_reported(flag, key):
    cfg = load(["--entrypoints.web.address=:80", flag])
    assert cfg.ignored == (f"entryPoints.web.{key}",)


def test_log_otlp_loads_and_is_reported():
    assert load(["--log.otlp"]).ignored == ("log.otlp",)


def test_encoded_characters_are_refused_unless_allowed_key_by_key():
    """allowEncoded{Slash,BackSlash,NullCharacter,Semicolon,Hash} are false unless set (dockroute keeps
    Traefik 3.6.4's refusal of those by default), allowEncoded{Percent,QuestionMark} true unless set (as in
    Traefik 3.7); each key set says which; all acted on, none reported."""
    default = {"allowEncodedPercent", "allowEncodedQuestionMark"}
    assert _ep(load(["--entrypoints.web.address=:80"]), "web").allowed_encoded == default
    cfg = load(
        [
            "--entrypoints.web.address=:80",
            "--entrypoints.web.http.encodedcharacters.allowencodedslash=true",
            "--entrypoints.web.http.encodedcharacters.allowencodedhash",  # a bare flag: true
            "--entrypoints.web.http.encodedcharacters.allowencodednullcharacter=false",
            "--entrypoints.web.http.encodedcharacters.allowencodedpercent=false",
        ]
    )
    assert _ep(cfg, "web").allowed_encoded == {
        "allowEncodedSlash",
        "allowEncodedHash",
        "allowEncodedQuestionMark",
    }
    assert cfg.ignored == ()
    with pytest.raises(StaticConfigError) as info:
        load(
            [
                "--entrypoints.web.address=:80",
                "--entrypoints.web.http.encodedcharacters.allowencodedslash=maybe",
            ]
        )
    assert info.value.key == "entryPoints.web.http.encodedCharacters.allowEncodedSlash"


@pytest.mark.parametrize("strategy", ["keep", "delete", "reject"])
def test_underscore_headers_strategy_is_read_and_acted_on(strategy):
    """Traefik's keep / delete / reject (router.headers.underscore_guard acts on it); keep by default."""
    assert _ep(load(["--entrypoints.web.address=:80"]), "web").underscore_headers == "keep"
    cfg = load(
        ["--entrypoints.web.address=:80", f"--entrypoints.web.http.underscoreheadersstrategy={strategy}"]
    )
    assert _ep(cfg, "web").underscore_headers == strategy
    assert cfg.ignored == ()


def test_underscore_headers_strategy_other_values_are_refused():
    with pytest.raises(StaticConfigError) as info:
        load(["--entrypoints.web.address=:80", "--entrypoints.web.http.underscoreheadersstrategy=drop"])
    assert info.value.key == "entryPoints.web.http.underscoreHeadersStrategy"


def test_max_header_bytes_is_read_as_go_reads_it():
    """Go's MaxHeaderBytes: any positive size is the limit (smaller or larger than its 1 MiB default); 0 or
    less means the default."""
    for value, expected in (("8192", 8192), ("2097152", 2097152), ("0", 1 << 20), ("-1", 1 << 20)):
        cfg = load(["--entrypoints.web.address=:80", f"--entrypoints.web.http.maxheaderbytes={value}"])
        assert cfg.entry_points[0].max_header_bytes == expected, value
    assert load(["--entrypoints.web.address=:80"]).entry_points[0].max_header_bytes == 1 << 20


def test_sanitize_path_is_read_and_acted_on():
    """``http.sanitizePath`` (Traefik's, true by default) is read into the entry point, never reported as
    ignored; false keeps dot segments and duplicate slashes (router.paths)."""
    assert _ep(load(["--entrypoints.web.address=:80"]), "web").sanitize_path is True
    cfg = load(["--entrypoints.web.address=:80", "--entrypoints.web.http.sanitizepath=false"])
    assert _ep(cfg, "web").sanitize_path is False
    assert cfg.ignored == ()
