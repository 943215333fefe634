"""The socket-proxy stand-in applies tecnativa/docker-socket-proxy's allow-list (its haproxy.cfg and its
image's defaults), so the homelab example's environment (CONTAINERS, NETWORKS, EVENTS, PING, VERSION,
POST=0) is what decides, in the tests as for users, what dockroute may read."""

from __future__ import annotations

import importlib.util
from pathlib import Path

_SPEC = importlib.util.spec_from_file_location(
    "standin", Path(__file__).resolve().parent / "standin" / "standin.py"
)
standin = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(standin)
allows = standin.proxy_allows

HOMELAB = {"CONTAINERS": "1", "NETWORKS": "1", "EVENTS": "1", "PING": "1", "VERSION": "1", "POST": "0"}


def test_sections_the_example_enables_are_relayed_with_or_without_an_api_version():
    for target in (
        "/containers/json?all=1",
        "/v1.41/containers/json",
        "/v1.41/containers/abc/json",
        "/networks/bridge",
        "/v1.41/events?filters=%7B%7D",
        "/_ping",
        "/v1.41/version",
    ):
        assert allows("GET", target, HOMELAB), target
    assert allows("HEAD", "/_ping", HOMELAB)


def test_sections_left_off_are_refused():
    for target in ("/info", "/v1.41/info", "/images/json", "/volumes", "/services", "/tasks", "/secrets"):
        assert not allows("GET", target, HOMELAB), target
    assert allows("GET", "/info", {**HOMELAB, "INFO": "1"})


def test_the_images_defaults_events_ping_and_version_only():
    assert allows("GET", "/events", {}) and allows("GET", "/_ping", {}) and allows("GET", "/version", {})
    assert not allows("GET", "/containers/json", {})
    assert not allows("GET", "/events", {"EVENTS": "0"})
    assert not allows("GET", "/containers/json", {"CONTAINERS": "yes"})  # HAProxy's bool: an integer


def test_writes_are_refused_unless_post_is_on():
    assert not allows("POST", "/containers/create", HOMELAB)
    assert not allows("DELETE", "/containers/abc", HOMELAB)
    assert allows("POST", "/containers/create", {**HOMELAB, "POST": "1"})
    assert not allows("POST", "/images/create", {**HOMELAB, "POST": "1"})  # IMAGES off
    assert allows("POST", "/v1.41/containers/abc/restart", {"POST": "1", "ALLOW_RESTARTS": "1"})


def test_the_path_is_decoded_and_matched_without_case():
    assert allows("GET", "/%63ontainers/json", HOMELAB)
    assert allows("GET", "/CONTAINERS/json", HOMELAB)
    assert not allows("GET", "/x/y/containers", HOMELAB)  # one segment at most before the section
