"""The fix to print when the Docker engine cannot be reached, for the cases a user can fix on the spot.

A proxy in a container meets two of them on its first start: the socket is not mounted, or it is mounted
but this process is not in the group that owns it (the image runs unprivileged). "cannot reach" alone
would leave the user reading the SDK's traceback text; the hint names the exact option to change.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable

__all__ = ["unreachable_hint"]


def _errno_in_chain(exc: BaseException | None, wanted: int) -> bool:
    """An OSError with ``wanted`` anywhere in the exception's causes or arguments (the SDK wraps
    requests' ConnectionError, which wraps urllib3's, which carries the OSError as an argument)."""
    seen: set[int] = set()
    stack: list[object] = [exc]
    while stack:
        item = stack.pop()
        if isinstance(item, tuple):
            stack.extend(item)
            continue
        if not isinstance(item, BaseException) or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, OSError) and item.errno == wanted:
            return True
        stack.extend((item.__cause__, item.__context__, *item.args))
    return False


def unreachable_hint(
    endpoint: str,
    exc: BaseException,
    stat_path: Callable[[str], os.stat_result] = os.stat,
    uid: int | None = None,
    groups: list[int] | None = None,
) -> str:
    """One sentence with the fix, or "" when the cause is not one of these (engine down, remote host)."""
    if not endpoint.startswith("unix://"):
        return ""
    path = endpoint.removeprefix("unix://")
    try:
        st = stat_path(path)
    except FileNotFoundError:
        return (
            f"{path} does not exist: mount the engine's socket (-v /var/run/docker.sock:{path}:ro), or set "
            "providers.docker.endpoint (e.g. tcp://socket-proxy:2375)"
        )
    except OSError:
        return ""
    if not _errno_in_chain(exc, errno.EACCES) or not stat.S_ISSOCK(st.st_mode):
        return ""
    uid = os.getuid() if uid is None else uid
    groups = sorted(set(os.getgroups()) | {os.getgid()}) if groups is None else groups
    mode = stat.S_IMODE(st.st_mode)
    if st.st_uid == uid:
        return ""
    if st.st_gid in groups:
        if mode & stat.S_IWGRP:
            return ""
        # in the group, but the group may not write (root:root 0600 or 0755): connecting needs write
        return (
            f"permission denied: {path} (owner {st.st_uid}, group {st.st_gid}, mode {mode:o}) gives its "
            f"group no write access, so this process (uid {uid}, groups {','.join(map(str, groups))}) cannot "
            "connect although it is in that group: make the socket group-writable (chmod g+w on the host), "
            "use a socket proxy (providers.docker.endpoint=tcp://...), or run as root "
            "(DOCKROUTE_RUN_AS_ROOT=true in the image)"
        )
    return (
        f"permission denied: {path} belongs to group {st.st_gid} (mode {mode:o}) and "
        f"this process (uid {uid}, groups {','.join(map(str, groups))}) is not in it: add that group "
        f'(compose: group_add: ["{st.st_gid}"]; docker run --group-add {st.st_gid}), or leave out `user:` so '
        "the image's entry point adds it"
    )
