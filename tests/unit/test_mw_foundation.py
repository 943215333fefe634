"""The middleware foundation: typed options read once for files and labels, chains composed at compile
time (entry point's first, chains expanded, state kept across reloads), and the exchange's framing."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from types import SimpleNamespace

import pytest

from discover.middlewares.fields import BOOL, DURATION, INT, LIST, MAP, SECTION, STR, option, read_options
from discover.model import LoadBalancer, Router, Server, Service, merge
from discover.parse import parse_dynamic_with_warnings
from discover.readers import At, ConfigError
from router.compile import compile_config
from router.exchange import PassSink, answer
from router.middlewares import BuildContext, build_chain
from router.rules import RequestInfo
from router.settings import EntryPoint
from router.targets import MiddlewareTarget, ServiceTarget
from tests.exchange_fakes import fake_exchange


@dataclass(frozen=True, slots=True)
class Inner:
    depth: int = option("depth", INT, 0, minimum=0)


@dataclass(frozen=True, slots=True)
class Sample:
    name: str = option("name", STR, "", empty=False)
    flag: bool = option("flag", BOOL, False)
    count: int = option("count", INT, 1, minimum=1)
    wait: float = option("wait", DURATION, 1.0)
    items: tuple[str, ...] = option("items", LIST)
    extra: object = option("extra", MAP)
    inner: Inner | None = option("inner", SECTION, section=Inner)

    def problems(self):
        if self.flag and not self.items:
            yield "items", "required when flag is set"


def test_one_reader_takes_typed_values_and_label_strings_alike():
    typed = read_options(
        Sample,
        {"name": "x", "flag": True, "count": 3, "wait": "500ms", "items": ["a", "b"], "inner": {"depth": 2}},
        At(),
    )
    labels = read_options(
        Sample,
        {
            "NAME": "x",
            "flag": "true",
            "count": "3",
            "wait": "500ms",
            "items": "a, b",
            "Inner": {"Depth": "2"},
        },
        At(),
    )
    assert typed == labels
    assert typed.wait == 0.5 and typed.items == ("a", "b") and typed.inner == Inner(2)
    assert read_options(Sample, None, At()) == Sample()
    # a section given as a boolean word: present with its defaults, or absent (Traefik's allowEmpty)
    assert read_options(Sample, {"inner": "true"}, At()).inner == Inner()
    assert read_options(Sample, {"inner": "false"}, At()).inner is None
    # maps keep empty values (the headers middleware removes a header with one)
    assert dict(read_options(Sample, {"extra": {"X-A": "1", "X-B": ""}}, At()).extra) == {
        "X-A": "1",
        "X-B": "",
    }


@pytest.mark.parametrize(
    ("value", "path", "words"),
    [
        ({"nosuch": 1}, "m.nosuch", "unknown key 'nosuch'"),
        ({"count": 0}, "m.count", "must be at least 1"),
        ({"count": "many"}, "m.count", "expected an integer"),
        ({"flag": "yes"}, "m.flag", "expected true or false"),
        ({"wait": "soon"}, "m.wait", "invalid duration"),
        ({"name": ""}, "m.name", "must not be empty"),
        ({"inner": {"depth": -1}}, "m.inner.depth", "must be at least 0"),
        ({"flag": True}, "m.items", "required when flag is set"),
    ],
)
def test_a_bad_option_is_named(value, path, words):
    with pytest.raises(ConfigError) as err:
        read_options(Sample, value, At("m"))
    assert err.value.path == path and words in str(err.value)


def test_a_bad_middleware_is_kept_with_its_error_and_the_rest_of_the_file_reads():
    cfg, warnings = parse_dynamic_with_warnings(
        {
            "http": {
                "middlewares": {
                    "bad": {"addPrefix": {"prefix": "/a", "nosuch": True}},
                    "good": {"addPrefix": {"prefix": "/a"}},
                    "gw": {"grpcWeb": {"allowOrigins": ["*"]}},
                }
            }
        }
    )
    assert cfg.middlewares["bad"].options is None
    assert cfg.middlewares["bad"].error.startswith("http.middlewares.bad.addPrefix.nosuch: unknown key")
    assert warnings == [cfg.middlewares["bad"].error]
    assert cfg.middlewares["good"].options.prefix == "/a" and not cfg.middlewares["good"].error
    assert dict(cfg.middlewares["gw"].options) == {"allowOrigins": ("*",)}  # not implemented: kept raw


WEB = (EntryPoint("web", ":80"),)


def _dyn(**middlewares):
    return {"http": {"middlewares": middlewares}}


def _compiled(file_mws, routers, eps=WEB, previous=None, docker_mws=None):
    parsed = parse_dynamic_with_warnings(_dyn(**file_mws), references=False)[0]
    svc = Service("s", load_balancer=LoadBalancer(servers=(Server("http://127.0.0.1:1"),)))
    file_cfg = parsed.__class__(
        routers={r.name: r for r in routers}, services={"s": svc}, middlewares=parsed.middlewares
    )
    configs = {"file": file_cfg}
    if docker_mws:
        configs["docker"] = parse_dynamic_with_warnings(_dyn(**docker_mws), references=False)[0]
    return compile_config(merge(configs), eps, previous_middlewares=previous)


def _route(compiled, host="a.test", ep="web"):
    return compiled.tables[ep].lookup(RequestInfo("GET", host, "/", "", {}, "127.0.0.1"))


def test_a_router_without_middlewares_gets_its_service_target_itself():
    compiled = _compiled({}, [Router("r", "Host(`a.test`)", "s")])
    assert type(_route(compiled).target) is ServiceTarget  # no exchange, no chain: nothing paid


def test_chains_expand_in_order_and_entry_point_middlewares_run_first():
    mws = {
        "one": {"addPrefix": {"prefix": "/one"}},
        "two": {"addPrefix": {"prefix": "/two"}},
        "both": {"chain": {"middlewares": ["one", "two"]}},
        "outer": {"addPrefix": {"prefix": "/outer"}},
    }
    eps = (EntryPoint("web", ":80", middlewares=("outer",)),)  # bare: the router's provider
    compiled = _compiled(mws, [Router("r", "Host(`a.test`)", "s", middlewares=("both",))], eps)
    assert isinstance(_route(compiled).target, MiddlewareTarget)
    chain = ("outer@file", "one@file", "two@file")
    assert list(compiled.middlewares) == [("r@file", chain, i) for i in range(3)]
    seen = []

    async def final(ex):
        seen.append(ex.path)

    cfg = merge({"file": parse_dynamic_with_warnings(_dyn(**mws), references=False)[0]})
    handler = build_chain(("outer@file", "both@file"), final, BuildContext("", "r@file", cfg), None, {})
    asyncio.run(handler(SimpleNamespace(path="/x")))
    assert seen == ["/two/one/outer/x"]  # each prefix is added in turn: outer first, then one, two


def test_request_steps_are_fused_in_order_with_wraps_and_stop_or_go_on_as_they_say():
    """Before steps run as plain calls in one loop (the route's target runs the leading ones itself), in
    the chain's order with ordinary wraps between them; a step's awaitable that answers stops the chain,
    one that gives True (a rate limiter's short wait) lets it go on."""
    from router.middlewares import Before, compose, split

    seen: list[str] = []

    def step(name, result=None):
        def run(ex):
            seen.append(name)
            return result(ex) if result is not None else None

        return Before(run)

    async def go_on(ex):
        await asyncio.sleep(0)
        return True

    async def answered(ex):
        seen.append("answer")
        if hasattr(ex, "sink"):
            await answer(ex, 204)

    def wrap(next_handler):
        async def around(ex):
            seen.append("wrap in")
            await next_handler(ex)
            seen.append("wrap out")

        return around

    async def final(ex):
        seen.append("final")

    def chain(*wraps):
        return compose(list(wraps), final)

    handler = chain(step("a"), step("b", go_on), wrap, step("c"))
    steps, after = split(handler)
    assert len(steps) == 2 and after is not handler  # a and b run by the target, then the wrap
    asyncio.run(handler(SimpleNamespace()))
    assert seen == ["a", "b", "wrap in", "c", "final", "wrap out"]
    seen.clear()
    asyncio.run(chain(step("a", answered), step("b"))(SimpleNamespace()))
    assert seen == ["a", "answer"]  # answered: nothing after it runs

    # through a route's target: the leading steps run in its own frame, with the same result
    seen.clear()
    handler = chain(step("a"), step("b", answered), step("c"))
    target = MiddlewareTarget("r@file", handler, None, *split(handler))
    ex, t = _exchange()
    asyncio.run(target.handle(ex.ep, ex.request, t, ex.msg, ex.info, "a.test", False))
    assert seen == ["a", "b", "answer"]
    assert t.data.startswith(b"HTTP/1.1 204 ")


def test_built_middlewares_are_kept_across_compiles_while_their_options_do_not_change():
    mws = {"p": {"addPrefix": {"prefix": "/a"}}}
    routers = [Router("r", "Host(`a.test`)", "s", middlewares=("p",))]
    first = _compiled(mws, routers)
    second = _compiled(mws, routers, previous=first.middlewares)
    key = ("r@file", ("p@file",), 0)
    assert second.middlewares[key][2] is first.middlewares[key][2]
    third = _compiled({"p": {"addPrefix": {"prefix": "/b"}}}, routers, previous=second.middlewares)
    assert third.middlewares[key][2] is not first.middlewares[key][2]


def test_each_place_in_a_chain_has_its_own_object_before_and_after_a_reload():
    """A router whose entry points add different middlewares has one object per chain (Traefik builds one
    per router and entry point), and keeps exactly that after a reload; a module saying REUSE = False
    (errors: it holds the page service's handler) is built again on every compile."""
    mws = {"p": {"addPrefix": {"prefix": "/a"}}, "q": {"addPrefix": {"prefix": "/q"}}}
    eps = (EntryPoint("web", ":80", middlewares=("q",)), EntryPoint("admin", ":81"))
    routers = [Router("r", "Host(`a.test`)", "s", middlewares=("p", "p"))]
    first = _compiled(mws, routers, eps)
    second = _compiled(mws, routers, eps, previous=first.middlewares)
    objects = [v[2] for v in first.middlewares.values()]
    assert len(first.middlewares) == 5 and len({id(o) for o in objects}) == 5
    assert all(second.middlewares[k][2] is v[2] for k, v in first.middlewares.items())
    pages = {"pages": {"errors": {"status": ["500"], "service": "s", "query": "/"}}}
    routers = [Router("r", "Host(`a.test`)", "s", middlewares=("pages",))]
    first = _compiled(pages, routers)
    second = _compiled(pages, routers, previous=first.middlewares)
    key = ("r@file", ("pages@file",), 0)
    assert second.middlewares[key][2] is not first.middlewares[key][2]


def test_references_across_providers_and_refusals_name_router_and_middleware(caplog):
    caplog.set_level(logging.ERROR)
    routers = [
        Router("cross", "Host(`a.test`)", "s", middlewares=("d@docker",)),
        Router("gone", "Host(`b.test`)", "s", middlewares=("nope",)),
        Router("grpc", "Host(`c.test`)", "s", middlewares=("gw",)),
    ]
    compiled = _compiled({"gw": {"grpcWeb": {}}}, routers, docker_mws={"d": {"addPrefix": {"prefix": "/d"}}})
    assert isinstance(_route(compiled).target, MiddlewareTarget)
    assert compiled.errors == {
        "gone@file": "middleware nope@file does not exist",
        "grpc@file": "middleware gw@file (grpcWeb) is not supported",
    }


# -- the exchange's framing -------------------------------------------------------------------------


def _exchange(method="GET", version=(1, 1)):
    ex = fake_exchange(method, version=version)
    return ex, ex.transport


def test_an_answer_with_a_length_is_sent_as_is_and_head_gets_no_body():
    ex, t = _exchange()
    asyncio.run(answer(ex, 200, "hello"))
    assert t.data.startswith(b"HTTP/1.1 200 OK\r\n") and t.data.endswith(b"Content-Length: 5\r\n\r\nhello")
    ex, t = _exchange("HEAD")
    asyncio.run(answer(ex, 200, "hello"))
    assert b"Content-Length: 5\r\n" in t.data and t.data.endswith(b"\r\n\r\n")


class _Upper(PassSink):
    async def start(self, status, headers, reason=""):
        del headers["Content-Length"]  # the body changes: the length is no longer known
        await super().start(status, headers, reason)

    async def write(self, data):
        await super().write(data.upper())


def test_a_sink_that_drops_the_length_gets_chunked_and_an_http10_client_a_close():
    ex, t = _exchange()
    ex.sink = _Upper(ex.sink)
    asyncio.run(answer(ex, 200, "hello"))
    assert b"Transfer-Encoding: chunked\r\n" in t.data and t.data.endswith(b"5\r\nHELLO\r\n0\r\n\r\n")
    assert ex.started
    ex, t = _exchange(version=(1, 0))
    ex.sink = _Upper(ex.sink)
    asyncio.run(answer(ex, 200, "hello"))
    assert b"Connection: close\r\n" in t.data and t.data.endswith(b"\r\n\r\nHELLO") and ex.close


def test_a_response_header_with_a_line_break_is_never_written():
    """A realm or URL from the configuration with CR/LF would split the answer: it fails instead (the
    chain answers 500), and nothing reaches the client."""
    ex, t = _exchange()
    with pytest.raises(ValueError, match="line break"):
        asyncio.run(answer(ex, 401, "no", [("WWW-Authenticate", 'Basic realm="x"\r\nSet-Cookie: sid=evil')]))
    assert t.data == b""


def test_a_request_through_a_chain_leaves_no_cyclic_garbage():
    """The process tunes the cyclic GC down (thresholds of 50,000): an exchange whose sinks and middlewares
    still pointed at each other after the answer would keep every request's headers until a rare full
    collection. Everything of a request must go by reference counting."""
    import gc

    from router.targets import MiddlewareTarget

    mws = {"p": {"addPrefix": {"prefix": "/a"}}, "h": {"headers": {"customResponseHeaders": {"X-A": "1"}}}}
    cfg = merge({"file": parse_dynamic_with_warnings(_dyn(**mws), references=False)[0]})

    async def final(ex):
        await answer(ex, 200, "ok")

    handler = build_chain(("p@file", "h@file"), final, BuildContext("", "r@file", cfg), None, {})
    target = MiddlewareTarget("r@file", handler, None)

    async def one_request():
        ex, t = _exchange()
        ep, request, msg, info = ex.ep, ex.request, ex.msg, ex.info
        ex.release()
        sent = await target.handle(ep, request, t, msg, info, "a.test", False)
        assert sent.keep_alive and b"X-A: 1" in t.data
        await asyncio.sleep(0)  # let the head flush callback run

    async def run():
        await one_request()  # warm up: first-use caches
        gc.collect()
        gc.disable()
        try:
            for _ in range(20):
                await one_request()
            return gc.collect()
        finally:
            gc.enable()

    assert asyncio.run(run()) == 0


def test_fixed_header_edits_let_the_answer_go_raw_with_the_same_result():
    """Wrappers that only set or remove fixed headers (EditSink) keep the raw relay: raw_edits lists their
    edits innermost first, and the raw head gets exactly what the wrappers would give header objects."""
    from router.exchange import EditSink, raw_edits
    from router.framing import _edit_plan, _head_lines

    ex, t = _exchange()
    assert raw_edits(ex) == []
    outer = (("X-B", "outer"), ("Set-Cookie", None))
    inner = (("x-b", "inner"), ("X-C", "1"))
    ex.sink = EditSink(EditSink(ex.sink, outer), inner)
    assert raw_edits(ex) == [inner, outer]  # applied innermost first: the outer one wins
    conn = SimpleNamespace(
        reason=b"OK", headers=[(b"Set-Cookie", b"a=1"), (b"x-b", b"backend"), (b"X-Bee", b"keep")]
    )
    skip, added = _edit_plan(raw_edits(ex))
    out, _ = _head_lines(conn, 200, ["sticky=1"], skip)  # a sticky cookie is removed too
    assert out + added == [
        b"HTTP/1.1 200 OK\r\n",
        b"X-Bee: keep\r\n",
        b"X-C: 1\r\n",
        b"X-B: outer\r\n",
    ]
    # through header objects (an answer a middleware makes): the same headers
    asyncio.run(answer(ex, 200, "ok", [("Set-Cookie", "a=1"), ("X-Bee", "keep")]))
    head = t.data.split(b"\r\n\r\n")[0].split(b"\r\n")[1:]
    assert sorted(h for h in head if not h.startswith((b"Content-", b"content-"))) == [
        b"X-B: outer",
        b"X-Bee: keep",
        b"X-C: 1",
    ]
    ex.sink = PassSink(ex.sink)
    assert raw_edits(ex) is None  # a wrapper that may read the answer: header objects it is
