import collections
import hashlib
import logging

from discover.model import (
    HealthCheck,
    LoadBalancer,
    Server,
    Service,
    StickyCookie,
    Weighted,
    WeightedRef,
)
from router.balancer import (
    ServiceBalancer,
    WeightedBalancer,
    build_balancers,
    cookie_name,
    default_cookie_name,
)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def lb(*urls: str, weights=None, sticky=None, health_check=None) -> LoadBalancer:
    weights = weights or [1] * len(urls)
    return LoadBalancer(
        servers=tuple(Server(u, w) for u, w in zip(urls, weights, strict=True)),
        sticky=sticky,
        health_check=health_check,
    )


def names(bal, n, **kw):
    return [bal.pick(**kw).url[-1] for _ in range(n)]


def svc_lb(name, *urls, **kw):
    return Service(name, load_balancer=lb(*urls, **kw))


def svc_w(name, *refs, sticky=None):
    return Service(name, weighted=Weighted(services=tuple(WeightedRef(n, w) for n, w in refs), sticky=sticky))


# -- weighted round robin ------------------------------------------------------------------------------


def test_equal_weights_round_robin_in_order():
    bal = ServiceBalancer("s", lb("http://h:1", "http://h:2", "http://h:3"))
    assert names(bal, 30) == ["1", "2", "3"] * 10


def test_weights_are_respected_and_smooth():
    bal = ServiceBalancer("s", lb("http://h:1", "http://h:2", weights=[3, 1]))
    picks = "".join(names(bal, 40))
    assert collections.Counter(picks) == {"1": 30, "2": 10}
    # smooth: the light server comes once in every four picks, never bunched, never a long heavy run
    assert all(picks[i : i + 4].count("2") == 1 for i in range(0, 40, 4))
    assert "1111" not in picks


def test_smooth_wrr_matches_nginx_sequence():
    # nginx's documented example: weights 5, 1, 1 give a a b a c a a
    bal = ServiceBalancer("s", lb("http://a", "http://b", "http://c", weights=[5, 1, 1]))
    assert "".join(names(bal, 14)) == "aabacaa" * 2


def test_weight_zero_is_never_picked():
    bal = ServiceBalancer("s", lb("http://h:1", "http://h:2", weights=[1, 0]))
    assert set(names(bal, 10)) == {"1"}
    assert ServiceBalancer("s", lb("http://h:1", "http://h:2", weights=[0, 0])).pick() is None
    assert ServiceBalancer("s", lb("http://h:1", weights=[0])).pick() is None


def test_exclude_skips_servers():
    bal = ServiceBalancer("s", lb("http://h:1", "http://h:2", "http://h:3"))
    first = bal.servers[0]
    assert {bal.pick(exclude={first}).url for _ in range(6)} == {"http://h:2", "http://h:3"}
    assert bal.pick(exclude=set(bal.servers)) is None
    single = ServiceBalancer("s", lb("http://h:1"))
    assert single.pick(exclude={single.servers[0]}) is None


def test_no_servers_gives_none():
    assert ServiceBalancer("s", lb()).pick() is None


# -- passive and active health -------------------------------------------------------------------------


def test_passive_health_takes_server_out_then_back(caplog):
    clock = Clock()
    bal = ServiceBalancer("s", lb("http://h:1", "http://h:2"), passive_cooldown=10, clock=clock)
    with caplog.at_level(logging.WARNING, logger="dockroute.balancer"):
        bal.mark_failed(bal.servers[0])
        bal.mark_failed(bal.servers[0])  # still down: no second line
    assert [r.getMessage() for r in caplog.records] == [
        "service s: server http://h:1 failed to connect; out for 10s"
    ]
    assert set(names(bal, 6)) == {"2"}
    clock.now += 9.5
    assert set(names(bal, 6)) == {"2"}
    clock.now += 1
    assert set(names(bal, 6)) == {"1", "2"}


def test_mark_ok_brings_server_back_at_once():
    clock = Clock()
    bal = ServiceBalancer("s", lb("http://h:1", "http://h:2"), clock=clock)
    bal.mark_failed(bal.servers[0])
    bal.mark_ok(bal.servers[0])
    assert set(names(bal, 4)) == {"1", "2"}
    bal.mark_ok(bal.servers[1])  # already fine: nothing changes
    assert bal.servers[1].down_until == 0.0


def test_all_passively_down_tries_earliest_recovery_instead_of_failing():
    clock = Clock()
    bal = ServiceBalancer("s", lb("http://h:1", "http://h:2"), passive_cooldown=10, clock=clock)
    bal.mark_failed(bal.servers[1])
    clock.now += 1
    bal.mark_failed(bal.servers[0])
    assert bal.pick().url == "http://h:2"
    # a retry that already tried h:2 gets h:1, and then nothing
    assert bal.pick(exclude={bal.servers[1]}).url == "http://h:1"
    assert bal.pick(exclude=set(bal.servers)) is None


def test_single_passively_down_server_is_still_tried():
    clock = Clock()
    bal = ServiceBalancer("s", lb("http://h:1"), clock=clock)
    bal.mark_failed(bal.servers[0])
    assert bal.pick() is bal.servers[0]


def test_unhealthy_servers_are_skipped_and_none_when_all_unhealthy():
    clock = Clock()
    bal = ServiceBalancer("s", lb("http://h:1", "http://h:2", "http://h:3"), clock=clock)
    bal.servers[0].healthy = False
    assert set(names(bal, 4)) == {"2", "3"}
    bal.mark_failed(bal.servers[1])
    bal.mark_failed(bal.servers[2])
    # passively down servers are the fallback; an unhealthy one never is
    assert {bal.pick().url for _ in range(4)} <= {"http://h:2", "http://h:3"}
    bal.servers[1].healthy = False
    bal.servers[2].healthy = False
    assert bal.pick() is None
    single = ServiceBalancer("s", lb("http://h:1"))
    single.servers[0].healthy = False
    assert single.pick() is None


# -- sticky cookies --------------------------------------------------------------------------------------


def test_sticky_cookie_hit_miss_and_invalid_value():
    sticky = StickyCookie(name="srv")
    bal = ServiceBalancer("s", lb("http://h:1", "http://h:2", "http://h:3", sticky=sticky))
    target = bal.servers[2]
    assert {bal.pick({"srv": target.cookie_value}).url for _ in range(5)} == {"http://h:3"}
    # no cookie, another cookie, or a value naming no server: plain round robin
    assert names(bal, 3, cookies={}) == ["1", "2", "3"]
    assert names(bal, 3, cookies={"other": target.cookie_value}) == ["1", "2", "3"]
    assert names(bal, 3, cookies={"srv": "garbage"}) == ["1", "2", "3"]


def test_sticky_cookie_falls_back_when_its_server_is_unavailable_or_excluded():
    clock = Clock()
    bal = ServiceBalancer("s", lb("http://h:1", "http://h:2", sticky=StickyCookie(name="srv")), clock=clock)
    target = bal.servers[1]
    cookies = {"srv": target.cookie_value}
    assert bal.pick(cookies, exclude={target}) is bal.servers[0]
    bal.mark_failed(target)
    assert bal.pick(cookies) is bal.servers[0]
    clock.now += 100
    target.healthy = False
    assert bal.pick(cookies) is bal.servers[0]


def test_sticky_cookie_value_is_traefik_v3_hash_and_legacy_values_are_understood():
    bal = ServiceBalancer("s", lb("http://h:1", "http://h:2", sticky=StickyCookie(name="srv")))
    target = bal.servers[1]
    assert target.cookie_value == hashlib.sha256(b"http://h:2").hexdigest()[:16]
    assert "h:2" not in bal.set_cookie_header(target)  # the URL itself is never exposed
    # Traefik v2 cookies held the URL itself: such clients keep their server
    assert {bal.pick({"srv": "http://h:2"}).url for _ in range(4)} == {"http://h:2"}


def test_cookie_attributes_in_go_order():
    sticky = StickyCookie(name="srv", secure=True, http_only=True, same_site="lax", max_age=60)
    bal = ServiceBalancer("s", lb("http://h:1", sticky=sticky))
    up = bal.servers[0]
    assert (
        bal.set_cookie_header(up)
        == f"srv={up.cookie_value}; Path=/; Max-Age=60; HttpOnly; Secure; SameSite=Lax"
    )
    plain = ServiceBalancer(
        "s", lb("http://h:1", sticky=StickyCookie(name="srv", path="/app", same_site="bogus"))
    )
    assert plain.set_cookie_header(plain.servers[0]) == f"srv={up.cookie_value}; Path=/app"
    gone = ServiceBalancer(
        "s", lb("http://h:1", sticky=StickyCookie(name="srv", max_age=-1, same_site="none"))
    )
    assert gone.set_cookie_header(gone.servers[0]).endswith("; Path=/; Max-Age=0; SameSite=None")
    assert ServiceBalancer("s", lb("http://h:1")).set_cookie_header(up) is None


def test_default_cookie_name_is_traefiks():
    # the values of Traefik's own tests (pkg/server/cookie)
    assert default_cookie_name("backend") == "_76eb3"
    assert default_cookie_name("/my/BACKEND-v1.0~rc1") == "_5f7bc"
    bal = ServiceBalancer("app@file", lb("http://h:1", sticky=StickyCookie()))
    assert bal.cookie_name == default_cookie_name("app@file")
    assert ServiceBalancer("s", lb("http://h:1")).cookie_name is None


def test_configured_cookie_name_is_sanitized_like_traefik():
    assert cookie_name(StickyCookie(name="/my/BACKEND-v1.0~rc1"), "x") == "_my_BACKEND-v1.0~rc1"
    assert (
        cookie_name(StickyCookie(name="!#$%&'()*+-./:<=>?@[]^_`{|}~"), "x") == "!#$%&'__*+-._________^_`_|_~"
    )


# -- weighted services -------------------------------------------------------------------------------


def test_weighted_service_split_and_sticky():
    services = {
        "a": svc_lb("a", "http://a:1"),
        "b": svc_lb("b", "http://b:1"),
        "w": svc_w("w", ("a", 3), ("b", 1), sticky=StickyCookie(name="w")),
    }
    bals = build_balancers(services)
    w = bals["w"]
    assert isinstance(w, WeightedBalancer)
    picks = [w.pick_child().name for _ in range(40)]
    assert collections.Counter(picks) == {"a": 30, "b": 10}
    assert "aaaa" not in "".join(p[0] for p in picks)
    header = w.set_cookie_header(bals["b"])
    assert header == f"w={hashlib.sha256(b'b').hexdigest()[:16]}; Path=/"
    value = header.split(";")[0].split("=", 1)[1]
    assert {w.pick_child({"w": value}).name for _ in range(5)} == {"b"}
    assert {w.pick_child({"w": "nope"}).name for _ in range(4)} == {"a", "b"}


def test_weighted_skips_children_without_available_servers():
    clock = Clock()
    services = {
        "a": svc_lb("a", "http://a:1"),
        "b": svc_lb("b", "http://b:1"),
        "z": svc_lb("z", "http://z:1"),
        "w": svc_w("w", ("a", 1), ("b", 1), ("z", 0), sticky=StickyCookie(name="w")),
    }
    bals = build_balancers(services, clock=clock)
    w = bals["w"]
    a, b = bals["a"], bals["b"]
    cookie_for_b = w.set_cookie_header(b).split(";")[0].split("=", 1)[1]
    b.servers[0].healthy = False
    assert {w.pick_child({"w": cookie_for_b}).name for _ in range(4)} == {"a"}
    # only passively down everywhere: still routed (the child then tries its earliest-recovering server)
    a.mark_failed(a.servers[0])
    assert w.pick_child() is a
    a.servers[0].healthy = False
    assert w.pick_child() is None  # the weight-0 child is never used, even as a last resort
    assert not w.has_available() and not w.has_healthy()


def test_nested_weighted_services():
    services = {
        "a": svc_lb("a", "http://a:1"),
        "b": svc_lb("b", "http://b:1"),
        "inner": svc_w("inner", ("a", 1), ("b", 1)),
        "outer": svc_w("outer", ("inner", 1)),
    }
    bals = build_balancers(services)
    assert bals["outer"].pick_child() is bals["inner"]
    bals["a"].servers[0].healthy = False
    bals["b"].servers[0].healthy = False
    assert bals["outer"].pick_child() is None


def test_build_leaves_out_broken_services_and_never_raises(caplog):
    services = {
        "w": svc_w("w", ("nope", 1)),
        "x": svc_w("x", ("y", 1)),
        "y": svc_w("y", ("x", 1)),
        "self": svc_w("self", ("self", 1)),
        "dep": svc_w("dep", ("w", 1)),
        "bad": svc_lb("bad", "http://h:notaport"),
        "nohost": svc_lb("nohost", "http:///path"),
        "usesbad": svc_w("usesbad", ("bad", 1)),
        "ok": svc_lb("ok", "http://h:1"),
        "good": svc_w("good", ("ok", 1)),
    }
    with caplog.at_level(logging.ERROR, logger="dockroute.balancer"):
        bals = build_balancers(services)
    assert set(bals) == {"ok", "good"}
    text = caplog.text
    assert "service w is left out: its child service nope does not exist" in text
    assert "cycle: x -> y -> x" in text or "cycle: y -> x -> y" in text
    assert "service self is left out: services form a cycle: self -> self" in text
    assert "service dep is left out: its child service w is left out" in text
    assert "service bad is left out" in text and "service nohost is left out" in text
    assert "service usesbad is left out: its child service bad is left out" in text
    # one line per broken service, none for the good ones
    left_out = [r.getMessage().split()[1] for r in caplog.records]
    assert sorted(left_out) == sorted(["w", "x", "y", "self", "dep", "bad", "nohost", "usesbad"])


# -- reloads -------------------------------------------------------------------------------------------


def test_health_state_survives_reload():
    clock = Clock()
    hc = HealthCheck()
    first = build_balancers({"s": svc_lb("s", "http://h:1", "http://h:2", health_check=hc)}, clock=clock)
    first["s"].servers[0].healthy = False
    first["s"].mark_failed(first["s"].servers[1])
    second = build_balancers(
        {"s": svc_lb("s", "http://h:1", "http://h:2", "http://h:3", weights=[1, 5, 1], health_check=hc)},
        previous=first,
        clock=clock,
    )
    by_url = {u.url: u for u in second["s"].servers}
    assert by_url["http://h:1"].healthy is False
    assert by_url["http://h:2"].down_until > clock.now
    assert by_url["http://h:2"].weight == 5
    assert by_url["http://h:3"].healthy is True
    assert second["s"].pick().url == "http://h:3"
    # shared objects: a request still running on the old table reports into the new state
    first["s"].mark_ok(first["s"].servers[1])
    assert by_url["http://h:2"].down_until == 0.0


def test_reload_does_not_carry_state_to_another_service():
    first = build_balancers({"s": svc_lb("s", "http://h:1", health_check=HealthCheck())})
    first["s"].servers[0].healthy = False
    second = build_balancers({"t": svc_lb("t", "http://h:1", health_check=HealthCheck())}, previous=first)
    assert second["t"].servers[0].healthy is True


def test_reload_without_health_check_forgets_active_state_but_keeps_passive():
    clock = Clock()
    first = build_balancers(
        {"s": svc_lb("s", "http://h:1", "http://h:2", health_check=HealthCheck())}, clock=clock
    )
    first["s"].servers[0].healthy = False
    first["s"].mark_failed(first["s"].servers[1])
    second = build_balancers({"s": svc_lb("s", "http://h:1", "http://h:2")}, previous=first, clock=clock)
    h1, h2 = second["s"].servers
    assert h1.healthy is True  # nothing would ever mark it healthy again
    assert h2.down_until > clock.now
    first["s"].servers[0].healthy = False  # a late result of the old checker does not leak in
    assert h1.healthy is True


def test_upstream_parsing():
    bal = ServiceBalancer("s", lb("http://Backend:8080", "https://secure", "http://[::1]:81", "HTTP://h"))
    a, b, c, d = bal.servers
    assert (a.key, a.host_header, a.host_header_b) == (
        ("http", "backend", 8080, ""),
        "backend:8080",
        b"backend:8080",
    )
    assert (b.key, b.host_header) == (("https", "secure", 443, ""), "secure")
    assert (c.key, c.host_header) == (("http", "[::1]", 81, ""), "[::1]:81")
    assert (d.key, d.host_header) == (("http", "h", 80, ""), "h")


def test_unchanged_service_keeps_its_balancer_object():
    """A reload hands an unchanged service its very balancer back (health checker, round robin, sticky
    state stay current); a changed one gets a new balancer; weighted services follow their children."""
    services = {
        "a": svc_lb("a", "http://h:1", "http://h:2", health_check=HealthCheck()),
        "b": svc_lb("b", "http://h:3"),
        "w": svc_w("w", ("a", 1), ("b", 1)),
    }
    first = build_balancers(services)
    first["a"].pick()  # some round-robin state
    same = build_balancers(dict(services), previous=first)
    assert same["a"] is first["a"] and same["b"] is first["b"] and same["w"] is first["w"]
    changed = build_balancers({**services, "b": svc_lb("b", "http://h:4")}, previous=first)
    assert changed["a"] is first["a"]
    assert changed["b"] is not first["b"]
    assert changed["w"] is not first["w"]  # a child changed: the weighted balancer points at the new one
    assert changed["w"].children[1].balancer is changed["b"]
