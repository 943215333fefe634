from discover.model import (
    DynamicConfig,
    LoadBalancer,
    Middleware,
    Router,
    Server,
    Service,
    Weighted,
    WeightedRef,
    frozen_map,
    merge,
)


def cfg(routers=(), services=(), middlewares=()) -> DynamicConfig:
    return DynamicConfig(
        routers=frozen_map({r.name: r for r in routers}),
        services=frozen_map({s.name: s for s in services}),
        middlewares=frozen_map({m.name: m for m in middlewares}),
    )


def test_merge_qualifies_names_and_resolves_bare_references_in_their_provider():
    file_cfg = cfg(
        routers=[Router("app", "Host(`a`)", "svc", middlewares=("auth", "ratelimit@docker"))],
        services=[
            Service("svc", load_balancer=LoadBalancer(servers=(Server("http://x"),))),
            Service(
                "split", weighted=Weighted(services=(WeightedRef("svc", 1), WeightedRef("other@docker", 2)))
            ),
        ],
        middlewares=[Middleware("auth", "basicAuth")],
    )
    docker_cfg = cfg(routers=[Router("app", "Host(`b`)", "svc@file")])
    merged = merge({"file": file_cfg, "docker": docker_cfg})
    assert set(merged.routers) == {"app@file", "app@docker"}
    r = merged.routers["app@file"]
    assert r.name == "app@file" and r.service == "svc@file"
    assert r.middlewares == ("auth@file", "ratelimit@docker")
    assert merged.routers["app@docker"].service == "svc@file"
    assert [w.name for w in merged.services["split@file"].weighted.services] == ["svc@file", "other@docker"]
    assert set(merged.middlewares) == {"auth@file"}


def test_merge_is_deterministic_and_comparable():
    a = cfg(routers=[Router("r", "Host(`a`)", "s")])
    assert merge({"file": a}) == merge({"file": a})
    assert merge({"file": a}) != merge({"docker": a})


def test_default_priority_is_rule_length():
    assert Router("r", "Host(`a.test`)", "s").effective_priority == len("Host(`a.test`)")
    assert Router("r", "Host(`a.test`)", "s", priority=5).effective_priority == 5
