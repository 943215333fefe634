import logging
from dataclasses import replace

from discover.model import LoadBalancer, Middleware, Router, RouterTLS, Server, Service, TLSOptions, merge
from router.compile import compile_config, effective_tls
from router.proxy import RedirectTarget, ServiceTarget
from router.rules import RequestInfo
from router.settings import EntryPoint, Redirection
from tests.unit.test_model import cfg

EPS = (EntryPoint("web", ":80"), EntryPoint("admin", ":8080"))


def req(host: str, path: str = "/") -> RequestInfo:
    return RequestInfo("GET", host, path, "", {}, "127.0.0.1")


def svc(name: str) -> Service:
    return Service(name, load_balancer=LoadBalancer(servers=(Server("http://127.0.0.1:1"),)))


def test_bad_routers_are_left_out_with_a_reason_and_the_rest_is_routed(caplog):
    caplog.set_level(logging.ERROR)
    c = merge(
        {
            "file": cfg(
                routers=[
                    Router("good", "Host(`ok.test`)", "s"),
                    Router("badrule", "Host(`x.test`) && ", "s"),
                    Router("nosvc", "Host(`y.test`)", "missing"),
                    Router("mw", "Host(`z.test`)", "s", middlewares=("auth",)),
                    Router("tls", "Host(`t.test`)", "s", tls=RouterTLS()),
                ],
                services=[svc("s")],
                middlewares=[Middleware("auth", "basicAuth")],
            )
        }
    )
    compiled = compile_config(c, EPS)
    assert set(compiled.errors) == {"badrule@file", "nosvc@file", "mw@file"}
    # a TLS router answers HTTPS only, on the TLS table of its entry points
    assert compiled.tables["web"].lookup(req("t.test")) is None
    assert compiled.tls_tables["web"].lookup(req("t.test")).name == "tls@file"
    assert compiled.tls_tables["web"].lookup(req("ok.test")) is None
    assert "column" in compiled.errors["badrule@file"]
    assert "does not exist" in compiled.errors["nosvc@file"]
    assert "basicAuth" in compiled.errors["mw@file"]
    assert "router badrule@file is not routed" in caplog.text
    route = compiled.tables["web"].lookup(req("ok.test"))
    assert route is not None and isinstance(route.target, ServiceTarget)
    assert compiled.tables["web"].lookup(req("x.test")) is None


def test_an_error_is_logged_when_it_appears_or_changes_not_on_every_compile(caplog):
    """A configuration is compiled again on every provider change: a router left out is logged once while
    its error stays the same, again when the error changes, and again when it comes back after a fix."""
    caplog.set_level(logging.INFO)

    def compiled_with(rule, logged):
        routers = [Router("bad", rule, "s"), Router("ok", "Host(`ok.test`)", "s")]
        return compile_config(merge({"file": cfg(routers=routers, services=[svc("s")])}), EPS, logged=logged)

    def lines():
        return [r.getMessage() for r in caplog.records if "router bad@file is not routed" in r.getMessage()]

    first = compiled_with("Host(`x.test`) && ", frozenset())
    second = compiled_with("Host(`x.test`) && ", first.logged)
    assert len(lines()) == 1 and second.logged == first.logged
    changed = compiled_with("Host(`x.test`) || ", second.logged)
    assert len(lines()) == 2
    fixed = compiled_with("Host(`x.test`)", changed.logged)
    assert len(lines()) == 2 and "bad@file" not in fixed.errors
    compiled_with("Host(`x.test`) || ", fixed.logged)
    assert len(lines()) == 3


def test_entry_points_restrict_routers():
    c = merge(
        {
            "file": cfg(
                routers=[
                    Router("a", "Host(`a.test`)", "s", entry_points=("admin",)),
                    Router("b", "Host(`b.test`)", "s"),
                ],
                services=[svc("s")],
            )
        }
    )
    compiled = compile_config(c, EPS)
    assert compiled.tables["web"].lookup(req("a.test")) is None
    assert compiled.tables["admin"].lookup(req("a.test")) is not None
    assert compiled.tables["web"].lookup(req("b.test")) is not None  # no entryPoints: all of them
    assert compiled.tables["admin"].lookup(req("b.test")) is not None


def test_redirect_entry_point_outranks_routers_and_names_bound_port():
    eps = (
        EntryPoint("web", ":80", redirection=Redirection(to="websecure")),
        EntryPoint("websecure", ":443"),
    )
    c = merge(
        {"file": cfg(routers=[Router("a", "Host(`a.test`)", "s", priority=10**6)], services=[svc("s")])}
    )
    compiled = compile_config(c, eps)
    target = compiled.tables["web"].lookup(req("a.test")).target
    assert isinstance(target, RedirectTarget) and target.port is None and target.scheme == "https"
    compiled = compile_config(c, eps, ports={"websecure": 8443})
    assert compiled.tables["web"].lookup(req("a.test")).target.port == "8443"
    assert isinstance(compiled.tables["websecure"].lookup(req("a.test")).target, ServiceTarget)


def test_a_replaced_config_is_freed_at_once_without_the_cyclic_gc():
    """Nothing in a compiled config refers back to itself, so the previous one is freed by reference
    counting when a reload replaces it: no pile of garbage for a stop-the-world collection to scan."""
    import gc
    import weakref

    c = merge({"file": cfg(routers=[Router("r", "Host(`a.test`)", "s")], services=[svc("s")])})
    compiled = compile_config(c, EPS)
    bal = weakref.ref(compiled.balancers["s@file"])
    was = gc.isenabled()
    gc.disable()
    try:
        del compiled
        assert bal() is None
    finally:
        if was:
            gc.enable()


def test_rules_whose_text_did_not_change_are_not_parsed_again(monkeypatch):
    import router.compile as compile_module

    def build(rule_b: str):
        return merge(
            {
                "file": cfg(
                    routers=[Router("a", "Host(`a.test`)", "s"), Router("b", rule_b, "s")],
                    services=[svc("s")],
                )
            }
        )

    first = compile_config(build("Host(`b.test`)"), EPS)
    parsed: list[str] = []
    real = compile_module.parse_rule

    def counting(text, *args, **kw):
        parsed.append(text)
        return real(text, *args, **kw)

    monkeypatch.setattr(compile_module, "parse_rule", counting)
    second = compile_config(build("Host(`b2.test`)"), EPS, first.balancers, known_rules=first.rules)
    assert parsed == ["Host(`b2.test`)"]  # only the changed rule
    a1 = first.tables["web"].lookup(req("a.test"))
    a2 = second.tables["web"].lookup(req("a.test"))
    assert a1 is not None and a2 is not None and a2.rule is a1.rule
    assert second.tables["web"].lookup(req("b2.test")) is not None
    assert second.tables["web"].lookup(req("b.test")) is None
    assert set(second.rules) == {("Host(`a.test`)", "v3"), ("Host(`b2.test`)", "v3")}  # no stale entries


def test_rules_that_break_the_engine_leave_only_their_router_out(caplog, monkeypatch):
    """A non-UTF-8 regex escape, absurd nesting, or any unexpected error while compiling one rule leaves
    that router out with its reason: the build (and every other router) goes on."""
    import router.compile as compile_module

    real_parse = compile_module.parse_rule

    def parse(rule: str, syntax: str = "v3"):
        if "boom" in rule:
            raise KeyError("engine bug")
        return real_parse(rule, syntax=syntax)

    monkeypatch.setattr(compile_module, "parse_rule", parse)
    caplog.set_level(logging.ERROR)
    c = merge(
        {
            "file": cfg(
                routers=[
                    Router("good", "Host(`ok.test`)", "s"),
                    Router("bytes", 'PathRegexp("\\xff")', "s"),
                    Router("header", 'HeaderRegexp(`X`, "\\xff")', "s"),
                    Router("deep", "(" * 1000 + "Host(`a.test`)" + ")" * 1000, "s"),
                    Router("nots", "!" * 1000 + "Host(`a.test`)", "s"),
                    Router("bug", "Host(`boom.test`)", "s"),
                ],
                services=[svc("s")],
            )
        }
    )
    compiled = compile_config(c, EPS)
    assert set(compiled.errors) == {"bytes@file", "header@file", "deep@file", "nots@file", "bug@file"}
    assert "invalid UTF-8" in compiled.errors["bytes@file"]
    assert "nested more than 100 levels" in compiled.errors["deep@file"]
    assert "KeyError" in compiled.errors["bug@file"]
    assert compiled.tables["web"].lookup(req("ok.test")) is not None


# -- issue 9: entry-point TLS, missing entry points, TLS options ------------------------------------------


def _tls_eps(tls: RouterTLS) -> tuple[EntryPoint, ...]:
    return (EntryPoint("web", ":80"), EntryPoint("websecure", ":443", tls=tls))


def test_a_router_without_tls_is_https_only_on_an_entry_point_with_http_tls_and_plain_elsewhere():
    c = merge({"file": cfg(routers=[Router("a", "Host(`a.test`)", "s")], services=[svc("s")])})
    compiled = compile_config(c, _tls_eps(RouterTLS(cert_resolver="le")))
    assert compiled.tls_tables["websecure"].lookup(req("a.test")).name == "a@file"
    assert compiled.tables["websecure"].lookup(req("a.test")) is None  # no plain HTTP there
    assert compiled.tables["web"].lookup(req("a.test")).name == "a@file"  # plain HTTP where no http.tls
    assert compiled.tls_tables["web"].lookup(req("a.test")) is None
    assert compiled.entry_points == {"a@file": ("web", "websecure")}


def test_a_routers_own_tls_wins_over_its_entry_points():
    own = RouterTLS(cert_resolver="mine", options="strict")
    c = merge({"file": cfg(routers=[Router("a", "Host(`a.test`)", "s", tls=own)], services=[svc("s")])})
    router = c.routers["a@file"]
    ep = EntryPoint("websecure", ":443", tls=RouterTLS(cert_resolver="le"))
    assert effective_tls(router, ep) == RouterTLS(cert_resolver="mine", options="strict@file")
    assert effective_tls(router, EntryPoint("web", ":80")) == router.tls


def test_an_entry_points_bare_options_resolve_in_the_routers_provider_and_default_stays_default():
    r_file = Router("a@file", "Host(`a.test`)", "s@file")
    r_docker = Router("b@docker", "Host(`b.test`)", "s@file")
    ep = EntryPoint("websecure", ":443", tls=RouterTLS(options="modern"))
    assert effective_tls(r_file, ep).options == "modern@file"
    assert effective_tls(r_docker, ep).options == "modern@docker"
    assert effective_tls(r_file, EntryPoint("x", ":1", tls=RouterTLS(options="default"))).options == "default"
    qualified = EntryPoint("x", ":1", tls=RouterTLS(options="modern@file"))
    assert effective_tls(r_docker, qualified).options == "modern@file"
    assert effective_tls(r_file, EntryPoint("web", ":80")) is None


def test_a_router_whose_entry_points_all_do_not_exist_is_not_routed(caplog):
    caplog.set_level(logging.WARNING)
    c = merge(
        {
            "file": cfg(
                routers=[
                    Router("lost", "Host(`l.test`)", "s", entry_points=("nope", "gone")),
                    Router("half", "Host(`h.test`)", "s", entry_points=("nope", "web")),
                ],
                services=[svc("s")],
            )
        }
    )
    compiled = compile_config(c, EPS)
    assert set(compiled.errors) == {"lost@file"}
    assert "nope, gone" in compiled.errors["lost@file"]
    assert "router lost@file is not routed: its entry points do not exist: nope, gone" in caplog.text
    assert compiled.tables["web"].lookup(req("h.test")).name == "half@file"
    warnings = [r.getMessage() for r in caplog.records if "half@file" in r.getMessage()]
    assert warnings == ["router half@file: entry points nope do not exist; routed on the others"]
    assert compiled.entry_points == {"half@file": ("web",)}


def test_a_router_naming_undefined_tls_options_is_not_routed(caplog):
    caplog.set_level(logging.ERROR)
    c = merge(
        {
            "file": cfg(
                routers=[
                    Router("bad", "Host(`b.test`)", "s", tls=RouterTLS(options="nosuch")),
                    Router("good", "Host(`g.test`)", "s", tls=RouterTLS(options="default")),
                ],
                services=[svc("s")],
            )
        }
    )
    compiled = compile_config(c, EPS)
    assert compiled.errors == {"bad@file": "tls options nosuch@file do not exist"}
    assert "router bad@file is not routed: tls options nosuch@file do not exist" in caplog.text
    assert compiled.tls_tables["web"].lookup(req("g.test")).name == "good@file"


def test_undefined_options_on_an_entry_points_http_tls_leave_its_routers_out_there_only(caplog):
    caplog.set_level(logging.ERROR)
    c = merge({"file": cfg(routers=[Router("a", "Host(`a.test`)", "s")], services=[svc("s")])})
    compiled = compile_config(c, _tls_eps(RouterTLS(options="missing")))
    assert compiled.errors == {}
    assert compiled.tables["web"].lookup(req("a.test")).name == "a@file"
    assert compiled.tls_tables["websecure"].lookup(req("a.test")) is None
    assert "router a@file is not routed on entry points websecure: tls options missing@file" in caplog.text
    only = compile_config(c, (EntryPoint("websecure", ":443", tls=RouterTLS(options="missing")),))
    assert only.errors == {"a@file": "tls options missing@file do not exist"}


def test_tls_options_per_host_and_a_host_claimed_with_two_options_gets_the_default(caplog):
    from discover.model import TLSConfig, TLSOptions

    caplog.set_level(logging.ERROR)
    file_cfg = cfg(
        routers=[
            Router("mtls", "Host(`Secure.test`) && PathPrefix(`/`)", "s", tls=RouterTLS(options="mtls")),
            Router("plain", "Host(`open.test`)", "s", tls=RouterTLS()),
            Router("clash1", "Host(`both.test`)", "s", tls=RouterTLS(options="mtls")),
            Router("clash2", "Host(`both.test`) && Path(`/x`)", "s", tls=RouterTLS()),
            Router("http", "Host(`http.test`)", "s"),  # no tls: not an HTTPS host
            # No Host(): its options could never be chosen by SNI, so it is not routed (never reachable
            # without them either: a connection under other options is answered 421).
            Router("any", "PathPrefix(`/any`)", "s", tls=RouterTLS(options="mtls")),
        ],
        services=[svc("s")],
    )
    file_cfg = replace(file_cfg, tls=TLSConfig(options={"mtls": TLSOptions(sni_strict=True)}))
    compiled = compile_config(merge({"file": file_cfg}), EPS)
    assert compiled.errors == {
        "any@file": "tls options mtls@file are chosen by SNI, and its rule names no Host()"
    }
    expected = {"secure.test": "mtls@file", "open.test": "default", "both.test": "default"}
    assert compiled.tls_options == {"web": expected, "admin": expected}
    clash = [r.getMessage() for r in caplog.records if "both.test" in r.getMessage()]
    assert len(clash) == 2  # one line per entry point, naming the host and both routers
    assert "routers clash1@file, clash2@file" in clash[0]


def test_tls_options_are_per_entry_point():
    eps = (EntryPoint("web", ":80"), EntryPoint("websecure", ":443", tls=RouterTLS(options="default")))
    c = merge({"file": cfg(routers=[Router("a", "Host(`a.test`)", "s")], services=[svc("s")])})
    compiled = compile_config(c, eps)
    assert compiled.tls_options == {"web": {}, "websecure": {"a.test": "default"}}


def test_a_router_with_its_own_tls_is_told_what_of_its_entry_points_tls_it_loses(caplog):
    """Traefik's model: a router with tls of its own (a `tls=true` label) gets nothing of the entry
    point's http.tls; that is said once per compile when it drops a resolver or options."""
    caplog.set_level(logging.WARNING)
    eps = (EntryPoint("websecure", ":443", tls=RouterTLS(cert_resolver="le", options="mtls")),)
    c = merge(
        {
            "file": cfg(
                routers=[
                    Router("own", "Host(`own.test`)", "s", tls=RouterTLS()),
                    Router("model", "Host(`model.test`)", "s"),
                ],
                services=[svc("s")],
            )
        }
    )
    c = replace(c, tls=replace(c.tls, options={"mtls@file": TLSOptions()}))
    compile_config(c, eps)
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "router own@file has a tls of its own: entry point websecure's http.tls (certResolver le, "
        "options mtls) does not apply to it"
    ]


def test_an_entry_points_options_resolve_like_a_routers_default_at_any_provider_included():
    ep = EntryPoint("websecure", ":443", tls=RouterTLS(options="default@file"))
    router = Router("a@docker", "Host(`a.test`)", "s")
    assert effective_tls(router, ep).options == "default"
    assert effective_tls(router, replace(ep, tls=RouterTLS(options="mtls"))).options == "mtls@docker"
    assert effective_tls(router, replace(ep, tls=RouterTLS(options="mtls@file"))).options == "mtls@file"


def test_routers_naming_no_entry_point_are_never_on_traefik_and_follow_as_default():
    """As Traefik: a router naming no entry point is on every entry point but ``traefik`` (the API's,
    ping's and metrics' admin port), or only on those marked ``asDefault`` when any is."""
    c = merge({"file": cfg(routers=[Router("app", "Host(`a.test`)", "s")], services=[svc("s")])})
    eps = (EntryPoint("web", ":80"), EntryPoint("websecure", ":443"), EntryPoint("traefik", ":8080"))
    assert compile_config(c, eps).entry_points["app@file"] == ("web", "websecure")
    marked = (EntryPoint("web", ":80"), EntryPoint("websecure", ":443", as_default=True), eps[2])
    assert compile_config(c, marked).entry_points["app@file"] == ("websecure",)
    only_admin = compile_config(c, (eps[2],))
    assert "app@file" not in only_admin.entry_points and "no default one" in only_admin.errors["app@file"]
    named = merge(
        {"file": cfg(routers=[Router("a", "Host(`a.test`)", "s", ("traefik",))], services=[svc("s")])}
    )
    assert compile_config(named, eps).entry_points["a@file"] == ("traefik",)  # named: served there


def test_services_and_middlewares_that_cannot_be_built_are_named_with_why():
    """For the API: a service left out (a weighted cycle, a missing serversTransport) and a middleware its
    module refuses (a regex RE2 cannot compile) are kept with the reason, besides the routers they fail."""
    from discover.parse import parse_dynamic_with_warnings

    lb = {"loadBalancer": {"servers": [{"url": "http://b"}]}}
    doc = {
        "http": {
            "routers": {"r": {"rule": "Host(`a.test`)", "service": "s", "middlewares": ["bad"]}},
            "services": {
                "s": lb,
                "c1": {"weighted": {"services": [{"name": "c2"}]}},
                "c2": {"weighted": {"services": [{"name": "c1"}]}},
                "t": {"loadBalancer": {"servers": [{"url": "http://b"}], "serversTransport": "no"}},
            },
            "middlewares": {"bad": {"replacePathRegex": {"regex": "(", "replacement": "/"}}},
        }
    }
    compiled = compile_config(merge({"file": parse_dynamic_with_warnings(doc)[0]}), EPS)
    assert "cycle" in compiled.service_errors["c2@file"] and "c2@file" in compiled.service_errors["c1@file"]
    assert compiled.service_errors["t@file"] == "serversTransport no@file does not exist"
    assert compiled.middleware_errors["bad@file"].startswith("option regex: ")
    assert "r@file" in compiled.errors and "s@file" not in compiled.service_errors


def test_a_users_router_may_not_outrank_dockroutes_own():
    """As Traefik's maxUserPriority: the top 1000 priorities are dockroute's (ACME challenge, ping, API,
    redirections); a user's router above them is left out naming the limit."""
    from router.compile import MAX_USER_PRIORITY

    routers = [Router("top", "Host(`a.test`)", "s", priority=MAX_USER_PRIORITY + 1)]
    routers.append(Router("ok", "Host(`b.test`)", "s", priority=MAX_USER_PRIORITY))
    compiled = compile_config(merge({"file": cfg(routers=routers, services=[svc("s")])}), EPS)
    assert "exceeds the maximum" in compiled.errors["top@file"] and "ok@file" not in compiled.errors
