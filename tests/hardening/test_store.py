"""acme.json survives ``kill -9`` at any moment of a write.

From Traefik's own history: acme.json left empty or truncated after a crash or a full disk, the
certificates lost and re-issued into Let's Encrypt's rate limits (traefik/traefik#2290, #3487). A process
writing through the real :class:`acme_client.storage.AcmeStorage` is killed with SIGKILL at random moments;
each time the file must load with the old or the new content, never be found corrupt (moved aside), and
the temporary files a kill leaves behind must neither break the next load or write nor stay forever (they
hold private keys).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from acme_client.storage import AcmeStorage
from router.tls import self_signed

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
MAX_CERTS = 40  # the file grows to ~150 KB: a write takes long enough to be cut in the middle

WRITER = """
import sys
import time
from pathlib import Path
from acme_client.storage import AcmeStorage, ResolverState, StoredCertificate

path, max_certs = sys.argv[1], int(sys.argv[4])
cert, key = Path(sys.argv[2]).read_bytes(), Path(sys.argv[3]).read_bytes()
certs = [StoredCertificate(f"d{i}.test", (), cert, key) for i in range(max_certs)]
store = AcmeStorage(path)
n = 0
while True:
    store.save({"le": ResolverState(certificates=tuple(certs[: 1 + n % max_certs]))})
    if n == 0:
        sys.stdout.write("ready\\n")
        sys.stdout.flush()
    n += 1
"""


def _leftovers(folder: Path) -> tuple[list[Path], list[Path]]:
    """(temporary files, files moved aside as corrupt) next to acme.json."""
    names = sorted(folder.iterdir())
    return [p for p in names if p.name.endswith(".tmp")], [p for p in names if ".corrupt-" in p.name]


def test_kill_9_while_writing_acme_json_leaves_a_file_that_loads(tmp_path):
    """traefik/traefik#2290 and #3487 (acme.json emptied/corrupted by a crash while writing): every kill
    leaves a loadable file with one of the written states; stale temporary files are removed later."""
    pair = self_signed("d.test", ("d.test",))
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(pair.cert_pem)
    key_file.write_bytes(pair.key_pem)
    folder = tmp_path / "store"
    folder.mkdir()
    path = folder / "acme.json"
    rng = random.Random()
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    seen: set[int] = set()
    for _ in range(30):
        args = [sys.executable, "-c", WRITER, str(path), str(cert_file), str(key_file), str(MAX_CERTS)]
        child = subprocess.Popen(args, stdout=subprocess.PIPE, env=env, cwd=str(tmp_path))
        try:
            assert child.stdout is not None
            assert child.stdout.readline() == b"ready\n"  # one whole write done: the file exists
            # the fault itself: a random moment of the write loop (read, encode, write, fsync, rename)
            time.sleep(rng.uniform(0, 0.15))
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
            if child.stdout is not None:
                child.stdout.close()
        state = AcmeStorage(str(path)).load()
        mains = [c.main for c in state["le"].certificates]
        assert mains == [f"d{i}.test" for i in range(len(mains))] and mains, mains
        seen.add(len(mains))
        assert not _leftovers(folder)[1], "a kill left acme.json corrupt: it was moved aside"
    assert len(seen) > 1, "the writer never got past its first states: the kills did not hit writes"

    # temporary files a kill left behind: harmless to a load or a write, removed once stale
    temps, _ = _leftovers(folder)
    stray = folder / ".acme.json.killed.tmp"
    stray.write_bytes(b'{"le": {"Certif')  # what a kill in the middle of writing a temporary file leaves
    os.chmod(stray, 0o600)
    for p in [*temps, stray]:
        os.utime(p, (0, 0))  # long ago
    fresh = folder / ".acme.json.other-writer.tmp"  # a temporary file being written right now: kept
    fresh.write_bytes(b"{")
    store = AcmeStorage(str(path))
    before = store.load()
    store.save({"other": before["le"]})
    after = AcmeStorage(str(path)).load()
    assert after["le"] == before["le"] and after["other"] == before["le"]
    temps, corrupt = _leftovers(folder)
    assert temps == [fresh] and not corrupt
