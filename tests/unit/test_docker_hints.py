"""The fix printed when the engine's socket cannot be used: missing, or owned by a group we are not in."""

from __future__ import annotations

import errno
import os
import stat

import requests

from discover.docker_hints import unreachable_hint

SOCK = stat.S_IFSOCK | 0o660


def _stat(mode: int = SOCK, gid: int = 105):
    def fake(path: str) -> os.stat_result:
        return os.stat_result((mode, 0, 0, 1, 0, gid, 0, 0, 0, 0))

    return fake


def _sdk_error(code: int) -> Exception:
    """The shape the docker SDK raises: requests' ConnectionError carrying the OSError as an argument."""
    return requests.exceptions.ConnectionError(("Connection aborted.", OSError(code, os.strerror(code))))


def test_permission_denied_names_the_group_and_both_fixes():
    hint = unreachable_hint(
        "unix:///var/run/docker.sock", _sdk_error(errno.EACCES), _stat(), uid=65532, groups=[65532]
    )
    assert "belongs to group 105 (mode 660)" in hint
    assert 'group_add: ["105"]' in hint and "--group-add 105" in hint
    assert "uid 65532" in hint


def test_no_hint_when_already_in_the_group_or_another_error():
    endpoint = "unix:///var/run/docker.sock"
    assert unreachable_hint(endpoint, _sdk_error(errno.EACCES), _stat(), uid=1, groups=[105]) == ""
    assert unreachable_hint(endpoint, _sdk_error(errno.ECONNREFUSED), _stat(), uid=1, groups=[1]) == ""


def test_missing_socket_says_to_mount_it():
    def missing(path: str) -> os.stat_result:
        raise FileNotFoundError(path)

    hint = unreachable_hint("unix:///var/run/docker.sock", _sdk_error(errno.ENOENT), missing)
    assert "does not exist" in hint and "-v /var/run/docker.sock:/var/run/docker.sock:ro" in hint


def test_tcp_endpoints_get_no_hint():
    assert unreachable_hint("tcp://proxy:2375", _sdk_error(errno.EACCES), _stat()) == ""


def test_in_the_group_without_its_write_bit_names_the_mode_not_the_group():
    """Connecting to a socket needs write access: a root:root 0600 or 0755 socket refuses its group too,
    so "add that group" would be no fix."""
    for mode in (0o600, 0o755):
        hint = unreachable_hint(
            "unix:///var/run/docker.sock",
            _sdk_error(errno.EACCES),
            _stat(stat.S_IFSOCK | mode, gid=0),
            uid=65532,
            groups=[0, 65532],
        )
        assert f"(owner 0, group 0, mode {mode:o}) gives its group no write access" in hint
        assert "DOCKROUTE_RUN_AS_ROOT=true" in hint and "socket proxy" in hint
        assert "group_add" not in hint


def test_no_hint_for_the_sockets_owner():
    hint = unreachable_hint(
        "unix:///var/run/docker.sock",
        _sdk_error(errno.EACCES),
        _stat(stat.S_IFSOCK | 0o600),
        uid=0,
        groups=[1],
    )
    assert hint == ""
