"""Docker containers + labels → the dynamic model, with Traefik's Docker provider semantics."""

from types import MappingProxyType

import pytest

from discover import docker_labels
from discover.docker_labels import (
    RuleTemplate,
    TemplateError,
    build_docker_config,
    compile_constraints,
    implicit_name,
    normalize,
)
from discover.docker_model import ContainerInfo, DockerSettings, PortBinding
from discover.model import Domain, HealthCheck, RouterTLS, Server, StickyCookie
from discover.parse import parse_dynamic

S = DockerSettings()
T = "traefik.http."


def box(name="app", labels=None, *, ports=(80,), networks=None, **kw):
    """A running container on one network with the given exposed TCP ports."""
    return ContainerInfo(
        id=kw.pop("id", f"{name}-id"),
        name=name,
        labels=labels or {},
        ports=tuple(p if isinstance(p, PortBinding) else PortBinding(p) for p in ports),
        networks={"net": "10.0.0.2"} if networks is None else networks,
        **kw,
    )


def build(*containers, settings=S, own=frozenset()):
    return build_docker_config(list(containers), settings, own)


def only(mapping):
    assert len(mapping) == 1, dict(mapping)
    return next(iter(mapping.values()))


# -- Traefik's documented label examples ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("labels", "check"),
    [
        (
            {T + "routers.my-container.rule": "Host(`example.com`)"},
            lambda cfg: (
                cfg.routers["my-container"].rule == "Host(`example.com`)"
                and cfg.routers["my-container"].service == "app"
            ),
        ),
        (
            {T + "routers.r.entrypoints": "web,websecure"},
            lambda cfg: cfg.routers["r"].entry_points == ("web", "websecure"),
        ),
        (
            {T + "routers.r.middlewares": "auth,prefix@file"},
            lambda cfg: cfg.routers["r"].middlewares == ("auth", "prefix@file"),
        ),
        ({T + "routers.r.priority": "42"}, lambda cfg: cfg.routers["r"].priority == 42),
        ({T + "routers.r.tls": "true"}, lambda cfg: cfg.routers["r"].tls == RouterTLS()),
        (
            {T + "routers.r.tls.certresolver": "myresolver", T + "routers.r.tls.options": "foobar"},
            lambda cfg: cfg.routers["r"].tls == RouterTLS(cert_resolver="myresolver", options="foobar"),
        ),
        (
            {
                T + "routers.r.tls.domains[0].main": "example.org",
                T + "routers.r.tls.domains[0].sans": "test.example.org,dev.example.org",
                T + "routers.r.tls.domains[1].main": "example.com",
            },
            lambda cfg: (
                cfg.routers["r"].tls.domains
                == (Domain("example.org", ("test.example.org", "dev.example.org")), Domain("example.com"))
            ),
        ),
        ({T + "routers.r.rulesyntax": "v2"}, lambda cfg: cfg.routers["r"].rule_syntax == "v2"),
        (
            {T + "services.svc.loadbalancer.server.port": "8080"},
            lambda cfg: cfg.services["svc"].load_balancer.servers == (Server("http://10.0.0.2:8080"),),
        ),
        (
            {T + "services.svc.loadbalancer.server.scheme": "https"},
            lambda cfg: cfg.services["svc"].load_balancer.servers == (Server("https://10.0.0.2:80"),),
        ),
        (
            {T + "services.svc.loadbalancer.server.weight": "3"},
            lambda cfg: cfg.services["svc"].load_balancer.servers == (Server("http://10.0.0.2:80", 3),),
        ),
        (
            {T + "services.svc.loadbalancer.server.url": "http://elsewhere:9000"},
            lambda cfg: cfg.services["svc"].load_balancer.servers == (Server("http://elsewhere:9000"),),
        ),
        (
            {T + "services.svc.loadbalancer.passhostheader": "false"},
            lambda cfg: cfg.services["svc"].load_balancer.pass_host_header is False,
        ),
        (
            {
                T + "services.svc.loadbalancer.healthcheck.path": "/health",
                T + "services.svc.loadbalancer.healthcheck.interval": "10s",
                T + "services.svc.loadbalancer.healthcheck.headers.X-Foo": "bar",
            },
            lambda cfg: (
                cfg.services["svc"].load_balancer.health_check
                == HealthCheck(path="/health", interval=10.0, headers={"X-Foo": "bar"})
            ),
        ),
        (
            {T + "services.svc.loadbalancer.sticky.cookie": "true"},
            lambda cfg: cfg.services["svc"].load_balancer.sticky == StickyCookie(),
        ),
        (
            {
                T + "services.svc.loadbalancer.sticky.cookie.name": "foobar",
                T + "services.svc.loadbalancer.sticky.cookie.secure": "true",
                T + "services.svc.loadbalancer.sticky.cookie.samesite": "lax",
            },
            lambda cfg: (
                cfg.services["svc"].load_balancer.sticky
                == StickyCookie(name="foobar", secure=True, same_site="lax")
            ),
        ),
        (
            {T + "services.svc.loadbalancer.serverstransport": "mytransport@file"},
            lambda cfg: cfg.services["svc"].load_balancer.servers_transport == "mytransport@file",
        ),
        # keys are case-insensitive, and the first spelling names the router
        (
            {T + "Routers.App.Rule": "Path(`/`)", T + "routers.app.EntryPoints": "web"},
            lambda cfg: (
                cfg.routers["App"].rule == "Path(`/`)" and cfg.routers["App"].entry_points == ("web",)
            ),
        ),
    ],
)
def test_documented_labels(labels, check):
    cfg, records = build(box(labels=labels))
    assert records["app"].routed, records
    assert check(cfg), cfg


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        (
            {
                T + "middlewares.https.redirectscheme.scheme": "https",
                T + "middlewares.https.redirectscheme.permanent": "true",
            },
            ("https", "redirectScheme", {"scheme": "https", "permanent": True}),
        ),
        (
            {T + "middlewares.strip.stripprefix.prefixes": "/foo,/bar"},
            ("strip", "stripPrefix", {"prefixes": ["/foo", "/bar"]}),
        ),
        (
            {T + "middlewares.auth.basicauth.users": "test:$apr1$H6uskkkW$IgXLP6ewTrSuBkTrqE8wj/,test2:x"},
            ("auth", "basicAuth", {"users": ["test:$apr1$H6uskkkW$IgXLP6ewTrSuBkTrqE8wj/", "test2:x"]}),
        ),
        (
            {
                T + "middlewares.h.headers.customrequestheaders.X-Script-Name": "test",
                T + "middlewares.h.headers.framedeny": "true",
                T + "middlewares.h.headers.stsseconds": "31536000",
            },
            (
                "h",
                "headers",
                {
                    "customRequestHeaders": {"X-Script-Name": "test"},
                    "frameDeny": True,
                    "stsSeconds": 31536000,
                },
            ),
        ),
        (
            {
                T + "middlewares.rl.ratelimit.average": "100",
                T + "middlewares.rl.ratelimit.period": "1m",
                T + "middlewares.rl.ratelimit.sourcecriterion.ipstrategy.depth": "2",
            },
            (
                "rl",
                "rateLimit",
                {"average": 100, "period": "1m", "sourceCriterion": {"ipStrategy": {"depth": 2}}},
            ),
        ),
        ({T + "middlewares.gz.compress": "true"}, ("gz", "compress", {})),
        (
            {T + "middlewares.p.plugin.example.headers.Foo": "Bar"},
            ("p", "plugin", {"example": {"headers": {"Foo": "Bar"}}}),
        ),
    ],
)
def test_middleware_labels_become_middlewares(labels, expected):
    """Labels give exactly what the same middleware written in a file gives (one typed reader)."""
    name, mtype, options = expected
    cfg, records = build(box(labels=labels))
    assert records["app"].routed
    mw = cfg.middlewares[name]
    assert mw == parse_dynamic({"http": {"middlewares": {name: {mtype: options}}}}).middlewares[name]
    assert not mw.error
    if mtype == "plugin":  # not implemented: kept as given, read-only
        assert isinstance(mw.options, MappingProxyType)


# -- names and the default rule --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "labels", "expected"),
    [
        ("app", {}, "app"),
        ("my_app.1", {}, "my-app-1"),
        (
            "blog-web-1",
            {"com.docker.compose.project": "blog", "com.docker.compose.service": "web"},
            "web-blog",
        ),
        (
            "x",
            {"com.docker.compose.project": "my.proj", "com.docker.compose.service": "api_v2"},
            "api-v2-my-proj",
        ),
        ("only-project", {"com.docker.compose.project": "blog"}, "only-project"),
        ("_lead_", {}, "lead"),
    ],
)
def test_implicit_name(name, labels, expected):
    assert implicit_name(box(name, labels)) == expected
    cfg, _ = build(box(name, labels))
    assert set(cfg.routers) == {expected}
    assert set(cfg.services) == {expected}


def test_normalize_is_traefiks():
    assert normalize("a__b--c..d") == "a-b-c-d"
    assert normalize("Été_2") == "Été-2"


COMPOSE = {"com.docker.compose.project": "blog", "com.docker.compose.service": "web", "host": "Example_Site"}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("Host(`{{ normalize .Name }}`)", "Host(`web-blog`)"),
        ("Host(`{{ .Name }}.example.com`)", "Host(`web-blog.example.com`)"),
        ("Host(`{{ .ContainerName }}`)", "Host(`blog-web-1`)"),
        ('Host(`{{ index .Labels "com.docker.compose.service" }}.local`)', "Host(`web.local`)"),
        ('Host(`{{ normalize (index .Labels "host") }}`)', "Host(`Example-Site`)"),
        ('Host(`{{ index .Labels "missing" }}`)', "Host(``)"),
        ("Host(`{{ .Name | normalize }}`)", "Host(`web-blog`)"),
        ("Host(`{{- .Name -}}  `)", "Host(`web-blog`)"),
        ("PathPrefix(`/api`)", "PathPrefix(`/api`)"),
    ],
)
def test_default_rule_template(template, expected):
    cfg, records = build(box("blog-web-1", COMPOSE), settings=DockerSettings(default_rule=template))
    assert records["blog-web-1"].routed
    assert cfg.routers["web-blog"].rule == expected


@pytest.mark.parametrize(
    "template",
    [
        "Host(`{{ upper .Name }}`)",
        "{{ if .Name }}x{{ end }}",
        "Host(`{{ .Nope }}`)",
        "Host(`{{ .Labels }}`)",
        "Host(`{{ .Name ",
        "Host(`{{ index .Labels }}`)",
    ],
)
def test_unsupported_default_rule_leaves_only_that_router_out(template):
    """Traefik drops the router needing the template and keeps the container's service."""
    cfg, records = build(
        box("a"),
        box("b", {T + "routers.b.rule": "Host(`b`)"}),
        settings=DockerSettings(default_rule=template),
    )
    assert "a" not in cfg.routers and "a" in cfg.services
    assert "router a: default rule" in records["a"].reasons[0]
    assert records["a"].reason == "error"
    # a container with its own rule does not need the template
    assert records["b"].routed and set(cfg.routers) == {"b"}


def test_template_evaluator_directly():
    t = RuleTemplate('a{{ normalize (index .Labels "k") }}b')
    assert t.render("n", "c", {"k": "x.y"}) == "ax-yb"
    with pytest.raises(TemplateError):
        RuleTemplate("{{ printf .Name }}")


def test_template_strings_are_go_string_literals():
    """One Go string-literal decoder for rules, constraints and templates: every Go escape works."""
    t = RuleTemplate('{{ index .Labels "a\\x2eb\\u00e9" }}|{{ index .Labels `raw\\n` }}')
    assert t.render("n", "c", {"a.bé": "one", "raw\\n": "two"}) == "one|two"
    with pytest.raises(TemplateError, match="escape"):
        RuleTemplate('{{ index .Labels "\\q" }}')


def test_router_with_label_but_no_rule_gets_the_default_rule():
    cfg, _ = build(box("api", {T + "routers.api.entrypoints": "web"}))
    assert cfg.routers["api"].rule == "Host(`api`)"


def test_empty_default_rule_leaves_the_router_out():
    cfg, records = build(box("a"), settings=DockerSettings(default_rule='{{ index .Labels "none" }}'))
    assert cfg.routers == {}
    assert "default rule is empty" in records["a"].reasons[0]


# -- services and routers defaulting --------------------------------------------------------------------


def test_single_service_label_binds_the_routers():
    cfg, _ = build(
        box("app", {T + "routers.r.rule": "Host(`a`)", T + "services.svc.loadbalancer.server.port": "81"})
    )
    assert cfg.routers["r"].service == "svc"
    assert set(cfg.services) == {"svc"}


def test_no_router_label_and_one_service_label_gives_the_implicit_router():
    cfg, _ = build(box("app", {T + "services.svc.loadbalancer.server.port": "81"}))
    assert set(cfg.routers) == {"app"} and cfg.routers["app"].service == "svc"


def test_several_services_and_a_router_without_service():
    labels = {
        T + "services.one.loadbalancer.server.port": "81",
        T + "services.two.loadbalancer.server.port": "82",
        T + "routers.bound.rule": "Host(`b`)",
        T + "routers.bound.service": "two",
        T + "routers.lost.rule": "Host(`l`)",
    }
    cfg, records = build(box("app", labels))
    assert set(cfg.routers) == {"bound"}
    assert set(cfg.services) == {"one", "two"}
    assert cfg.services["one"].load_balancer.servers == (Server("http://10.0.0.2:81"),)
    assert cfg.services["two"].load_balancer.servers == (Server("http://10.0.0.2:82"),)
    assert records["app"].routed
    assert any("router lost" in r and "several services" in r for r in records["app"].reasons)


def test_several_services_and_no_router():
    labels = {
        T + "services.one.loadbalancer.server.port": "81",
        T + "services.two.loadbalancer.server.port": "82",
    }
    cfg, records = build(box("app", labels))
    assert cfg.routers == {}
    assert set(cfg.services) == {"one", "two"}
    assert "no router" in records["app"].reasons[0]


def test_router_pointing_at_a_missing_service_is_warned():
    _, records = build(box("app", {T + "routers.r.service": "nope"}))
    assert any("'nope' is not defined" in w for w in records["app"].warnings)


# -- ports ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ports", "labels", "url", "warning"),
    [
        ((8080,), {}, "http://10.0.0.2:8080", None),
        ((8080, PortBinding(53, "udp")), {}, "http://10.0.0.2:8080", None),
        ((9000, 443, 8080), {}, "http://10.0.0.2:443", "using the lowest, 443"),
        ((9000, 443), {T + "services.app.loadbalancer.server.port": "9000"}, "http://10.0.0.2:9000", None),
        ((), {T + "services.app.loadbalancer.server.port": "3000"}, "http://10.0.0.2:3000", None),
    ],
)
def test_port_selection(ports, labels, url, warning):
    cfg, records = build(box("app", labels, ports=ports))
    assert cfg.services["app"].load_balancer.servers == (Server(url),)
    if warning is None:
        assert records["app"].warnings == ()
    else:
        assert len(records["app"].warnings) == 1 and warning in records["app"].warnings[0]
        assert "443, 8080, 9000" in records["app"].warnings[0]


def test_no_port_leaves_the_container_out():
    cfg, records = build(box("app", ports=(PortBinding(53, "udp"),)))
    assert cfg.services == {} and cfg.routers == {}
    assert not records["app"].routed
    assert "no exposed TCP port" in records["app"].reasons[0]


# -- networks -------------------------------------------------------------------------------------------

NETS = {"front": "10.1.0.5", "back": "10.2.0.5", "alpha": "10.3.0.5"}


@pytest.mark.parametrize(
    ("networks", "labels", "settings", "own", "ip", "warning"),
    [
        ({"only": "10.9.0.1"}, {}, S, frozenset(), "10.9.0.1", None),
        (NETS, {"traefik.docker.network": "back"}, S, frozenset(), "10.2.0.5", None),
        (NETS, {}, DockerSettings(network="front"), frozenset(), "10.1.0.5", None),
        (
            NETS,
            {"traefik.docker.network": "back"},
            DockerSettings(network="front"),
            frozenset(),
            "10.2.0.5",
            None,
        ),
        (NETS, {}, S, frozenset({"front", "back"}), "10.2.0.5", None),
        (NETS, {}, S, frozenset({"other"}), "10.3.0.5", "none shared with dockroute; using 'alpha'"),
        (NETS, {"traefik.docker.network": "nope"}, S, frozenset({"front"}), "10.1.0.5", "'nope'"),
        (
            {"blog_default": "10.5.0.1"},
            {"traefik.docker.network": "default", "com.docker.compose.project": "blog"},
            S,
            frozenset(),
            "10.5.0.1",
            "blog_default?",
        ),
    ],
)
def test_network_selection(networks, labels, settings, own, ip, warning):
    cfg, records = build(box("app", labels, networks=networks), settings=settings, own=own)
    assert cfg.services["app"].load_balancer.servers == (Server(f"http://{ip}:80"),)
    if warning is None:
        assert records["app"].warnings == ()
    else:
        assert any(warning in w for w in records["app"].warnings), records["app"].warnings


def test_host_network_mode_uses_the_host_address():
    c = box("app", networks={}, network_mode="host", ports=(8080,))
    cfg, _ = build(c, settings=DockerSettings(host_address="192.168.1.10"))
    assert cfg.services["app"].load_balancer.servers == (Server("http://192.168.1.10:8080"),)


@pytest.mark.parametrize("ref", ["vpn-id-full", "vpn-id", "vpn"])
def test_container_network_mode_follows_the_target(ref):
    target = box(
        "vpn",
        id="vpn-id-full",
        networks={"a": "10.7.0.1", "b": "10.8.0.1"},
        labels={"traefik.docker.network": "b"},
    )
    app = box("app", networks={}, network_mode=f"container:{ref}", ports=(8080,))
    cfg, records = build(app, target)
    assert cfg.services["app"].load_balancer.servers == (Server("http://10.8.0.1:8080"),)
    assert records["app"].routed


def test_container_network_mode_with_a_missing_target():
    cfg, records = build(box("app", networks={}, network_mode="container:gone"))
    assert "app" not in cfg.services
    assert "not running" in records["app"].reasons[0]


def test_no_network_leaves_the_container_out():
    cfg, records = build(box("app", networks={}, network_mode="none"))
    assert cfg.services == {}
    assert "no IP address" in records["app"].reasons[0]


@pytest.mark.parametrize(
    ("binding", "url", "warning"),
    [
        (PortBinding(80, "tcp", "192.168.1.20", 8000), "http://192.168.1.20:8000", None),
        # on all of the host's addresses: the container's address and port, as Traefik's getIPPort
        (PortBinding(80, "tcp", "0.0.0.0", 8000), "http://10.0.0.2:80", "not published on a specific"),
        (PortBinding(80, "tcp", "::", 8000), "http://10.0.0.2:80", "not published on a specific"),
        (PortBinding(80, "tcp"), "http://10.0.0.2:80", "not published"),
    ],
)
def test_use_bind_port_ip(binding, url, warning):
    settings = DockerSettings(use_bind_port_ip=True, host_address="172.17.0.1")
    cfg, records = build(box("app", ports=(binding,)), settings=settings)
    assert cfg.services["app"].load_balancer.servers == (Server(url),)
    assert bool(records["app"].warnings) == (warning is not None)
    if warning:
        assert warning in records["app"].warnings[0]


# -- health, state, enable, constraints ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("health", "state", "routed", "reason"),
    [
        (None, "running", True, None),
        ("healthy", "running", True, None),
        ("starting", "running", False, "health: starting"),
        ("unhealthy", "running", False, "health: unhealthy"),
        (None, "paused", False, "state: paused"),
    ],
)
def test_health_and_state(health, state, routed, reason):
    cfg, records = build(box("app", health=health, state=state))
    assert records["app"].routed is routed
    assert bool(cfg.routers) is routed and bool(cfg.services) is routed
    if reason:
        assert records["app"].reasons == (reason,) or records["app"].reasons[0].startswith(reason)


def test_allow_empty_services_keeps_the_service_without_servers():
    settings = DockerSettings(allow_empty_services=True)
    cfg, records = build(box("app", health="unhealthy"), settings=settings)
    assert cfg.routers["app"].service == "app"
    assert cfg.services["app"].load_balancer.servers == ()
    assert not records["app"].routed
    assert "allowEmptyServices" in records["app"].reasons[0]


def test_allow_empty_services_with_a_healthy_replica():
    settings = DockerSettings(allow_empty_services=True)
    labels = {"com.docker.compose.project": "p", "com.docker.compose.service": "s"}
    cfg, records = build(
        box("p-s-1", labels, health="healthy"),
        box("p-s-2", labels, health="starting", networks={"net": "10.0.0.3"}),
        settings=settings,
    )
    assert cfg.services["s-p"].load_balancer.servers == (Server("http://10.0.0.2:80"),)
    assert records["p-s-1"].routed and not records["p-s-2"].routed


@pytest.mark.parametrize(
    ("exposed", "labels", "routed"),
    [
        (True, {}, True),
        (True, {"traefik.enable": "false"}, False),
        (False, {}, False),
        (False, {"traefik.enable": "true"}, True),
        (False, {"traefik.enable": "TRUE"}, True),
        (False, {"dockroute.enable": "true"}, True),
        (True, {"traefik.enable": "true", "dockroute.enable": "false"}, False),
    ],
)
def test_enable_and_exposed_by_default(exposed, labels, routed):
    cfg, records = build(box("app", labels), settings=DockerSettings(exposed_by_default=exposed))
    assert records["app"].routed is routed
    assert bool(cfg.routers) is routed
    if not routed:
        assert records["app"].reasons[0].startswith("not enabled")


@pytest.mark.parametrize("value", ["yes", "on", "tRUE", "2", ""])
def test_bad_enable_value(value):
    _, records = build(box("app", {"traefik.enable": value}))
    assert not records["app"].routed
    assert records["app"].reasons == (
        f"label traefik.enable: expected true or false (also 1, t, T, TRUE, True, 0, f, F, FALSE, False), "
        f"got {value!r}",
    )


# -- booleans: Go's strconv.ParseBool words, as Traefik reads every label ----------------------------------

TRUE_WORDS = ("1", "t", "T", "TRUE", "true", "True", " true ")
FALSE_WORDS = ("0", "f", "F", "FALSE", "false", "False")


@pytest.mark.parametrize(
    ("word", "value"), [(w, True) for w in TRUE_WORDS] + [(w, False) for w in FALSE_WORDS]
)
def test_enable_takes_gos_boolean_words(word, value):
    cfg, records = build(
        box("app", {"traefik.enable": word}), settings=DockerSettings(exposed_by_default=not value)
    )
    assert records["app"].routed is value
    assert bool(cfg.routers) is value


@pytest.mark.parametrize(
    ("word", "value"), [(w, True) for w in TRUE_WORDS] + [(w, False) for w in FALSE_WORDS]
)
def test_boolean_labels_take_gos_words(word, value):
    svc = T + "services.app.loadbalancer."
    labels = {
        svc + "passhostheader": word,
        svc + "healthcheck.followredirects": word,
        svc + "sticky.cookie.secure": word,
        T + "routers.app.tls": word,
        T + "middlewares.h.headers.framedeny": word,
        T + "middlewares.h.headers.customresponseheaders.X-A": "1",  # never an empty headers middleware
        T + "routers.app.middlewares": "h",
    }
    cfg, records = build(box("app", labels))
    assert records["app"].routed, records["app"].reasons
    lb = cfg.services["app"].load_balancer
    assert lb.pass_host_header is value
    assert lb.health_check.follow_redirects is value
    assert lb.sticky.secure is value
    assert (cfg.routers["app"].tls is not None) is value
    assert cfg.middlewares["h"].options.frame_deny is value


@pytest.mark.parametrize("word", ["T", "1", "True"])
def test_passhostheader_T_routes(word):
    """The issue's case: ``passhostheader=T`` used to leave the container unrouted."""
    cfg, records = build(box("app", {T + "services.app.loadbalancer.passhostheader": word}))
    assert records["app"].routed and records["app"].reasons == ()
    assert cfg.services["app"].load_balancer.pass_host_header is True
    assert cfg.routers["app"].service == "app"


@pytest.mark.parametrize(("word", "present"), [("1", True), ("T", True), ("0", False), ("F", False)])
def test_sections_switched_on_or_off_by_a_boolean(word, present):
    svc = T + "services.app.loadbalancer."
    cfg, records = build(box("app", {svc + "healthcheck": word, svc + "sticky": word}))
    assert records["app"].routed
    lb = cfg.services["app"].load_balancer
    assert (lb.health_check == HealthCheck()) if present else lb.health_check is None
    assert lb.sticky is None  # sticky without cookie is not sticky, either way
    cfg, _ = build(box("app", {svc + "sticky.cookie": word}))
    assert (cfg.services["app"].load_balancer.sticky == StickyCookie()) is present


def test_a_true_word_may_carry_sub_keys_too():
    svc = T + "services.app.loadbalancer."
    cfg, records = build(box("app", {svc + "healthcheck": "T", svc + "healthcheck.path": "/up"}))
    assert records["app"].routed
    assert cfg.services["app"].load_balancer.health_check == HealthCheck(path="/up")


def test_middleware_sections_switched_by_a_boolean():
    cfg, records = build(
        box(
            "app",
            {
                T + "middlewares.gz.compress": "1",
                T + "middlewares.rl.ratelimit.average": "5",
                T + "middlewares.rl.ratelimit.sourcecriterion.ipstrategy": "F",
            },
        )
    )
    assert records["app"].routed
    file = parse_dynamic(
        {
            "http": {
                "middlewares": {
                    "gz": {"compress": {}},
                    "rl": {"rateLimit": {"average": 5, "sourceCriterion": {}}},
                }
            }
        }
    )
    assert cfg.middlewares["gz"] == file.middlewares["gz"]
    assert cfg.middlewares["rl"] == file.middlewares["rl"]
    _, records = build(box("app", {T + "middlewares.gz.compress": "0"}))
    assert not records["app"].routed
    assert (
        "label traefik.http.middlewares.gz.compress: false leaves the middleware" in records["app"].reasons[0]
    )


@pytest.mark.parametrize(
    ("key", "word"),
    [
        ("services.app.loadbalancer.passhostheader", "yes"),
        ("services.app.loadbalancer.healthcheck", "on"),
        ("middlewares.h.headers.framedeny", "tRUE"),
        ("middlewares.gz.compress", "yes"),
    ],
)
def test_a_non_boolean_label_names_the_label_and_the_accepted_words(key, word):
    _, records = build(box("app", {T + key: word}))
    assert not records["app"].routed
    (reason,) = records["app"].reasons
    assert reason.startswith(f"label {T + key}: expected ")
    assert "true or false (also 1, t, T, TRUE, True, 0, f, F, FALSE, False)" in reason
    assert repr(word) in reason


def test_serverstransport_label_is_a_reference_and_a_missing_bare_one_is_reported():
    svc = T + "services.app.loadbalancer.serverstransport"
    cfg, records = build(box("app", {svc: "tls@file"}))
    assert cfg.services["app"].load_balancer.servers_transport == "tls@file"
    assert records["app"].routed and records["app"].warnings == ()
    assert cfg.servers_transports == {}  # labels cannot define transports, only reference them
    cfg, records = build(box("app", {svc: "tls"}))
    assert cfg.services["app"].load_balancer.servers_transport == "tls"
    assert any("serversTransport 'tls' is not defined" in w for w in records["app"].warnings)
    label = T + "serverstransports.tls.insecureskipverify"
    _, records = build(box("app", {label: "true"}))
    assert not records["app"].routed
    assert records["app"].reasons[0].startswith(f"label {label}: a serversTransport cannot be defined with")


@pytest.mark.parametrize(
    ("expr", "routed"),
    [
        ("Label(`team`, `a`)", {"a1"}),
        ("!Label(`team`, `a`)", {"b1", "none"}),
        ("LabelRegex(`team`, `^[ab]$`)", {"a1", "b1"}),
        ("Label(`team`, `a`) || Label(`team`, `b`)", {"a1", "b1"}),
    ],
)
def test_constraints_filter_containers(expr, routed):
    cs = [box("a1", {"team": "a"}), box("b1", {"team": "b"}), box("none")]
    cfg, records = build(*cs, settings=DockerSettings(constraints=expr))
    assert {n for n, r in records.items() if r.routed} == routed
    assert set(cfg.routers) == routed
    for n in {"a1", "b1", "none"} - routed:
        assert "constraints" in records[n].reasons[0]


def test_bad_constraints_leave_everything_out_with_the_column():
    cfg, records = build(box("a"), settings=DockerSettings(constraints="Label(`a`"))
    assert cfg.routers == {}
    assert "column" in records["a"].reasons[0]


def test_precompiled_constraints_are_used_as_given_and_not_parsed_again(monkeypatch):
    settings = DockerSettings(constraints="Label(`team`, `a`)")
    cs = [box("a1", {"team": "a"}), box("b1", {"team": "b"}), box("off", {"traefik.enable": "false"})]
    expected = build(*cs, settings=settings)
    assert set(expected[0].routers) == {"a1"}
    compiled = compile_constraints(settings.constraints)
    calls = []
    monkeypatch.setattr(docker_labels, "parse_constraints", calls.append)
    assert build_docker_config(cs, settings, frozenset(), compiled) == expected
    assert calls == []


def test_compiled_bad_constraints_keep_the_message_of_the_parser():
    bad = compile_constraints("Label(`a`")
    assert bad.matcher is None and bad.error.startswith("constraints: column ")
    _, records = build_docker_config([box("a")], DockerSettings(constraints="Label(`a`"), frozenset(), bad)
    assert records["a"].reasons == (bad.error,)
    assert compile_constraints(None) == compile_constraints("") == docker_labels.Constraints()


# -- merging containers ----------------------------------------------------------------------------------

WEB = {"com.docker.compose.project": "blog", "com.docker.compose.service": "web"}


def test_compose_replicas_merge_into_one_service():
    cfg, records = build(
        box("blog-web-2", WEB, networks={"net": "10.0.0.3"}),
        box("blog-web-1", WEB),
    )
    assert set(cfg.routers) == {"web-blog"}
    assert cfg.services["web-blog"].load_balancer.servers == (
        Server("http://10.0.0.2:80"),
        Server("http://10.0.0.3:80"),
    )
    assert records["blog-web-1"].routed and records["blog-web-2"].routed
    assert records["blog-web-1"].reasons == records["blog-web-2"].reasons == ()


def test_same_container_name_service_from_several_containers():
    labels = {T + "services.shared.loadbalancer.server.port": "80", T + "routers.r.rule": "Host(`x`)"}
    cfg, _ = build(box("a", labels), box("b", labels, networks={"net": "10.0.0.9"}))
    assert len(cfg.services["shared"].load_balancer.servers) == 2
    assert set(cfg.routers) == {"r"}


# -- bad labels ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("labels", "reason"),
    [
        (
            {T + "services.bad.loadbalancer.server.port": "eighty"},
            "label traefik.http.services.bad.loadbalancer.server.port: "
            "expected a port number (1-65535), got 'eighty'",
        ),
        (
            {T + "middlewares.m.stripprefix.prefixs": "/a"},
            "label traefik.http.middlewares.m.stripprefix.prefixs: unknown key 'prefixs'",
        ),
        ({T + "routers.bad.foo": "x"}, "label traefik.http.routers.bad.foo: unknown key 'foo'"),
        (
            {T + "routers.bad.priority": "high"},
            "label traefik.http.routers.bad.priority: expected an integer",
        ),
        (
            {T + "middlewares.m.nosuch.x": "1"},
            "label traefik.http.middlewares.m.nosuch.x: unknown middleware type",
        ),
        (
            {T + "middlewares.m.headers.framedeny": "maybe"},
            "label traefik.http.middlewares.m.headers.framedeny: expected true or false",
        ),
        (
            {T + "services.bad.loadbalancer.healthcheck.interval": "often"},
            "label traefik.http.services.bad.loadbalancer.healthcheck.interval: invalid duration",
        ),
        (
            {
                T + "services.bad.loadbalancer.server.url": "http://x",
                T + "services.bad.loadbalancer.server.port": "80",
            },
            "not allowed when url is defined",
        ),
        ({"traefik.docker.netwrk": "x"}, "label traefik.docker.netwrk: unknown key"),
        (
            {T + "routers.r.tls.domains[0].main": "a", T + "routers.r.tls.domains.x": "b"},
            "mixes list indexes",
        ),
    ],
)
def test_bad_labels_leave_only_that_container_out(labels, reason):
    cfg, records = build(box("bad", labels), box("good", networks={"net": "10.0.0.7"}))
    assert not records["bad"].routed
    assert len(records["bad"].reasons) == 1
    assert reason in records["bad"].reasons[0], records["bad"].reasons
    assert records["good"].routed
    assert set(cfg.routers) == {"good"}
    assert set(cfg.services) == {"good"}


def test_tcp_and_udp_labels_are_read_beside_http_ones():  # more: tests/unit/test_docker_l4.py
    cfg, records = build(
        box(
            "app",
            {
                "traefik.tcp.routers.t.rule": "HostSNI(`*`)",
                "traefik.udp.services.u.loadbalancer.server.port": "53",
                T + "routers.web.entrypoints": "web",
            },
        )
    )
    assert set(cfg.routers) == {"web"} and set(cfg.tcp.routers) == {"t"} and set(cfg.udp.services) == {"u"}
    assert not any("not supported" in w for w in records["app"].warnings)


def test_a_tcp_only_container_gets_no_http_router():
    cfg, records = build(box("app", {"traefik.tcp.routers.t.rule": "HostSNI(`*`)"}))
    assert cfg.routers == {} and cfg.services == {}
    assert cfg.tcp.routers["t"].service == "app" and records["app"].routed


def test_labels_without_a_prefix_are_ignored():
    cfg, records = build(
        box("app", {"foo.http.routers.x.rule": "Host(`x`)", "traefikhttp.routers.y.rule": "y"})
    )
    assert set(cfg.routers) == {"app"}
    assert records["app"].warnings == ()


# -- dockroute. prefix ---------------------------------------------------------------------------------


def test_dockroute_prefix_wins_on_conflict():
    labels = {
        T + "routers.r.rule": "Host(`traefik`)",
        "dockroute.http.routers.r.rule": "Host(`dockroute`)",
        T + "routers.r.entrypoints": "web",
        "dockroute.http.routers.r.priority": "5",
        "traefik.docker.network": "a",
        "dockroute.docker.network": "b",
    }
    cfg, _ = build(box("app", labels, networks={"a": "10.0.0.1", "b": "10.0.0.2"}))
    r = cfg.routers["r"]
    assert (r.rule, r.entry_points, r.priority) == ("Host(`dockroute`)", ("web",), 5)
    assert cfg.services["app"].load_balancer.servers == (Server("http://10.0.0.2:80"),)


def test_dockroute_prefix_errors_name_the_dockroute_label():
    _, records = build(box("app", {"dockroute.http.routers.r.bogus": "1"}))
    assert records["app"].reasons[0].startswith("label dockroute.http.routers.r.bogus:")


def test_records_for_every_container():
    cs = [box("a"), box("b", {"traefik.enable": "false"}), box("c", state="exited")]
    _, records = build(*cs)
    assert set(records) == {"a", "b", "c"}
    assert [records[n].routed for n in "abc"] == [True, False, False]
    assert records["c"].reasons == ("state: exited (not running)",)


def test_a_bug_on_one_containers_labels_leaves_only_that_container_out(monkeypatch):
    real = docker_labels._build

    def build_one(c, *args, **kw):
        if c.name == "broken":
            raise KeyError("unexpected")
        return real(c, *args, **kw)

    monkeypatch.setattr(docker_labels, "_build", build_one)
    cfg, records = build(box("app"), box("broken", id="broken-id"))
    assert records["app"].routed and not records["broken"].routed
    assert any("KeyError" in r for r in records["broken"].reasons), records["broken"]
    assert set(cfg.routers) == {"app"}
