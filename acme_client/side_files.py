"""Small files kept beside the store (challenge answers, DNS-01 journal entries), written whole.

A reader in another process may open such a file at any moment: it is written under a temporary name in
the same folder and renamed over the target, so it sees the old file, the new one or none, never half of
one. No fsync: these files only matter while an order runs (the store itself is written durably, in
:mod:`acme_client.storage`). Blocking: worker threads only.
"""

from __future__ import annotations

import os
import tempfile

__all__ = ["replace_file"]


def replace_file(path: str, text: str, tmp_prefix: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` through a temporary ``<tmp_prefix>….tmp`` beside it; raises
    OSError when the folder cannot be written (the temporary file is removed then)."""
    fd, tmp = tempfile.mkstemp(prefix=tmp_prefix, suffix=".tmp", dir=os.path.dirname(path) or ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
