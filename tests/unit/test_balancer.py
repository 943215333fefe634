import collections

from discover.model import LoadBalancer, Server, Service, StickyCookie, Weighted, WeightedRef
from router.balancer import ServiceBalancer, WeightedBalancer, build_balancers, default_cookie_name


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def lb(*urls: str, weights=None, sticky=None) -> LoadBalancer:
    weights = weights or [1] * len(urls)
    return LoadBalancer(
        servers=tuple(Server(u, w) for u, w in zip(urls, weights, strict=True)), sticky=sticky
    )


def names(bal, n, **kw):
    return [bal.pick(**kw).url[-1] for _ in range(n)]


def test_equal_weights_round_robin():
    bal = ServiceBalancer("s", lb("http://h:1", "http://h:2", "http://h:3"))
    assert collections.Counter(names(bal, 30)) == {"1": 10, "2": 10, "3": 10}


def test_weights_are_respected_and_smooth():
    bal = ServiceBalancer("s", lb("http://h:1", "http://h:2", weights=[3, 1]))
    picks = names(bal, 40)
    assert collections.Counter(picks) == {"1": 30, "2": 10}
    # smooth: the light server is spread out, never more than 3 heavy picks in a row
    assert "1111" not in "".join(picks)


def test_weight_zero_is_never_picked():
    bal = ServiceBalancer("s", lb("http://h:1", "http://h:2", weights=[1, 0]))
    assert set(names(bal, 10)) == {"1"}


def test_exclude_skips_servers():
    bal = ServiceBalancer("s", lb("http://h:1", "http://h:2"))
    first = bal.servers[0]
    assert {bal.pick(exclude={first}).url for _ in range(5)} == {"http://h:2"}


def test_passive_health_takes_server_out_then_back():
    clock = Clock()
    bal = ServiceBalancer("s", lb("http://h:1", "http://h:2"), passive_cooldown=10, clock=clock)
    bal.mark_failed(bal.servers[0])
    assert set(names(bal, 6)) == {"2"}
    clock.now += 11
    assert set(names(bal, 6)) == {"1", "2"}


def test_all_passively_down_tries_earliest_recovery_instead_of_failing():
    clock = Clock()
    bal = ServiceBalancer("s", lb("http://h:1", "http://h:2"), passive_cooldown=10, clock=clock)
    bal.mark_failed(bal.servers[1])
    clock.now += 1
    bal.mark_failed(bal.servers[0])
    assert bal.pick().url == "http://h:2"


def test_unhealthy_servers_are_skipped_and_none_when_all_unhealthy():
    bal = ServiceBalancer("s", lb("http://h:1", "http://h:2"))
    bal.servers[0].healthy = False
    assert set(names(bal, 4)) == {"2"}
    bal.servers[1].healthy = False
    assert bal.pick() is None


def test_sticky_cookie_hit_miss_and_attributes():
    sticky = StickyCookie(name="srv", secure=True, http_only=True, same_site="lax", max_age=60)
    bal = ServiceBalancer("s", lb("http://h:1", "http://h:2", "http://h:3", sticky=sticky))
    target = bal.servers[2]
    assert {bal.pick({"srv": target.cookie_value}).url for _ in range(5)} == {"http://h:3"}
    assert bal.pick({"srv": "garbage"}) is not None
    header = bal.set_cookie_header(target)
    assert header.startswith(f"srv={target.cookie_value}")
    for attr in ("Secure", "HttpOnly", "SameSite=Lax", "Max-Age=60", "Path=/"):
        assert attr in header
    assert "h:3" not in header  # the URL itself is never exposed
    target.healthy = False
    assert bal.pick({"srv": target.cookie_value}).url != "http://h:3"


def test_default_cookie_name_is_derived_from_service():
    bal = ServiceBalancer("app@file", lb("http://h:1", sticky=StickyCookie()))
    assert bal.cookie_name == default_cookie_name("app@file")
    assert bal.cookie_name.startswith("_") and len(bal.cookie_name) == 6


def test_weighted_service_split_and_sticky():
    services = {
        "a": Service("a", load_balancer=lb("http://a:1")),
        "b": Service("b", load_balancer=lb("http://b:1")),
        "w": Service(
            "w",
            weighted=Weighted(
                services=(WeightedRef("a", 3), WeightedRef("b", 1)), sticky=StickyCookie(name="w")
            ),
        ),
    }
    bals = build_balancers(services)
    w = bals["w"]
    assert isinstance(w, WeightedBalancer)
    counts = collections.Counter(w.pick_child().name for _ in range(40))
    assert counts == {"a": 30, "b": 10}
    header = w.set_cookie_header(bals["b"])
    value = header.split(";")[0].split("=", 1)[1]
    assert {w.pick_child({"w": value}).name for _ in range(5)} == {"b"}


def test_weighted_with_missing_child_or_cycle_is_left_out(caplog):
    services = {
        "w": Service("w", weighted=Weighted(services=(WeightedRef("nope", 1),))),
        "x": Service("x", weighted=Weighted(services=(WeightedRef("y", 1),))),
        "y": Service("y", weighted=Weighted(services=(WeightedRef("x", 1),))),
        "ok": Service("ok", load_balancer=lb("http://h:1")),
    }
    bals = build_balancers(services)
    assert set(bals) == {"ok"}
    assert "nope does not exist" in caplog.text and "cycle" in caplog.text


def test_health_state_survives_reload():
    first = build_balancers({"s": Service("s", load_balancer=lb("http://h:1", "http://h:2"))})
    first["s"].servers[0].healthy = False
    second = build_balancers(
        {"s": Service("s", load_balancer=lb("http://h:1", "http://h:2", "http://h:3"))}, previous=first
    )
    by_url = {u.url: u for u in second["s"].servers}
    assert by_url["http://h:1"].healthy is False
    assert by_url["http://h:3"].healthy is True


def test_upstream_parsing():
    bal = ServiceBalancer("s", lb("http://Backend:8080", "https://secure", "http://[::1]:81"))
    a, b, c = bal.servers
    assert (a.key, a.host_header) == (("http", "backend", 8080), "backend:8080")
    assert (b.key, b.host_header) == (("https", "secure", 443), "secure")
    assert (c.key, c.host_header) == (("http", "[::1]", 81), "[::1]:81")
