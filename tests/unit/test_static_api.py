"""Static ``api``, ``ping`` and ``metrics``: every key read (file, flags, variables), Traefik's defaults, the
``traefik`` entry point created when they need it, and what is refused or reported by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockroute.static import StaticConfig, StaticConfigError, load_static
from router.settings import ApiSettings, PingSettings, PrometheusSettings


def load(argv=(), env=None, text: str | None = None, tmp: Path | None = None) -> StaticConfig:
    if text is not None:
        assert tmp is not None
        (tmp / "dockroute.yml").write_text(text)
        return load_static(list(argv), env or {}, search_dirs=(str(tmp),))
    return load_static(list(argv), env or {}, search_dirs=())


def error(*args, **kw) -> StaticConfigError:
    with pytest.raises(StaticConfigError) as info:
        load(*args, **kw)
    assert "\n" not in str(info.value)
    return info.value


def eps(cfg: StaticConfig) -> dict[str, str]:
    return {e.name: e.address for e in cfg.entry_points}


# -- absent = off ---------------------------------------------------------------------------------------


def test_sections_absent_or_switched_off_are_none():
    for cfg in (load(), load(["--api=false", "--ping=false", "--metrics.prometheus=false"])):
        assert (cfg.api, cfg.ping, cfg.metrics) == (None, None, None)
        assert eps(cfg) == {"web": ":80"} and cfg.ignored == ()


def test_bare_switches_give_traefiks_defaults():
    cfg = load(["--api", "--ping", "--metrics.prometheus"])
    assert cfg.api == ApiSettings(dashboard=True, insecure=False, debug=False, base_path="/")
    assert cfg.ping == PingSettings(entry_point="traefik", manual_routing=False, terminating_status_code=503)
    assert cfg.metrics == PrometheusSettings(
        buckets=(0.1, 0.3, 1.2, 5.0),
        add_entry_points_labels=True,
        add_routers_labels=False,
        add_services_labels=True,
        entry_point="traefik",
        manual_routing=False,
        header_labels=(),
    )
    assert cfg.ignored == ()


# -- every key, from a file -----------------------------------------------------------------------------

FULL = """
entryPoints:
  web: {address: ":80"}
  admin: {address: "127.0.0.1:9000"}
api:
  dashboard: false
  insecure: true
  basePath: /proxy/
  disableDashboardAd: true
ping:
  entryPoint: admin
  manualRouting: false
  terminatingStatusCode: 204
metrics:
  prometheus:
    buckets: [0.05, 0.5, 2]
    addEntryPointsLabels: false
    addRoutersLabels: true
    addServicesLabels: false
    entryPoint: ADMIN
    manualRouting: false
    headerLabels:
      useragent: User-Agent
      tenant: X-Tenant
"""


def test_every_key_from_a_file(tmp_path):
    cfg = load(text=FULL, tmp=tmp_path)
    assert cfg.api == ApiSettings(dashboard=False, insecure=True, debug=False, base_path="/proxy/")
    assert cfg.ping == PingSettings(entry_point="admin", manual_routing=False, terminating_status_code=204)
    assert cfg.metrics == PrometheusSettings(
        buckets=(0.05, 0.5, 2.0),
        add_entry_points_labels=False,
        add_routers_labels=True,
        add_services_labels=False,
        entry_point="admin",  # spelled as the entry point is
        manual_routing=False,
        header_labels=(("tenant", "X-Tenant"), ("useragent", "User-Agent")),
    )
    # api.insecure wants `traefik`: created on :8080 next to the user's entry points
    assert eps(cfg) == {"web": ":80", "admin": "127.0.0.1:9000", "traefik": ":8080"}
    assert cfg.ignored == ()


def test_every_key_from_flags_and_variables():
    flags = [
        "--entrypoints.ops.address=:9100",
        "--ping.entrypoint=ops",
        "--ping.manualrouting=true",
        "--ping.terminatingstatuscode=500",
        "--metrics.prometheus.buckets=0.1,1,10",
        "--metrics.prometheus.addrouterslabels",
        "--metrics.prometheus.headerlabels.tenant=X-Tenant",
    ]
    env = {
        "DOCKROUTE_API_INSECURE": "false",
        "DOCKROUTE_API_DASHBOARD": "false",
        "TRAEFIK_API_BASEPATH": "/x",
        "DOCKROUTE_METRICS_PROMETHEUS_ENTRYPOINT": "ops",
        "DOCKROUTE_METRICS_PROMETHEUS_MANUALROUTING": "true",
        "DOCKROUTE_METRICS_PROMETHEUS_ADDSERVICESLABELS": "0",
        "DOCKROUTE_METRICS_PROMETHEUS_ADDENTRYPOINTSLABELS": "f",
    }
    cfg = load(flags, env)
    assert cfg.api == ApiSettings(dashboard=False, insecure=False, base_path="/x")
    assert cfg.ping == PingSettings(entry_point="ops", manual_routing=True, terminating_status_code=500)
    assert cfg.metrics == PrometheusSettings(
        buckets=(0.1, 1.0, 10.0),
        add_entry_points_labels=False,
        add_routers_labels=True,
        add_services_labels=False,
        entry_point="ops",
        manual_routing=True,
        header_labels=(("tenant", "X-Tenant"),),
    )
    # nothing routed on `traefik`: it is not created
    assert eps(cfg) == {"ops": ":9100"}


def test_indexed_buckets():
    cfg = load(["--metrics.prometheus.buckets[0]=0.2", "--metrics.prometheus.buckets[1]=3"])
    assert cfg.metrics is not None and cfg.metrics.buckets == (0.2, 3.0)


# -- the traefik entry point (Traefik's SetEffectiveConfiguration) ---------------------------------------


@pytest.mark.parametrize(
    "flags",
    [
        ["--api.insecure"],
        ["--ping"],
        ["--metrics.prometheus"],
        ["--ping.entrypoint=Traefik"],
    ],
)
def test_traefik_entry_point_created_when_needed(flags):
    assert eps(load(flags)) == {"web": ":80", "traefik": ":8080"}


@pytest.mark.parametrize(
    "flags",
    [
        ["--api"],  # not insecure: only a user's router reaches the API
        ["--api.insecure=false", "--api.dashboard"],
        ["--ping.manualrouting"],
        ["--metrics.prometheus.manualrouting"],
        ["--entrypoints.web.address=:80", "--ping.entrypoint=web"],
    ],
)
def test_traefik_entry_point_not_created_otherwise(flags):
    assert "traefik" not in eps(load(flags))


def test_user_defined_traefik_entry_point_is_kept():
    cfg = load(["--entrypoints.traefik.address=127.0.0.1:0", "--api.insecure", "--ping"])
    assert eps(cfg) == {"traefik": "127.0.0.1:0"}  # a user entry point: no embedded `web` either


def test_ping_on_another_entry_point_is_routed_there():
    cfg = load(["--entrypoints.web.address=:81", "--ping.entrypoint=WEB"])
    assert cfg.ping is not None and cfg.ping.entry_point == "web"


# -- refusals, by name ----------------------------------------------------------------------------------


def test_unknown_entry_point_is_refused_by_name():
    e = error(["--entrypoints.web.address=:80", "--ping.entrypoint=admin"])
    assert e.key == "ping.entryPoint" and "'admin'" in str(e) and "web" in str(e)
    e = error(["--entrypoints.web.address=:80", "--metrics.prometheus.entrypoint=nope"])
    assert e.key == "metrics.prometheus.entryPoint" and "'nope'" in str(e)
    # with manualRouting the entry point is not used, as in Traefik
    assert load(["--ping.entrypoint=admin", "--ping.manualrouting"]).ping is not None


def test_switched_off_traefik_entry_point_is_refused():
    e = error(["--entrypoints.web.address=:80", "--entrypoints.traefik=false", "--api.insecure"])
    assert e.key == "api" and "'traefik'" in str(e) and "switched off" in str(e)


@pytest.mark.parametrize(
    ("flag", "key"),
    [
        ("--api.basepath=api", "api.basePath"),
        ("--api.basepath=/a b", "api.basePath"),
        ("--api.insecure=maybe", "api.insecure"),
        ("--api.dashboard=2", "api.dashboard"),
        ("--api.disabledashboardad=x", "api.disableDashboardAd"),
        ("--ping.terminatingstatuscode=99", "ping.terminatingStatusCode"),
        ("--ping.terminatingstatuscode=600", "ping.terminatingStatusCode"),
        ("--ping.terminatingstatuscode=abc", "ping.terminatingStatusCode"),
        ("--ping.manualrouting=yes", "ping.manualRouting"),
        ("--metrics.prometheus.buckets=1,0.5", "metrics.prometheus.buckets[1]"),
        ("--metrics.prometheus.buckets=0.1,x", "metrics.prometheus.buckets[1]"),
        ("--metrics.prometheus.buckets=inf", "metrics.prometheus.buckets[0]"),
        ("--metrics.prometheus.addrouterslabels=2", "metrics.prometheus.addRoutersLabels"),
        ("--api.dashbord=true", "api.dashbord"),
        ("--metrics.influxdb.address=x", "metrics.influxdb"),
    ],
)
def test_bad_values_are_refused_by_key(flag, key):
    assert error([flag]).key == key


def test_yaml_bucket_list_must_be_numbers(tmp_path):
    e = error(text="metrics:\n  prometheus:\n    buckets: [0.1, true]\n", tmp=tmp_path)
    assert e.key == "metrics.prometheus.buckets[1]"


# -- accepted but not acted on: each named in the start-up warnings ------------------------------------


def test_not_acted_on_keys_are_reported_by_name(tmp_path):
    text = (
        "api: {debug: true, dashboardName: mine}\n"
        "metrics:\n"
        "  addInternals: true\n"
        "  prometheus: {}\n"
        "  datadog: {address: 'localhost:8125'}\n"
        "  statsD: {}\n"
        "  influxDB2: {}\n"
        "  otlp: {http: {}}\n"
    )
    cfg = load(text=text, tmp=tmp_path)
    assert set(cfg.ignored) == {
        "api.dashboardName",
        "metrics.datadog",
        "metrics.statsD",
        "metrics.influxDB2",
        "metrics.otlp",
    }
    assert cfg.api is not None and cfg.metrics is not None
    assert cfg.metrics_add_internals is True  # metrics.addInternals is acted on (router.metrics)
    # only another backend: no Prometheus, and the backend is named
    cfg = load(["--metrics.datadog"])
    assert cfg.metrics is None and cfg.ignored == ("metrics.datadog",)
    # api.debug (/debug/vars) and disableDashboardAd (no ad in dockroute's dashboard) are not reported
    cfg = load(["--api.debug", "--api.disabledashboardad"])
    assert cfg.ignored == () and cfg.api is not None and cfg.api.debug is True
