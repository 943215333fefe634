"""DNS-01 end to end, the homelab case, through the real dockroute process: a missing credential of the
DNS provider stops the start with one line naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml

from tests.integration.harness import ROOT

pytestmark = pytest.mark.integration


def test_a_missing_credential_variable_stops_the_start_naming_it(tmp_path, monkeypatch):
    static = {
        "entryPoints": {"websecure": {"address": "127.0.0.1:0"}},
        "providers": {"file": {"filename": str(tmp_path / "dynamic.yml")}},
        "certificatesResolvers": {
            "le": {
                "acme": {
                    "email": "admin@example.com",
                    "storage": str(tmp_path / "acme.json"),
                    "caServer": "https://127.0.0.1:1/dir",
                    "dnsChallenge": {"provider": "rfc2136"},
                }
            }
        },
    }
    (tmp_path / "dockroute.yml").write_text(yaml.safe_dump(static))
    (tmp_path / "dynamic.yml").write_text("{}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RFC2136_", "DOCKROUTE_"))}
    env.update(
        PYTHONPATH=str(ROOT),
        RFC2136_TSIG_KEY="dockroute-test",
        RFC2136_TSIG_SECRET="c2VjcmV0",
        RFC2136_TSIG_ALGORITHM="hmac-sha256.",
    )
    done = subprocess.run(
        [sys.executable, "-m", "dockroute", "--config", str(tmp_path / "dockroute.yml")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    stderr = done.stderr.decode(errors="replace")
    assert done.returncode == 2, (done.returncode, stderr)
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "RFC2136_NAMESERVER" in lines[0] and "certificatesResolvers.le.acme.dnsChallenge" in lines[0]
