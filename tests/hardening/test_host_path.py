"""Host and path: what a router decides on is exactly what the backend is asked for.

A proxy that routes on one reading of the request and forwards another ("split view") lets a client reach
a backend path or host that no router allowed: a path-based rule protecting ``/admin`` is skipped by
``/public/../admin`` when the proxy routes the raw path and the backend cleans it (CVE-2021-41773 is the
dot-segment shape on Apache; Traefik's GHSA-gm3x-23wp-hc2c / CVE-2025-66490 the encoded-character one);
an absolute-form request line naming one host next to a Host header naming another is routed by one and
forwarded with the other. Each case runs against the real dockroute process with the raw-socket client;
the backends record every byte, so the tests see the request line and Host the backend actually got.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.hardening.backends import RecordingBackend
from tests.hardening.rawclient import exchange
from tests.integration.conftest import proxy  # noqa: F401  (the real process, a fixture)
from tests.integration.harness import Dockroute, routers
from tests.polling import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
async def pair():
    """Two recording backends: ``admin`` (the protected router's) and ``public`` (the catch-all's)."""
    admin, public = await RecordingBackend().start(), await RecordingBackend().start()
    yield admin, public
    await admin.stop()
    await public.stop()


def _static(tmp: Path, http: dict[str, Any] | None = None, address: str = "127.0.0.1:0") -> dict:
    web: dict[str, Any] = {"address": address}
    if http:
        web["http"] = http
    return {
        "entryPoints": {"web": web},
        "providers": {"file": {"filename": str(tmp / "dynamic.yml"), "watch": True}},
        "log": {"level": "DEBUG"},
    }


def _get(target: bytes, host: bytes = b"a.test", version: bytes = b"1.1", extra: bytes = b"") -> bytes:
    head = b"GET " + target + b" HTTP/" + version + b"\r\n"
    if host is not None:
        head += b"Host: " + host + b"\r\n"
    return head + extra + b"Connection: close\r\n\r\n"


def _lines(backend: RecordingBackend) -> list[bytes]:
    """The request lines the backend received, in order."""
    return [
        line
        for line in bytes(backend.received).split(b"\r\n")
        if line.startswith(b"GET ") and line.endswith(b" HTTP/1.1")
    ]


def _host_of(backend: RecordingBackend) -> bytes:
    """The Host header of the (single) request the backend received."""
    for line in bytes(backend.received).split(b"\r\n"):
        if line.lower().startswith(b"host:"):
            return line[5:].strip()
    raise AssertionError(bytes(backend.received))


async def _forwarded(backend: RecordingBackend) -> bytes:
    await wait_for(lambda: b"\r\n\r\n" in backend.received, timeout=5)
    return bytes(backend.received)


# ---------------------------------------------------------------------------------------------- authority


async def test_absolute_form_authority_routes_and_is_the_host_forwarded(proxy, pair):  # noqa: F811
    """RFC 9112 section 3.2.2: with an absolute-form target the proxy MUST ignore the Host header and use
    the target's authority (Go's net/http sets ``req.Host`` from it). Routing on one and forwarding the
    other is the split view of PortSwigger's "routing-based SSRF" / Host-header attacks: here the request
    names ``b.test`` in its line and ``a.test`` in Host; it must be routed to b.test's backend and reach it
    with ``Host: b.test`` (and X-Forwarded-Host b.test), a.test's backend seeing nothing."""
    a, b = pair
    dr = await proxy(routers(("ra", "Host(`a.test`)", "sa"), ("rb", "Host(`b.test`)", "sb"),
                             services={"sa": [a.url], "sb": [b.url]}))  # fmt: skip
    answer = await exchange(dr.port, _get(b"http://B.test:80/x?q=1", host=b"a.test"))
    assert answer.status == 200, answer.data[:300]
    got = await _forwarded(b)
    assert _lines(b) == [b"GET /x?q=1 HTTP/1.1"], got
    assert _host_of(b) == b"B.test:80"
    assert b"a.test" not in got
    assert a.received == b""


async def test_absolute_form_userinfo_never_becomes_the_host(proxy, pair):  # noqa: F811
    """``http://a.test@b.test/`` names host b.test (RFC 3986 section 3.2.1: userinfo ends at "@"); a parser
    that stops at the first "@" or ":" routes it to a.test (the "URL confusion" class of Orange Tsai's
    "A New Era of SSRF"). It goes to b.test, and the userinfo is sent nowhere."""
    a, b = pair
    dr = await proxy(routers(("ra", "Host(`a.test`)", "sa"), ("rb", "Host(`b.test`)", "sb"),
                             services={"sa": [a.url], "sb": [b.url]}))  # fmt: skip
    answer = await exchange(dr.port, _get(b"http://a.test@b.test/y", host=b"a.test"))
    assert answer.status == 200, answer.data[:300]
    await _forwarded(b)
    assert _lines(b) == [b"GET /y HTTP/1.1"] and _host_of(b) == b"b.test"
    assert a.received == b""


async def test_http11_without_host_is_refused(proxy, pair):  # noqa: F811
    """RFC 9112 section 3.2: a server MUST answer 400 to an HTTP/1.1 request without a Host header (Go:
    "missing required Host header"); routed instead, it reaches a catch-all router with a Host the proxy
    makes up. 400, closed, nothing forwarded, even with an absolute-form target (Go checks the header).
    aiohttp's parser (llhttp) is what refuses it: this keeps that true across its upgrades."""
    a, _ = pair
    dr = await proxy(routers(("all", "PathPrefix(`/`)", "s"), services={"s": [a.url]}))
    for target in (b"/x", b"http://a.test/x"):
        answer = await exchange(dr.port, _get(target, host=None))
        assert answer.status == 400 and answer.closed, answer.data[:300]
    assert a.received == b""


# ---------------------------------------------------------------------------------------------- host form


@pytest.mark.parametrize("host", [b"A.TEST", b"a.test.", b"A.Test.:80", b"a.test:8080"])
async def test_host_is_lowercased_without_port_and_trailing_dot(proxy, pair, host):  # noqa: F811
    """RFC 9110 section 4.2.3 (host names are case-insensitive), RFC 1034 section 3.1 (a trailing dot is the
    same name, fully qualified): ``Host: A.TEST.:80`` must match ``Host(`a.test`)`` as in Traefik (its
    canonical host, port stripped, trailing dot tried both ways), not fall to a catch-all router whose
    backend then reads the same name (nginx and Go servers both treat it as a.test)."""
    a, catch_all = pair
    dyn = routers(("ra", "Host(`a.test`)", "sa"), ("all", "PathPrefix(`/`)", "sc"),
                  services={"sa": [a.url], "sc": [catch_all.url]})  # fmt: skip
    dyn["http"]["routers"]["all"]["priority"] = 1  # below Host(`a.test`), whose length is the same
    dr = await proxy(dyn)
    answer = await exchange(dr.port, _get(b"/h", host=host))
    assert answer.status == 200, answer.data[:300]
    await _forwarded(a)
    assert _host_of(a) == host  # forwarded as sent (passHostHeader)
    assert catch_all.received == b""


async def test_http10_without_host_never_matches_a_host_router(proxy, pair):  # noqa: F811
    """An HTTP/1.0 request may omit Host (RFC 1945). aiohttp's ``request.host`` then falls back to the
    socket's local address, so a proxy routing on it would hand such a request to a ``Host(`127.0.0.1`)``
    router (an admin UI bound "to localhost only"), to any client that can reach the port. As in Traefik
    (an empty host never matches ``Host``), only a host-less rule (here ``PathPrefix(`/`)``) matches it;
    with no such rule it is a 404."""
    ip_backend, catch_all = pair
    dr = await proxy(routers(("ip", "Host(`127.0.0.1`)", "si"), ("all", "PathPrefix(`/`)", "sc"),
                             services={"si": [ip_backend.url], "sc": [catch_all.url]}))  # fmt: skip
    answer = await exchange(dr.port, _get(b"/v", host=None, version=b"1.0"))
    assert answer.status == 200, answer.data[:300]
    await _forwarded(catch_all)
    assert _lines(catch_all) == [b"GET /v HTTP/1.1"]
    assert ip_backend.received == b""
    dr.write_dynamic(routers(("ip", "Host(`127.0.0.1`)", "si"), services={"si": [ip_backend.url]}))

    async def only_ip_router() -> bool:
        return (await exchange(dr.port, _get(b"/probe", host=b"other.test"))).status == 404

    await wait_for(only_ip_router, timeout=10)
    answer = await exchange(dr.port, _get(b"/v", host=None, version=b"1.0"))
    assert answer.status == 404, answer.data[:300]
    assert ip_backend.received == b""


# ---------------------------------------------------------------------------------------------- paths

# (raw target, the normalised path both the router and the backend must see)
TRAVERSALS = [
    pytest.param(b"/public/../admin/x", b"/admin/x", id="dot-dot-CVE-2021-41773-shape"),
    pytest.param(b"/public/%2e%2e/admin/x", b"/admin/x", id="encoded-dot-dot-CVE-2021-42013-shape"),
    pytest.param(b"/public/.%2E/admin/x", b"/admin/x", id="half-encoded-dot-dot-CVE-2021-42013"),
    pytest.param(b"/%2e%2e/admin/x", b"/admin/x", id="encoded-dot-dot-above-root"),
    pytest.param(b"/./admin/./x", b"/admin/x", id="dot-segments-RFC3986-5.2.4"),
    pytest.param(b"//admin/x", b"/admin/x", id="duplicate-slash-nginx-merge_slashes"),
    pytest.param(b"/admin//x", b"/admin/x", id="inner-duplicate-slash-Traefik-sanitizePath"),
    pytest.param(b"/public//..//admin/x", b"/admin/x", id="slashes-around-dot-dot"),
    pytest.param(b"/%61dmin/%78", b"/admin/x", id="encoded-unreserved-RFC3986-2.3"),
]


@pytest.mark.parametrize(("target", "path"), TRAVERSALS)
async def test_path_is_normalised_once_and_routed_as_forwarded(proxy, pair, target, path):  # noqa: F811
    """Traefik v3.6+'s request-path handling (its "request path" security page; GHSA-gm3x-23wp-hc2c): decode
    unreserved escapes (RFC 3986 section 2.3), remove dot segments (section 5.2.4, also encoded ones:
    Apache's CVE-2021-41773/42013) and duplicate slashes (nginx's merge_slashes; Traefik's sanitizePath),
    then route AND forward that one path. The ``/admin`` router's backend gets the cleaned path; the
    catch-all's backend, which would clean it the same way itself, gets nothing."""
    admin, public = pair
    dr = await proxy(routers(("admin", "PathPrefix(`/admin`)", "sa"), ("all", "PathPrefix(`/`)", "sp"),
                             services={"sa": [admin.url], "sp": [public.url]}))  # fmt: skip
    answer = await exchange(dr.port, _get(target))
    assert answer.status == 200, answer.data[:300]
    await _forwarded(admin)
    assert _lines(admin) == [b"GET " + path + b" HTTP/1.1"]
    assert public.received == b""


# (encoded character, its allowEncoded* key)
ENCODED = [
    pytest.param(b"%2F", "allowEncodedSlash", id="slash-GHSA-gm3x-23wp-hc2c"),
    pytest.param(b"%2f", "allowEncodedSlash", id="lower-slash-GHSA-gm3x-23wp-hc2c"),
    pytest.param(b"%5C", "allowEncodedBackSlash", id="backslash-IIS-Tomcat-path-separator"),
    pytest.param(b"\\", "allowEncodedBackSlash", id="literal-backslash-Go-sends-it-as-%5C"),
    pytest.param(b"%00", "allowEncodedNullCharacter", id="nul-CWE-158"),
    pytest.param(b"%3B", "allowEncodedSemicolon", id="semicolon-Tomcat-path-parameters"),
    pytest.param(b"%23", "allowEncodedHash", id="hash-fragment-confusion"),
]
# Allowed unless refused (as in Traefik 3.7): ordinary in file names, and no routing ambiguity once decoded.
ENCODED_ALLOWED = [
    pytest.param(b"%25", "allowEncodedPercent", id="percent-double-decoding-CWE-174"),
    pytest.param(b"%3F", "allowEncodedQuestionMark", id="question-mark-path-query-confusion"),
]


@pytest.mark.parametrize(("enc", "key"), ENCODED)
async def test_encoded_reserved_characters_are_refused_by_default(proxy, pair, tmp_path, enc, key):  # noqa: F811
    """Traefik's GHSA-gm3x-23wp-hc2c / CVE-2025-66490: ``/admin%2F`` skips a router guarding ``/admin/``
    while a backend that decodes ``%2F`` serves ``/admin/``. dockroute refuses the path's encoded
    ``/ \\ NUL ; #`` with 400 (as Traefik 3.6.4's default and its encodedCharacters middleware do),
    checking the path only, not the query; ``entryPoints.<ep>.http.encodedCharacters.<key>: true`` lets the
    character through, forwarded still encoded (never decoded on the way)."""
    admin, public = pair
    dyn = routers(("admin", "PathPrefix(`/admin/`)", "sa"), ("all", "PathPrefix(`/`)", "sp"),
                  services={"sa": [admin.url], "sp": [public.url]})  # fmt: skip
    dr = await proxy(dyn, static=_static(tmp_path))
    answer = await exchange(dr.port, _get(b"/admin" + enc + b"x"))
    assert answer.status == 400 and answer.closed, answer.data[:300]
    assert b"%" not in answer.body  # fixed text, nothing of the path echoed
    # one rate-limited line names the key that allows it (Traefik >= 3.6.7 allows them all by default)
    await wait_for(lambda: f"entryPoints.web.http.encodedCharacters.{key}" in dr.log(), timeout=5)
    ok = await exchange(dr.port, _get(b"/q?v=" + enc))  # the query is not checked
    assert ok.status == 200, ok.data[:300]
    await _forwarded(public)
    assert _lines(public) == [b"GET /q?v=" + enc + b" HTTP/1.1"]
    assert admin.received == b""
    await dr.stop()

    public.received.clear()
    allowed = await proxy(dyn, static=_static(tmp_path, {"encodedCharacters": {key: True}}))
    answer = await exchange(allowed.port, _get(b"/admin" + enc + b"x"))
    assert answer.status == 200, answer.data[:300]
    await _forwarded(public)
    assert _lines(public) == [b"GET /admin" + enc.upper() + b"x HTTP/1.1"]  # still encoded
    assert admin.received == b""


@pytest.mark.parametrize(("enc", "key"), ENCODED_ALLOWED)
async def test_encoded_percent_and_question_mark_pass_unless_refused(proxy, pair, tmp_path, enc, key):  # noqa: F811
    """``%25`` and ``%3F`` pass by default (Traefik 3.7's default; a file named ``50%.pdf`` is
    ``/50%25.pdf``), forwarded still encoded; ``<key>: false`` refuses them with 400 (the double-decoding
    and path/query confusions of GHSA-gm3x-23wp-hc2c's list, for backends that decode twice)."""
    admin, public = pair
    dyn = routers(("all", "PathPrefix(`/`)", "sp"), services={"sp": [public.url]})
    dr = await proxy(dyn, static=_static(tmp_path))
    answer = await exchange(dr.port, _get(b"/50" + enc + b".pdf"))
    assert answer.status == 200, answer.data[:300]
    await _forwarded(public)
    assert _lines(public) == [b"GET /50" + enc + b".pdf HTTP/1.1"]
    await dr.stop()

    public.received.clear()
    refused = await proxy(dyn, static=_static(tmp_path, {"encodedCharacters": {key: False}}))
    answer = await exchange(refused.port, _get(b"/50" + enc + b".pdf"))
    assert answer.status == 400 and answer.closed, answer.data[:300]
    assert public.received == b""


async def test_encoded_characters_middleware_refuses_per_router(proxy, pair, tmp_path):  # noqa: F811
    """Traefik v3.7's ``encodedCharacters`` middleware (traefik/traefik#12555, after GHSA-gm3x-23wp-hc2c):
    on an entry point that lets ``%2F`` through for one application, another router keeps refusing it
    (each ``allow*`` false by default: 400 before its service is asked), and one of its options lets that
    character through again on that router alone."""
    strict, open_ = pair
    dyn = routers(("strict", "Host(`strict.test`)", "ss"), ("loose", "Host(`loose.test`)", "so"),
                  ("semi", "Host(`semi.test`)", "so"),
                  services={"ss": [strict.url], "so": [open_.url]})  # fmt: skip
    dyn["http"]["routers"]["strict"]["middlewares"] = ["deny"]
    dyn["http"]["routers"]["semi"]["middlewares"] = ["slash-ok"]
    dyn["http"]["middlewares"] = {
        "deny": {"encodedCharacters": {}},
        "slash-ok": {"encodedCharacters": {"allowEncodedSlash": True}},
    }
    allow = {key: True for _, key in (p.values for p in ENCODED + ENCODED_ALLOWED)}
    dr = await proxy(dyn, static=_static(tmp_path, {"encodedCharacters": allow}))
    for enc in (b"%2F", b"%3b", b"%25"):
        answer = await exchange(dr.port, _get(b"/a" + enc + b"b", host=b"strict.test"))
        assert answer.status == 400 and b"%" not in answer.body, answer.data[:300]
    assert (await exchange(dr.port, _get(b"/a%20b?x=%2F", host=b"strict.test"))).status == 200
    await _forwarded(strict)
    assert _lines(strict) == [b"GET /a%20b?x=%2F HTTP/1.1"]
    answer = await exchange(dr.port, _get(b"/a%2Fb", host=b"loose.test"))
    assert answer.status == 200, answer.data[:300]
    answer = await exchange(dr.port, _get(b"/a%2Fb", host=b"semi.test"))
    assert answer.status == 200, answer.data[:300]
    answer = await exchange(dr.port, _get(b"/a%5Cb", host=b"semi.test"))
    assert answer.status == 400, answer.data[:300]
    await wait_for(lambda: len(_lines(open_)) == 2, timeout=5)
    assert _lines(open_) == [b"GET /a%2Fb HTTP/1.1"] * 2


async def test_a_fragment_in_the_request_target_is_refused(proxy, pair):  # noqa: F811
    """A request target never carries a fragment (RFC 9112 section 3.2); Go keeps a raw "#" in the path and
    Traefik answers 400 (its denyFragment, from GHSA-gm3x-23wp-hc2c's fix) rather than let the proxy and the
    backend cut the path in different places."""
    admin, public = pair
    dr = await proxy(routers(("all", "PathPrefix(`/`)", "sp"), services={"sp": [public.url]}))
    answer = await exchange(dr.port, _get(b"/public#/../admin"))
    assert answer.status == 400 and answer.closed, answer.data[:300]
    assert public.received == b""


async def test_strip_prefix_works_on_the_routed_path(proxy, pair):  # noqa: F811
    """stripPrefix must strip from the path that was routed (Traefik's GHSA-gm3x-23wp-hc2c family: a prefix
    stripped off one reading of the path and routed on another). ``/api/../admin`` is ``/admin``: routed
    to the catch-all, never stripped by the /api router into an ``/admin`` at the API backend that no
    router gave it; ``/api//x`` is ``/api/x`` before stripping, so the API backend gets ``/x`` (stripped
    from the raw ``/api//x`` it was ``//x``, a network-path reference); ``/api/..%2Fadmin``, whose decoded
    form climbs out of /api, is refused by default (400) before any router sees it."""
    api, public = pair
    dyn = routers(("api", "PathPrefix(`/api`)", "sa"), ("all", "PathPrefix(`/`)", "sp"),
                  services={"sa": [api.url], "sp": [public.url]})  # fmt: skip
    dyn["http"]["routers"]["api"]["middlewares"] = ["strip"]
    dyn["http"]["middlewares"] = {"strip": {"stripPrefix": {"prefixes": ["/api"]}}}
    dr = await proxy(dyn)
    answer = await exchange(dr.port, _get(b"/api/../admin"))
    assert answer.status == 200, answer.data[:300]
    await _forwarded(public)
    assert _lines(public) == [b"GET /admin HTTP/1.1"]
    assert api.received == b""
    answer = await exchange(dr.port, _get(b"/api//x"))
    assert answer.status == 200, answer.data[:300]
    await _forwarded(api)
    assert _lines(api) == [b"GET /x HTTP/1.1"]
    api.received.clear()
    answer = await exchange(dr.port, _get(b"/api/..%2Fadmin"))
    assert answer.status == 400, answer.data[:300]
    assert api.received == b""


# ---------------------------------------------------------------------------------------------- loops


async def _configure(dr: Dockroute, dynamic: dict[str, Any]) -> None:
    """Write ``dynamic`` (it names the ports dockroute bound: it can only be written once they are known)
    and wait until dockroute has applied it: its routing tables are swapped before that line. The log is
    polled rather than a request, so the first request to the new table (where the entry point's own
    servers are worked out) is the one the test measures."""
    seen = len(dr.log())
    dr.write_dynamic(dynamic)
    want = f"configuration applied: {len(dynamic['http']['routers'])} routers"
    await wait_for(lambda: want in dr.log()[seen:], timeout=10)


@pytest.mark.parametrize(
    ("listen", "server"),
    [
        pytest.param("127.0.0.1", "127.0.0.1", id="same-address"),
        pytest.param("127.0.0.1", "localhost", id="localhost-name"),
        pytest.param("0.0.0.0", "127.0.0.2", id="wildcard-listener-any-local-address"),
    ],
)
async def test_a_service_pointing_back_at_dockroute_answers_508_at_once(proxy, tmp_path, listen, server):  # noqa: F811
    """A service whose server is dockroute's own entry point (a Docker label on the proxy's own container,
    a file config naming ``localhost:80``) makes every request a new request to itself: Traefik loops until
    it runs out of sockets (traefik/traefik#7474-style reports), or answers 502 after a failed connect.
    RFC 5842 section 7.2's 508 Loop Detected is the answer, at once, with no connection to itself."""
    dr = await proxy(static=_static(tmp_path, address=f"{listen}:0"))
    port = dr.port
    await _configure(
        dr, routers(("loop", "Host(`loop.test`)", "s"), services={"s": [f"http://{server}:{port}"]})
    )
    started = time.monotonic()
    answer = await exchange(port, _get(b"/", host=b"loop.test"), timeout=5)
    assert answer.status == 508, answer.data[:300]
    assert time.monotonic() - started < 2
    assert answer.answers == 1


async def test_middlewares_of_a_router_to_itself_still_answer(proxy, tmp_path):  # noqa: F811
    """The HTTP-to-HTTPS catch-all router on the proxy's own container is Traefik's common pattern: its
    service (the container's own address, or a dummy) is never reached because ``redirectScheme`` answers
    first, as does an auth challenge. The loop check is made where a request is about to be sent to a
    server, so those routers keep answering 301/401 and only a request that would really be sent back
    gets the 508; the log names each such router once."""
    dr = await proxy(static=_static(tmp_path))
    port = dr.port
    own = f"http://127.0.0.1:{port}"
    dyn = routers(("redir", "Host(`redir.test`)", "s"), ("auth", "Host(`auth.test`)", "s"),
                  ("loop", "Host(`loop.test`)", "s"), services={"s": [own]})  # fmt: skip
    dyn["http"]["routers"]["redir"]["middlewares"] = ["tohttps"]
    dyn["http"]["routers"]["auth"]["middlewares"] = ["auth"]
    dyn["http"]["middlewares"] = {
        "tohttps": {"redirectScheme": {"scheme": "https", "permanent": True}},
        "auth": {"basicAuth": {"users": ["u:$apr1$H6uskkkW$IgXLP6ewTrSuBkTrqE8wj/"]}},
    }
    await _configure(dr, dyn)
    assert (await exchange(port, _get(b"/a", host=b"redir.test"))).status == 301
    assert (await exchange(port, _get(b"/a", host=b"auth.test"))).status == 401
    assert (await exchange(port, _get(b"/a", host=b"loop.test"))).status == 508
    await wait_for(lambda: "508 Loop Detected" in dr.log(), timeout=5)
    assert dr.log().count(f"server {own} is this entry point itself") == 3  # one per router


async def test_a_router_sending_to_another_entry_point_is_a_chain_not_a_loop(proxy, tmp_path):  # noqa: F811
    """Traefik serves a router on ``web`` whose server is the ``internal`` entry point of the same process
    (two hops, two routers): only the entry point a request came in on counts as itself."""
    backend = await RecordingBackend().start()
    static = _static(tmp_path)
    static["entryPoints"]["internal"] = {"address": "127.0.0.1:0"}
    dr = await proxy(static=static)
    internal = dr.ports["internal"]
    services = {"s-internal": [f"http://127.0.0.1:{internal}"], "s-app": [backend.url]}
    front, back = ("front", "Host(`a.test`)", "s-internal"), ("back", "Host(`a.test`)", "s-app")
    dyn = routers(front, back, services=services)
    dyn["http"]["routers"]["front"]["entryPoints"] = ["web"]
    dyn["http"]["routers"]["back"]["entryPoints"] = ["internal"]
    await _configure(dr, dyn)
    answer = await exchange(dr.port, _get(b"/x", host=b"a.test"))
    assert answer.status == 200, answer.data[:300]
    await wait_for(lambda: b"GET /x HTTP/1.1" in backend.received, timeout=5)
    await backend.stop()
