import logging

from discover.model import LoadBalancer, Middleware, Router, RouterTLS, Server, Service, merge
from router.compile import compile_config
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
