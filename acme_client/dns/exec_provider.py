"""lego's ``exec``: a program of yours writes the records, so any DNS host works without new code.

As lego runs it: ``$EXEC_PATH present <fqdn> <value>`` and ``$EXEC_PATH cleanup <fqdn> <value>`` (the fqdn
absolute, with its trailing dot), or with ``EXEC_MODE=RAW`` the challenge itself, ``$EXEC_PATH present --
<domain> <token> <keyAuth>`` (``--`` because a token may start with ``-``). Exit status 0 is success;
any other is a DnsError quoting the end of what the program wrote to stderr (or stdout). The program
inherits dockroute's environment, as under lego.

One difference from lego: the program gets :data:`SCRIPT_TIMEOUT` seconds, then it and its children are
killed and the call fails (lego waits forever, and a hung program would hold the resolver's worker).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess

from acme_client.dns.base import DnsConfigError, DnsError, ProviderConfig, ProviderSpec, TxtRecord
from acme_client.dns.credentials import raw_mode

__all__ = ["SCRIPT_TIMEOUT", "SPEC", "ExecProvider"]

log = logging.getLogger("dockroute.acme")

NAME = "exec"
SCRIPT_TIMEOUT = 120.0  # seconds
_TAIL = 500  # characters of the program's output quoted in an error
_AFTER_KILL = 5.0  # seconds to collect a killed program's output (see _after_kill)


class ExecProvider:
    """Runs the program for each record (blocking)."""

    def __init__(self, config: ProviderConfig, timeout: float = SCRIPT_TIMEOUT) -> None:
        self._program = config.get("EXEC_PATH") or ""
        if not os.path.isfile(self._program) or not os.access(self._program, os.X_OK):
            raise DnsConfigError(f"EXEC_PATH: {self._program!r} is not an executable file", "EXEC_PATH")
        self._raw = raw_mode(config, "EXEC_MODE")
        self._timeout = timeout

    def present(self, record: TxtRecord) -> None:
        self._run("present", record)

    def cleanup(self, record: TxtRecord) -> None:
        self._run("cleanup", record)

    def _run(self, command: str, record: TxtRecord) -> None:
        if self._raw:
            args = [command, "--", record.domain, record.token, record.key_authorization]
        else:
            args = [command, record.fqdn, record.value]
        what = f"{NAME}: {self._program} {command} {record.fqdn if not self._raw else record.domain}"
        try:
            # its own session, so a timeout kills the children that hold its pipes too
            proc = subprocess.Popen(
                [self._program, *args],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            raise DnsError(f"{what}: could not start: {exc.strerror or exc}") from None
        try:
            out, err = proc.communicate(timeout=self._timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            out, err = _after_kill(proc)
            killed = f"still running after {self._timeout:g} s, killed"
            raise DnsError(f"{what}: {killed}{_tail(err, out)}") from None
        for line in (out + err).decode(errors="replace").splitlines():
            if line.strip():
                log.info("%s: %s", NAME, line)  # lego logs the program's output too
        if proc.returncode != 0:
            code = proc.returncode
            status = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
            raise DnsError(f"{what}: {status}{_tail(err, out)}")


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _after_kill(proc: subprocess.Popen[bytes]) -> tuple[bytes, bytes]:
    """What the killed program wrote, within :data:`_AFTER_KILL` seconds: a child that left its session
    (``setsid``, a daemonizing helper) escapes the group kill and may hold the pipes open for ever, and the
    worker thread must not wait for it. Then the pipes are closed and its output given up."""
    try:
        return proc.communicate(timeout=_AFTER_KILL)
    except subprocess.TimeoutExpired:
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
        proc.wait()  # the program itself is dead (killed with its group): reaped at once
        return b"", b""


def _tail(err: bytes, out: bytes) -> str:
    """``: <the last characters of stderr, else stdout>``, on one line; empty when both are."""
    text = " ".join((err or out).decode(errors="replace").split())
    if not text:
        return ""
    return ": " + (text if len(text) <= _TAIL else "..." + text[-_TAIL:])


SPEC = ProviderSpec(
    name=NAME,
    required=(("EXEC_PATH",),),
    optional=("EXEC_MODE", "EXEC_PROPAGATION_TIMEOUT", "EXEC_POLLING_INTERVAL"),
    prefixes=("EXEC_",),
    build=ExecProvider,
)
