"""The provider against the replayed API conversation (tests/kube_replay), for what a mutation of its watch
loop would break: a 4xx answer said as a refusal (status and reason), not as "cannot reach"; a DELETED event
and a relist that drops an object take their routes away; a reconnect after a BOOKMARK asks for the
bookmark's version; an event that changes nothing publishes nothing; namespaces and labelSelector are the
requests' paths and query."""

import asyncio
import logging

import pytest

from discover.kubernetes.settings import IngressEndpoint
from tests.kube_replay.server import running_provider, wait_open
from tests.polling import wait_for

FORBIDDEN = (
    'ingresses.networking.k8s.io is forbidden: User "system:serviceaccount:dr:dockroute" cannot list '
    'resource "ingresses" in API group "networking.k8s.io" at the cluster scope'
)


@pytest.mark.parametrize(
    ("code", "reason", "message", "hint"),
    [
        (403, "Forbidden", FORBIDDEN, "add the RBAC rule: list and watch on ingresses"),
        (401, "Unauthorized", "Unauthorized", "the credentials are not accepted"),
        (400, "BadRequest", "unable to parse requirement", "labelSelector"),
    ],
)
async def test_a_4xx_answer_is_an_error_with_status_and_reason_said_once(
    replay, caplog, code, reason, message, hint
):
    replay.refuse["ingresses"] = (code, reason, message)
    with caplog.at_level(logging.INFO, "dockroute.kubernetes"):
        async with running_provider(replay, (0.02, 0.05)) as (provider, published):
            await wait_for(lambda: len(replay.calls("ingresses", watch=False)) >= 4, timeout=10)
            refused = [r for r in caplog.records if "refuses to list/watch ingresses" in r.getMessage()]
            assert len(refused) == 1 and refused[0].levelno == logging.ERROR  # once, though retried
            line = refused[0].getMessage()
            assert f"{code} {message}" in line and hint in line
            assert not any("cannot reach" in r.getMessage() for r in caplog.records)
            assert not published  # never routes without the Ingresses
            del replay.refuse["ingresses"]  # the RBAC rule added: the next retry lists
            await wait_for(lambda: published, timeout=30)


async def test_routes_are_published_before_the_status_patches_are_answered(replay):
    # a slow API server holds every status PATCH: the routes must not wait for it
    replay.patch_gate = asyncio.Event()
    endpoint = IngressEndpoint(published_service="dockroute/dockroute")
    async with running_provider(replay, (0.02, 0.05), ingress_endpoint=endpoint) as (provider, published):
        await wait_for(lambda: published and replay.patches(), timeout=30)
        assert provider.status_updates == 0  # the PATCH is still unanswered, the routes are out already
        replay.patch_gate.set()
        await wait_for(lambda: provider.status_updates >= 1)


async def test_deleted_events_take_the_routes_away(replay):
    async with running_provider(replay, (0.02, 0.05)) as (provider, published):
        await wait_for(lambda: published, timeout=30)
        assert "shop-legacy-legacy-example-test-exact" in published[-1].routers
        await wait_open(replay, "ingresses")
        replay.play("delete-legacy")  # the Ingress is deleted: its router goes
        await wait_for(lambda: "shop-legacy-legacy-example-test-exact" not in published[-1].routers)
        assert "shop-web-shop-example-test" in published[-1].routers
        replay.play("modify-ingress")  # /v2 → the api Service, whose one EndpointSlice is then deleted
        await wait_for(lambda: "shop-web-shop-example-test-v2" in published[-1].routers)
        await wait_open(replay, "endpointslices")
        replay.play("delete-api-slice")
        await wait_for(lambda: "shop-web-shop-example-test-v2" not in published[-1].routers)
        assert "shop-api-80" not in published[-1].services  # no endpoints left (allowEmptyServices off)


async def test_a_relist_drops_what_the_new_list_no_longer_has(replay):
    # ingresses.list.2.json has no "legacy": after the 410 relist its router must go, not linger
    async with running_provider(replay, (0.02, 0.05)) as (provider, published):
        await wait_for(lambda: published, timeout=30)
        assert "shop-legacy-legacy-example-test-exact" in published[-1].routers
        await wait_open(replay, "ingresses")
        replay.play("expire-ingresses")
        await wait_for(lambda: "shop-late-late-example-test" in published[-1].routers)
        assert "shop-legacy-legacy-example-test-exact" not in published[-1].routers
        assert len(replay.calls("ingresses", watch=False)) == 2


async def test_a_reconnect_after_a_bookmark_asks_for_the_bookmarks_version(replay):
    # the first ingresses watch gets a BOOKMARK at 1050 (open.json), then its connection is cut
    async with running_provider(replay, (0.02, 0.05)) as (provider, published):
        await wait_for(lambda: published, timeout=30)
        await wait_open(replay, "ingresses")
        replay.play("drop-ingresses")
        await wait_open(replay, "ingresses", 2)
        versions = [w.query["resourceVersion"] for w in replay.calls("ingresses", watch=True)]
        assert versions == ["1042", "1050"]
        assert len(replay.calls("ingresses", watch=False)) == 1  # a drop is no reason to list again


async def test_an_event_that_changes_nothing_publishes_nothing(replay):
    # the nginx-class Ingress "other" is modified: a rebuild, the same configuration, nothing published
    async with running_provider(replay, (0.02, 0.05)) as (provider, published):
        await wait_for(lambda: published, timeout=30)
        await wait_open(replay, "ingresses")
        rebuilds = provider.rebuilds
        replay.play("touch-other")
        await wait_for(lambda: provider.rebuilds > rebuilds)
        assert len(published) == 1
        assert provider._stores["ingresses"]["shop/other"].resource_version == "1072"  # it was applied


async def test_namespaces_and_label_selector_are_the_requests(replay):
    async with running_provider(
        replay, (0.02, 0.05), namespaces=("shop",), label_selector="app in (web)"
    ) as (provider, published):
        await wait_for(lambda: published, timeout=30)
        for kind in ("ingresses", "services", "endpointslices", "secrets"):
            await wait_for(lambda kind=kind: replay.calls(kind, watch=True, namespace="shop"))
        lists = {r.path: r.query for r in replay.requests if r.method == "GET" and "watch" not in r.query}
        assert lists == {
            "/apis/networking.k8s.io/v1/namespaces/shop/ingresses": {"labelSelector": "app in (web)"},
            "/api/v1/namespaces/shop/services": {},
            "/apis/discovery.k8s.io/v1/namespaces/shop/endpointslices": {},
            "/api/v1/namespaces/shop/secrets": {"labelSelector": "owner!=helm"},
            "/apis/networking.k8s.io/v1/ingressclasses": {},
        }
        watches = {r.path: r.query.get("labelSelector") for r in replay.requests if "watch" in r.query}
        assert watches["/apis/networking.k8s.io/v1/namespaces/shop/ingresses"] == "app in (web)"
        assert watches["/api/v1/namespaces/shop/services"] is None
        assert watches["/api/v1/namespaces/shop/secrets"] == "owner!=helm"
