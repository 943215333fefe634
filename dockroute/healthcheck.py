"""``dockroute healthcheck``: Traefik's ``healthcheck`` command, and ``--container`` for the image's
``HEALTHCHECK``.

A Docker ``HEALTHCHECK`` runs a new process in the container: it shares the environment (compose
``environment:``) but not the command line, and users configure dockroute by compose ``command:`` flags.
``--container`` therefore reads the static flags from PID 1's command line (the proxy itself), so the
check asks the same entry points the proxy opened. Without ``ping`` configured it cannot ask for an
HTTP answer, so it checks that every entry point accepts a TCP connection and says so.

The engine runs the ``HEALTHCHECK`` as root with the default capabilities, while what it reads (PID 1's
command line, a configuration file in ``/data``) may be written by the unprivileged proxy. So, run as
root, ``--container`` first becomes the user PID 1 runs as (uid 65532 in the image) before reading any of
it: an unprivileged process must not steer a root one.
"""

from __future__ import annotations

import http.client
import os
import socket
import sys
import time

from dockroute.static import StaticConfig, StaticConfigError, load_static, split_config_flag

HEALTHCHECK_TIMEOUT = 5.0  # seconds, Traefik's
PID1_CMDLINE = "/proc/1/cmdline"
PID1_STATUS = "/proc/1/status"  # written by the kernel: PID 1 cannot forge its own ids there
# What may run the proxy as PID 1: its script, Traefik's name (the entry point maps it), the entry point.
_LAUNCHERS = ("dockroute", "traefik", "docker-entrypoint")
NO_PING_NOTE = "no ping configured: enable --ping for an HTTP check"


class CmdlineError(Exception):
    """PID 1's command line does not show how dockroute was started."""


def flags_from_cmdline(raw: bytes) -> list[str]:
    """The arguments given to dockroute, from a ``/proc/<pid>/cmdline`` (NUL-separated argv).

    Forms met in the image: ``python /opt/dockroute/bin/dockroute ARGS`` (the script's shebang, after the
    entry point's exec), ``python -m dockroute ARGS``, and with ``docker run --init``
    ``docker-init -- docker-entrypoint [dockroute|traefik] ARGS``. Raises :class:`CmdlineError` when none
    of them is there: a health check must not quietly check a configuration the proxy does not run."""
    argv = [a.decode("utf-8", "surrogateescape") for a in raw.split(b"\0")]
    if argv and argv[-1] == "":
        argv.pop()
    for i, arg in enumerate(argv):
        name = os.path.basename(arg)
        is_module = arg == "dockroute" and i > 0 and argv[i - 1] == "-m"
        if name in _LAUNCHERS and (is_module or "/" in arg or i == 0 or argv[i - 1] == "--"):
            rest = argv[i + 1 :]
            if name == "docker-entrypoint" and rest[:1] in (["dockroute"], ["traefik"]):
                rest = rest[1:]
            return rest
    shown = " ".join(argv)[:200] or "(empty)"
    raise CmdlineError(f"PID 1 is not dockroute ({shown})")


def read_pid1_flags(path: str | None = None) -> list[str]:
    """:func:`flags_from_cmdline` of PID 1 (or of the file ``path``)."""
    path = path or PID1_CMDLINE
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise CmdlineError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return flags_from_cmdline(raw)


def pid1_ids(path: str | None = None) -> tuple[int, int, list[int]]:
    """PID 1's real uid, real gid and supplementary groups, from ``/proc/1/status``."""
    fields: dict[str, list[int]] = {}
    with open(path or PID1_STATUS, encoding="ascii") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("Uid", "Gid", "Groups"):
                fields[key] = [int(v) for v in value.split()]
    return fields["Uid"][0], fields["Gid"][0], fields.get("Groups", [])


def drop_to_pid1_user(status: str | None = None) -> None:
    """Run as root, become PID 1's user (groups, then gid, then uid: each step needs the one after it
    not yet done) when that user is not root. PID 1 running as root (``DOCKROUTE_RUN_AS_ROOT``, or
    capabilities dropped so the entry point kept root) means nothing less privileged wrote what is read;
    a check without the capabilities to change user (``cap_drop``) stays as it is rather than fail."""
    if os.getuid() != 0:
        return
    try:
        uid, gid, groups = pid1_ids(status)
    except (OSError, KeyError, ValueError, IndexError):
        return
    if uid == 0:
        return
    try:
        os.setgroups(groups)
        os.setgid(gid)
        os.setuid(uid)
    except PermissionError:
        return


def _host_port(address: str) -> tuple[str, int]:
    """Where to connect for an entry point's listen address: its host, or this host's loopback when it
    listens on every address (``:80``, ``0.0.0.0:80``, ``[::]:80``)."""
    host, _, port = address.removesuffix("/tcp").rpartition(":")
    host = host.strip("[]")
    if host == "":
        host = "localhost"  # as Traefik's client does: IPv4 or IPv6, whichever answers
    elif host == "0.0.0.0":
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return host, int(port)


def ping(static: StaticConfig) -> tuple[bool, str]:
    """``HEAD /ping`` on the ping entry point, as Traefik's healthcheck does: healthy on 200."""
    assert static.ping is not None
    ep = next((e for e in static.entry_points if e.name.lower() == static.ping.entry_point.lower()), None)
    if ep is None:
        return False, f"Error calling healthcheck: ping: missing {static.ping.entry_point} entry point"
    url = f"http://{ep.address}/ping"
    host, port = _host_port(ep.address)
    conn = http.client.HTTPConnection(host, port, timeout=HEALTHCHECK_TIMEOUT)
    try:
        conn.request("HEAD", "/ping")
        resp = conn.getresponse()
    except (OSError, http.client.HTTPException) as exc:
        return False, f"Error calling healthcheck: Head {url!r}: {exc or type(exc).__name__}"
    finally:
        conn.close()
    if resp.status != 200:
        return False, f"Bad healthcheck status: {resp.status} {resp.reason}".rstrip()
    return True, f"OK: {url}"


def entry_points_accept(static: StaticConfig, timeout: float = HEALTHCHECK_TIMEOUT) -> tuple[bool, str]:
    """Without ping: every entry point accepts a TCP connection (one deadline for all of them)."""
    deadline = time.monotonic() + timeout
    checked: list[str] = []
    for ep in static.entry_points:
        host, port = _host_port(ep.address)
        try:
            with socket.create_connection((host, port), timeout=max(0.1, deadline - time.monotonic())):
                checked.append(f"{ep.name} ({ep.address})")
        except OSError as exc:
            why = exc.strerror or str(exc) or type(exc).__name__
            where = f"entry point {ep.name} ({ep.address})"
            return False, f"Error calling healthcheck: {where}: {why} ({NO_PING_NOTE})"
    return True, f"OK: entry points {', '.join(checked)} accept TCP connections ({NO_PING_NOTE})"


def healthcheck(args: list[str], cmdline: str | None = None, status: str | None = None) -> int:
    """``dockroute healthcheck [--container]``: 0 when healthy, 1 otherwise (a configuration error
    included: a health check only says healthy or not), with one line on stdout saying why.

    Without ``--container``: Traefik's command (``HEAD /ping`` with this process's flags; ping required).
    With it: PID 1's user (:func:`drop_to_pid1_user`), PID 1's flags first, then these; without ping, the
    TCP check of every entry point. ``cmdline`` and ``status`` stand for PID 1's files in tests."""
    container = "--container" in args
    args = [a for a in args if a != "--container"]
    if container:
        drop_to_pid1_user(status)
    try:
        if container:
            args = [*read_pid1_flags(cmdline), *args]
        config_file, rest = split_config_flag(args)
        static = load_static(rest, os.environ, config_file=config_file)
    except CmdlineError as exc:
        return _say(False, f"Error calling healthcheck: {exc}")
    except StaticConfigError as exc:
        return _say(False, f"Error calling healthcheck: configuration error: {exc}")
    if static.ping is not None:
        return _say(*ping(static))
    if container:
        return _say(*entry_points_accept(static))
    return _say(False, "Error calling healthcheck: please enable `ping` to use health check")


def _say(ok: bool, line: str) -> int:
    """Print the one line the engine keeps in ``State.Health.Log`` (flushed: the process may be killed at
    its timeout) and turn ``ok`` into the exit status Docker reads: 0 healthy, 1 unhealthy."""
    print(line)
    sys.stdout.flush()
    return 0 if ok else 1
