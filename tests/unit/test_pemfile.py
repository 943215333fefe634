"""PEM handed to OpenSSL as a path, without a private key on a disk."""

from __future__ import annotations

import os
import ssl
import tempfile

import pytest

from router.pemfile import pem_file
from router.tls import self_signed, server_context

needs_memfd = pytest.mark.skipif(not hasattr(os, "memfd_create"), reason="no memfd on this system")


def _no_disk(*args, **kwargs):
    raise AssertionError("a temporary file was made on disk")


@needs_memfd
def test_the_pem_lives_in_memory_and_is_gone_after_the_block():
    with pem_file(b"-----BEGIN X-----\n") as path:
        assert path.startswith("/proc/self/fd/")
        with open(path, "rb") as f:
            assert f.read() == b"-----BEGIN X-----\n"
    assert not os.path.exists(path)


@needs_memfd
def test_a_server_context_loads_its_key_without_a_temporary_file(monkeypatch):
    monkeypatch.setattr(tempfile, "mkstemp", _no_disk)
    monkeypatch.setattr(tempfile, "NamedTemporaryFile", _no_disk)
    assert isinstance(server_context(self_signed("a.test", ("a.test",))), ssl.SSLContext)
