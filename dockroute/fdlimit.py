"""The process's open-file limit, raised at start as Go raises it.

Every connection, upstream connection and UDP session holds a file descriptor. Many systems start
services with a soft ``RLIMIT_NOFILE`` of 1024 and a much higher hard limit; Go (which Traefik is built
with) raises the soft limit to the hard one at start (``syscall`` package, Go 1.19), so a Traefik that
serves thousands of clients does not run out at 1024. dockroute does the same before anything opens, and
the UDP session cap is then taken from the raised value.
"""

from __future__ import annotations

import logging
import resource

__all__ = ["raise_open_files_limit"]

log = logging.getLogger("dockroute")


def raise_open_files_limit() -> int:
    """Soft ``RLIMIT_NOFILE`` raised to the hard limit; returns the soft limit now in force (logged at
    debug). A limit that cannot be raised (a container's policy) is kept as it is."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (OSError, ValueError) as exc:
            log.debug("open files limit: %s kept, cannot raise it to %s: %s", soft, hard, exc)
    log.debug("open files limit: %s", "unlimited" if soft == resource.RLIM_INFINITY else soft)
    return soft
