"""The built-in CA: its root on disk, the leaves it issues (checked by OpenSSL and by cryptography's
verifier), its renewal loop, and ``dockroute internal-ca root``."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import os
import socket
import ssl
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import verification

from acme_client.internal_ca import (
    BACKDATE,
    InternalCA,
    InternalCAError,
    Root,
    issue_leaf,
)
from acme_client.settings import InternalCASettings


def _ca(tmp_path: Path, **kw) -> InternalCA:
    kw.setdefault("storage", str(tmp_path / "ca"))
    return InternalCA("home", InternalCASettings(**kw), lambda: None)


def _leaf_cert(pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificates(pem)[0]


def _verify(root_pem: bytes, leaf_pem: bytes, name: str) -> None:
    """cryptography's RFC 5280 / CA-Browser-Forum path validation (raises VerificationError)."""
    store = verification.Store([x509.load_pem_x509_certificate(root_pem)])
    subject: verification.Subject
    try:
        subject = verification.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        subject = verification.DNSName(name)
    verifier = verification.PolicyBuilder().store(store).build_server_verifier(subject)
    verifier.verify(_leaf_cert(leaf_pem), [])


def _handshake(tmp_path: Path, root_file: Path, leaf_pem: bytes, key_pem: bytes, name: str) -> None:
    """A real TLS handshake over a socket pair, the client trusting only ``root_file`` (OpenSSL's
    verification, name constraints included). Raises ssl.SSLCertVerificationError when it fails."""
    cert_file, key_file = tmp_path / "leaf.pem", tmp_path / "leaf.key"
    cert_file.write_bytes(leaf_pem)
    key_file.write_bytes(key_pem)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert_file, key_file)
    client_ctx = ssl.create_default_context(cafile=str(root_file))
    a, b = socket.socketpair()
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            with server_ctx.wrap_socket(a, server_side=True) as s:
                s.recv(1)
        except (OSError, ssl.SSLError) as exc:
            errors.append(exc)

    t = threading.Thread(target=serve)
    t.start()
    try:
        with client_ctx.wrap_socket(b, server_hostname=name) as c:
            c.sendall(b"x")
    finally:
        b.close()
        t.join(5)
        a.close()


# -- the root -----------------------------------------------------------------------------------------


def test_the_root_is_created_once_with_safe_modes_and_ca_extensions(tmp_path):
    folder = tmp_path / "ca"
    pem = _ca(tmp_path).ensure_root()
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / "root.key").stat().st_mode) == 0o600
    assert (folder / "root.crt").read_bytes() == pem
    root = x509.load_pem_x509_certificate(pem)
    key = root.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1"
    lifetime = root.not_valid_after_utc - root.not_valid_before_utc
    assert dt.timedelta(days=3650) <= lifetime <= dt.timedelta(days=3660)
    bc = root.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca
    ku = root.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.key_cert_sign and ku.value.crl_sign
    root.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    with pytest.raises(x509.ExtensionNotFound):
        root.extensions.get_extension_for_class(x509.NameConstraints)
    # Read, never replaced: another resolver object, or a restart, gets the very same root.
    assert _ca(tmp_path).ensure_root() == pem
    assert _ca(tmp_path, permitted_domains=("lan",)).ensure_root() == pem


def test_a_root_key_others_may_read_is_refused_with_one_clear_error(tmp_path):
    _ca(tmp_path).ensure_root()
    key = tmp_path / "ca" / "root.key"
    key.chmod(0o644)
    with pytest.raises(InternalCAError, match=r"permissions 644 for .*root.key are too open, please use 600"):
        _ca(tmp_path).ensure_root()


@pytest.mark.parametrize("missing", ["root.crt", "root.key"])
def test_half_a_root_is_refused_and_left_alone(tmp_path, missing):
    _ca(tmp_path).ensure_root()
    (tmp_path / "ca" / missing).unlink()
    other = "root.key" if missing == "root.crt" else "root.crt"
    before = (tmp_path / "ca" / other).read_bytes()
    with pytest.raises(InternalCAError, match=f"exists without {missing}"):
        _ca(tmp_path).ensure_root()
    assert (tmp_path / "ca" / other).read_bytes() == before
    assert not (tmp_path / "ca" / missing).exists()


def test_processes_racing_to_create_the_root_all_get_the_same_one(tmp_path):
    code = (
        "import sys; from acme_client.internal_ca import load_or_create_root as f; "
        "sys.stdout.buffer.write(f(sys.argv[1], 'race').pem)"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "ca")], stdout=subprocess.PIPE)
        for _ in range(4)
    ]
    outputs = {p.communicate(timeout=60)[0] for p in procs}
    assert [p.returncode for p in procs] == [0, 0, 0, 0]
    assert outputs == {(tmp_path / "ca" / "root.crt").read_bytes()}


def test_an_expired_root_is_refused_with_what_to_do(tmp_path):
    from cryptography.hazmat.primitives import hashes, serialization

    _ca(tmp_path).ensure_root()
    folder = tmp_path / "ca"
    key = serialization.load_pem_private_key((folder / "root.key").read_bytes(), None)
    old = x509.load_pem_x509_certificate((folder / "root.crt").read_bytes())
    now = dt.datetime.now(dt.UTC)
    builder = x509.CertificateBuilder(
        old.issuer, old.subject, old.public_key(), old.serial_number, now - dt.timedelta(days=10),
        now - dt.timedelta(days=1), list(old.extensions),
    )  # fmt: skip
    (folder / "root.crt").write_bytes(
        builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)
    )
    with pytest.raises(InternalCAError, match=r"the root in .* expired on .*: rotate it"):
        _ca(tmp_path).ensure_root()


def test_permitted_domains_become_critical_name_constraints_that_exclude_ip_addresses(tmp_path):
    pem = _ca(tmp_path, permitted_domains=("lan", "Home.Arpa.")).ensure_root()
    nc = x509.load_pem_x509_certificate(pem).extensions.get_extension_for_class(x509.NameConstraints)
    assert nc.critical
    assert [g.value for g in nc.value.permitted_subtrees] == ["lan", "home.arpa"]
    assert {str(g.value) for g in nc.value.excluded_subtrees} == {"0.0.0.0/0", "::/0"}


@pytest.mark.parametrize("entry", ["10.0.0.1", "192.168.1.0/24", "fd00::1", "10.0.1", "*.lan", ".lan", "a_b"])
def test_permitted_domains_are_read_by_the_static_configurations_parser(tmp_path, entry):
    """An address once became an IP-only constraint, leaving every DNS name open to the root."""
    with pytest.raises(ValueError):
        _ca(tmp_path, permitted_domains=("lan", entry))
    assert not (tmp_path / "ca").exists()


@contextlib.contextmanager
def _read_only(folder: Path):
    """``folder`` read-only for this process: a read-only bind mount over it when this process may
    mount (root, where chmod stops nothing); else mode 0500, which stops a non-root process. Either way
    the lock file cannot be created there."""
    mounted = (
        os.geteuid() == 0
        and subprocess.run(["mount", "--bind", str(folder), str(folder)], capture_output=True).returncode == 0
    )
    try:
        if mounted:
            ro = ["mount", "-o", "remount,ro,bind", str(folder)]
            subprocess.run(ro, check=True, capture_output=True)
        elif os.geteuid() == 0:
            pytest.skip("root without mount(2) here: chmod would not make the folder read-only")
        else:
            folder.chmod(0o500)
        with pytest.raises(OSError):
            (folder / ".probe").write_bytes(b"")
        yield
    finally:
        if mounted:
            subprocess.run(["umount", str(folder)], check=True)
        folder.chmod(0o700)


def test_an_existing_root_is_read_from_a_read_only_folder(tmp_path):
    """Reading never takes the lock: only creating does (the lock file could not be created here)."""
    pem = _ca(tmp_path).ensure_root()
    folder = tmp_path / "ca"
    (folder / ".root.lock").unlink()
    with _read_only(folder):
        assert _ca(tmp_path).ensure_root() == pem
        with pytest.raises(InternalCAError, match="cannot use"):  # creating one there cannot work
            _ca(tmp_path, storage=str(folder / "sub")).ensure_root()


_CRASH_BEFORE_THE_CERTIFICATE = """
import os, sys
from acme_client import internal_root
real = os.replace
def crash(src, dst):
    if str(dst).endswith("root.crt"):
        os._exit(9)  # the process dies between writing root.key and root.crt
    real(src, dst)
internal_root.os.replace = crash
internal_root.load_or_create_root(sys.argv[1], "crash")
"""


def test_a_root_creation_interrupted_before_its_certificate_is_finished_on_next_use(tmp_path, caplog):
    folder = tmp_path / "ca"
    crashed = subprocess.run([sys.executable, "-c", _CRASH_BEFORE_THE_CERTIFICATE, str(folder)])
    assert crashed.returncode == 9
    assert (folder / "root.key").exists() and not (folder / "root.crt").exists()
    key_before = (folder / "root.key").read_bytes()
    pem = _ca(tmp_path).ensure_root()
    assert (folder / "root.key").read_bytes() == key_before  # the same root: nobody trusted another
    assert (folder / "root.crt").read_bytes() == pem
    assert "finished creating the root" in caplog.text
    assert sorted(p.name for p in folder.iterdir()) == [".root.lock", "root.crt", "root.key"]
    assert _ca(tmp_path).ensure_root() == pem


def test_a_folder_without_hard_links_still_gets_a_root(tmp_path, monkeypatch):
    from acme_client import internal_root

    def no_links(src, dst):
        raise PermissionError(1, "Operation not permitted")  # vfat, some network shares

    monkeypatch.setattr(internal_root.os, "link", no_links)
    pem = _ca(tmp_path).ensure_root()
    folder = tmp_path / "ca"
    assert sorted(p.name for p in folder.iterdir()) == [".root.lock", "root.crt", "root.key"]
    assert stat.S_IMODE((folder / "root.key").stat().st_mode) == 0o600
    monkeypatch.undo()
    assert _ca(tmp_path).ensure_root() == pem


# -- leaves -------------------------------------------------------------------------------------------


def test_a_leaf_verifies_against_the_root_and_carries_what_clients_check(tmp_path):
    ca = _ca(tmp_path, leaf_lifetime=3600.0)
    root_pem = ca.ensure_root()
    assert ca._root is not None  # noqa: SLF001
    before = dt.datetime.now(dt.UTC)
    leaf = issue_leaf(ca._root, ("printer.lan", "192.168.1.10"), 3600.0)  # noqa: SLF001
    cert = _leaf_cert(leaf.certificate_pem)
    assert len(x509.load_pem_x509_certificates(leaf.certificate_pem)) == 1
    key = cert.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1"
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["printer.lan"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("192.168.1.10")]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    root = x509.load_pem_x509_certificate(root_pem)
    assert aki == root.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    assert cert.not_valid_before_utc <= before - BACKDATE + dt.timedelta(seconds=1)
    assert abs((cert.not_valid_after_utc - before).total_seconds() - 3600) < 5
    assert abs((leaf.renew_at - before).total_seconds() - 2400) < 5  # a third of the lifetime left
    _verify(root_pem, leaf.certificate_pem, "printer.lan")
    _verify(root_pem, leaf.certificate_pem, "192.168.1.10")
    _handshake(tmp_path, tmp_path / "ca" / "root.crt", leaf.certificate_pem, leaf.key_pem, "printer.lan")
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(tmp_path, tmp_path / "ca" / "root.crt", leaf.certificate_pem, leaf.key_pem, "nas.lan")


def _root_permitting_an_address_range(tmp_path: Path) -> Root:
    """A root constrained to DNS ``lan`` and the addresses 192.168.1.0/24 (as other CAs make them;
    dockroute's own exclude every address), written to ``tmp_path/root.crt``."""
    from cryptography.hazmat.primitives import hashes, serialization

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "test root")])
    now = dt.datetime.now(dt.UTC)
    nc = x509.NameConstraints(
        [x509.DNSName("lan"), x509.IPAddress(ipaddress.ip_network("192.168.1.0/24"))], None
    )
    cert = (
        x509.CertificateBuilder(name, name, key.public_key(), 1, now - BACKDATE, now + dt.timedelta(days=9))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(nc, critical=True)
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    (tmp_path / "root.crt").write_bytes(pem)
    return Root(cert, key, pem, ("lan",))


def _openssl_verify(tmp_path: Path, leaf_pem: bytes, *check: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "leaf.pem").write_bytes(leaf_pem)
    cmd = ["openssl", "verify", "-CAfile", str(tmp_path / "root.crt"), *check, str(tmp_path / "leaf.pem")]
    return subprocess.run(cmd, capture_output=True, text=True)


def test_the_common_name_is_only_ever_a_dns_name(tmp_path):
    """OpenSSL checks a CN against DNS name constraints: an address there is a 'permitted subtree
    violation' even where the address itself is permitted."""
    root = _root_permitting_an_address_range(tmp_path)
    only_ip = issue_leaf(root, ("192.168.1.10",), 3600.0)
    cert = _leaf_cert(only_ip.certificate_pem)
    assert cert.subject == x509.Name([])
    assert cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).critical  # RFC 5280
    done = _openssl_verify(tmp_path, only_ip.certificate_pem, "-verify_ip", "192.168.1.10")
    assert done.returncode == 0 and "OK" in done.stdout, done.stdout + done.stderr
    mixed = issue_leaf(root, ("192.168.1.10", "printer.lan"), 3600.0)
    cert = _leaf_cert(mixed.certificate_pem)
    assert cert.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)[0].value == "printer.lan"
    assert not cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).critical
    for check in (["-verify_ip", "192.168.1.10"], ["-verify_hostname", "printer.lan"]):
        done = _openssl_verify(tmp_path, mixed.certificate_pem, *check)
        assert done.returncode == 0, done.stdout + done.stderr


def test_a_leaf_never_shows_its_private_key_in_its_repr(tmp_path):
    ca = _ca(tmp_path)
    ca.ensure_root()
    leaf = issue_leaf(ca._root, ("printer.lan",), 3600.0)  # noqa: SLF001
    assert "PRIVATE KEY" not in repr(leaf) and "PRIVATE KEY" not in repr(ca._root)  # noqa: SLF001
    assert "printer.lan" in repr(leaf)


def test_name_constraints_make_clients_refuse_a_leaf_outside_them(tmp_path):
    """What trusting a constrained root risks: even a leaf the root did sign for another name (as a
    stolen root.key could) is refused by the client."""
    ca = _ca(tmp_path, permitted_domains=("lan",))
    root_pem = ca.ensure_root()
    inside = issue_leaf(ca._root, ("printer.lan",), 3600.0)  # noqa: SLF001
    _handshake(tmp_path, tmp_path / "ca" / "root.crt", inside.certificate_pem, inside.key_pem, "printer.lan")
    outside = issue_leaf(ca._root, ("bank.example.com",), 3600.0)  # noqa: SLF001
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(
            tmp_path,
            tmp_path / "ca" / "root.crt",
            outside.certificate_pem,
            outside.key_pem,
            "bank.example.com",
        )
    with pytest.raises(verification.VerificationError):
        _verify(root_pem, outside.certificate_pem, "bank.example.com")
    address = issue_leaf(ca._root, ("10.0.0.1",), 3600.0)  # noqa: SLF001
    with pytest.raises(verification.VerificationError):
        _verify(root_pem, address.certificate_pem, "10.0.0.1")
    # What a leaked root.key would sign, checked as the reviewer did: OpenSSL refuses it.
    evil = issue_leaf(ca._root, ("evil.com",), 3600.0)  # noqa: SLF001
    (tmp_path / "evil.pem").write_bytes(evil.certificate_pem)
    done = subprocess.run(
        ["openssl", "verify", "-CAfile", str(tmp_path / "ca" / "root.crt"), "-verify_hostname", "evil.com",
         str(tmp_path / "evil.pem")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode != 0 and "permitted subtree violation" in done.stdout + done.stderr


def test_want_refuses_names_outside_permitted_domains_with_one_line(tmp_path, caplog):
    ca = _ca(tmp_path, permitted_domains=("lan", "home.arpa"))
    ca.want([("printer.lan", "bank.example.com"), ("NAS.Home.Arpa.",), ("10.0.0.1",)])
    assert ca._wanted == [("printer.lan",), ("nas.home.arpa",)]  # noqa: SLF001
    ca.want([("bank.example.com",)])
    assert ca._wanted == []  # noqa: SLF001
    assert caplog.text.count("no certificate issued for bank.example.com: outside permittedDomains") == 1
    assert "no certificate issued for 10.0.0.1: outside permittedDomains lan, home.arpa" in caplog.text


def test_want_takes_any_name_without_permitted_domains_and_refuses_what_cannot_be_a_san(tmp_path, caplog):
    ca = _ca(tmp_path)
    ca.want([("intranet", "[::1]", "*.home.lan", "*.lan", "*", "bad name.lan", "caf\u00e9.lan", "a.*.lan")])
    assert ca._wanted == [("intranet", "::1", "*.home.lan")]  # noqa: SLF001
    # OpenSSL clients never match a wildcard directly under a single label (as under a TLD).
    assert "no certificate issued for *.lan: a wildcard over a single label" in caplog.text
    assert "no certificate issued for *: a wildcard over a single label" in caplog.text
    assert "no certificate issued for bad name.lan: not a valid DNS name" in caplog.text
    assert "no certificate issued for caf\u00e9.lan: not ASCII" in caplog.text
    assert "no certificate issued for a.*.lan: a wildcard other than a whole leftmost label" in caplog.text


# -- the loop -----------------------------------------------------------------------------------------


async def _until(condition, what: str, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def test_run_issues_wanted_names_and_renews_them_with_a_third_left(tmp_path):
    changes: list[int] = []
    ca = InternalCA(
        "home", InternalCASettings(storage=str(tmp_path / "ca"), leaf_lifetime=3.0), lambda: changes.append(1)
    )
    ca.want([("printer.lan",), ("nas.home.arpa", "nas.lan")])
    task = asyncio.get_running_loop().create_task(ca.run())
    try:
        await _until(lambda: len(ca.certificates()) == 2, "the first leaves")
        assert len(changes) == 1  # one batch, one rebuild
        first = {c.names: c.serial for c in ca.certificates()}
        root_pem = (tmp_path / "ca" / "root.crt").read_bytes()
        for leaf in ca.certificates():
            _verify(root_pem, leaf.certificate_pem, leaf.names[-1])
        # No kick: the loop wakes by itself when a third of the 3 s lifetime is left.
        await _until(lambda: all(c.serial != first[c.names] for c in ca.certificates()), "renewal")
        assert len(changes) >= 2
        ca.want([("printer.lan",)])  # a router went away: its leaf is no longer served
        await _until(lambda: [c.names for c in ca.certificates()] == [("printer.lan",)], "the drop")
    finally:
        task.cancel()


async def test_a_root_made_with_other_constraints_is_kept_and_only_what_it_allows_is_issued(tmp_path, caplog):
    pem = _ca(tmp_path, permitted_domains=("lan",)).ensure_root()
    ca = _ca(tmp_path, permitted_domains=("lan", "example.com"))
    caplog.set_level("INFO")
    ca.want([("printer.lan", "www.example.com")])
    loop = asyncio.get_running_loop()
    for _ in range(3):  # passes of the loop (each config change makes one): the leaf is issued once
        await ca._pass(loop)  # noqa: SLF001
    assert (tmp_path / "ca" / "root.crt").read_bytes() == pem
    [leaf] = ca.certificates()
    assert leaf.names == ("printer.lan",)
    assert (
        "the root in" in caplog.text
        and "was made with permitted domains lan, the configuration" in caplog.text
    )
    assert (
        "no certificate issued for www.example.com: outside the name constraints of the root" in caplog.text
    )
    assert caplog.text.count("certificate for printer.lan issued") == 1


async def test_a_failed_issue_waits_for_its_retry_instead_of_spinning(tmp_path, monkeypatch, caplog):
    import acme_client.internal_ca as mod

    def broken(*a, **kw):
        raise RuntimeError("a bug")

    ca = _ca(tmp_path, leaf_lifetime=3600.0)
    ca.want([("printer.lan",)])
    loop = asyncio.get_running_loop()
    await ca._pass(loop)  # noqa: SLF001
    [leaf] = ca.certificates()
    monkeypatch.setattr(mod, "issue_leaf", broken)
    object.__setattr__(leaf, "renew_at", dt.datetime.now(dt.UTC))  # due now
    await ca._pass(loop)  # noqa: SLF001
    assert "cannot issue for printer.lan" in caplog.text
    assert ca._next_wake() > 50  # noqa: SLF001 - the retry in a minute, not the past renewal time
    assert ca.certificates() == [leaf]  # the current leaf is still served meanwhile
    ca.want([])
    await ca._pass(loop)  # noqa: SLF001
    assert ca._next_wake() is None  # noqa: SLF001 - nothing wanted: nothing to wake for


async def test_the_loop_looks_at_the_wall_clock_every_10_minutes_however_far_renewal_is(tmp_path):
    """Waits run on the monotonic clock, which stops while the host is suspended: a wait until a
    renewal days away would wake days late after a suspend."""
    ca = _ca(tmp_path, leaf_lifetime=30 * 86400.0)
    ca.want([("printer.lan",)])
    await ca._pass(asyncio.get_running_loop())  # noqa: SLF001
    [leaf] = ca.certificates()
    assert (leaf.renew_at - dt.datetime.now(dt.UTC)).days >= 19
    assert 500 < ca._next_wake() <= 600  # noqa: SLF001


async def test_crypto_and_files_never_run_on_the_event_loop(tmp_path, monkeypatch):
    import acme_client.internal_ca as mod

    threads: list[str] = []
    real_issue, real_root = mod.issue_leaf, mod.load_or_create_root

    def issue(*a, **kw):
        threads.append(threading.current_thread().name)
        return real_issue(*a, **kw)

    def root(*a, **kw):
        threads.append(threading.current_thread().name)
        return real_root(*a, **kw)

    monkeypatch.setattr(mod, "issue_leaf", issue)
    monkeypatch.setattr(mod, "load_or_create_root", root)
    ca = _ca(tmp_path)
    ca.want([("printer.lan",)])
    task = asyncio.get_running_loop().create_task(ca.run())
    try:
        await _until(lambda: ca.certificates(), "a leaf")
    finally:
        task.cancel()
    assert len(threads) == 2 and all(t.startswith("internal-ca-home") for t in threads), threads


async def test_a_storage_that_cannot_be_written_serves_nothing_with_one_error_line(tmp_path, caplog):
    (tmp_path / "file").write_text("not a folder")
    ca = _ca(tmp_path, storage=str(tmp_path / "file" / "ca"))
    attempts: list[int] = []
    real = ca.ensure_root
    ca.ensure_root = lambda: attempts.append(1) or real()  # type: ignore[method-assign]
    ca.want([("printer.lan",)])
    task = asyncio.get_running_loop().create_task(ca.run())
    try:
        await _until(lambda: "serving no certificates from it" in caplog.text, "the error line")
        assert len(attempts) == 1
        for n in range(2, 5):  # config changes try again, quietly while the reason is the same
            ca.want([("printer.lan",)])
            await _until(lambda n=n: len(attempts) == n, f"attempt {n}")
        assert not task.done() and ca.certificates() == []
    finally:
        task.cancel()
    assert caplog.text.count("serving no certificates from it") == 1
    assert f"cannot use {tmp_path / 'file' / 'ca'}" in caplog.text


def test_the_app_surface_has_no_acme_challenges(tmp_path):
    ca = _ca(tmp_path)
    assert ca.alpn_certs == {} and ca.key_authorization("t") is None and ca.alpn_challenge("x.lan") is None
    assert not (tmp_path / "ca").exists()  # asking for challenges creates nothing


# -- dockroute internal-ca root -----------------------------------------------------------------------


def _config(tmp_path: Path, resolvers: dict) -> Path:
    import yaml

    path = tmp_path / "dockroute.yml"
    path.write_text(yaml.safe_dump({"certificatesResolvers": resolvers}))
    return path


def test_cli_creates_the_root_and_prints_it(tmp_path, capsys):
    from dockroute.cli import main

    config = _config(tmp_path, {"home": {"internalCA": {"storage": str(tmp_path / "ca")}}})
    assert main(["internal-ca", "root", "--config", str(config)]) == 0
    out, err = capsys.readouterr()
    printed = out.encode()
    assert printed == (tmp_path / "ca" / "root.crt").read_bytes()
    x509.load_pem_x509_certificate(printed)
    assert err == f"resolver home: {tmp_path / 'ca' / 'root.crt'} (created now)\n"
    assert main(["internal-ca", "root", f"--configFile={config}"]) == 0  # read again, not replaced
    out, err = capsys.readouterr()
    assert out.encode() == printed
    assert err == f"resolver home: {tmp_path / 'ca' / 'root.crt'} (existing)\n"


def test_cli_creates_a_root_under_a_relative_storage_only_when_asked(tmp_path, capsys, monkeypatch):
    """A relative storage resolves from this command's working directory, maybe not the proxy's: a root
    trusted on devices but never used by the proxy is not created by accident."""
    from dockroute.cli import main

    config = _config(tmp_path, {"home": {"internalCA": {"storage": "state/ca"}}})
    monkeypatch.chdir(tmp_path)
    assert main(["internal-ca", "root", "--config", str(config)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and not (tmp_path / "state").exists()
    assert f"no root in {tmp_path / 'state' / 'ca'}" in err and "'state/ca' is relative" in err
    assert "--create" in err
    assert main(["internal-ca", "root", "--config", str(config), "--create"]) == 0
    out, err = capsys.readouterr()
    assert out.encode() == (tmp_path / "state" / "ca" / "root.crt").read_bytes()
    assert err.startswith(
        f"resolver home: {tmp_path / 'state' / 'ca' / 'root.crt'} (created now, as --create"
    )
    assert main(["internal-ca", "root", "--config", str(config)]) == 0  # an existing one is printed
    out2, err = capsys.readouterr()
    assert out2 == out and err.endswith("(existing)\n")


def test_cli_picks_the_resolver_named_and_takes_static_flags(tmp_path, capsys):
    from dockroute.cli import main

    config = _config(
        tmp_path,
        {
            "a": {"internalCA": {"storage": str(tmp_path / "a")}},
            "b": {"internalCA": {"storage": str(tmp_path / "b")}},
        },
    )
    assert main(["internal-ca", "root", "--config", str(config)]) == 2
    assert "several internalCA resolvers (a, b): pick one with --resolver NAME" in capsys.readouterr().err
    assert main(["internal-ca", "root", "--config", str(config), "--resolver", "b"]) == 0
    assert capsys.readouterr().out.encode() == (tmp_path / "b" / "root.crt").read_bytes()
    assert not (tmp_path / "a").exists()
    flag = f"--certificatesresolvers.c.internalca.storage={tmp_path / 'c'}"
    assert main(["internal-ca", "root", "--config", str(config), "--resolver=c", flag]) == 0
    assert capsys.readouterr().out.encode() == (tmp_path / "c" / "root.crt").read_bytes()


def test_cli_without_an_internal_ca_resolver_exits_2_with_one_line(tmp_path, capsys):
    from dockroute.cli import main

    config = _config(
        tmp_path,
        {"le": {"acme": {"email": "a@example.com", "storage": str(tmp_path / "a.json"), "tlsChallenge": {}}}},
    )
    assert main(["internal-ca", "root", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no internalCA resolver" in err and str(config) in err
    assert main(["internal-ca", "root", "--config", str(config), "--resolver", "le"]) == 2
    assert "no internalCA resolver named 'le'" in capsys.readouterr().err


def test_cli_reports_an_unusable_root_in_one_line(tmp_path, capsys):
    from dockroute.cli import main

    config = _config(tmp_path, {"home": {"internalCA": {"storage": str(tmp_path / "ca")}}})
    assert main(["internal-ca", "root", "--config", str(config)]) == 0
    capsys.readouterr()
    (tmp_path / "ca" / "root.key").chmod(0o640)
    assert main(["internal-ca", "root", "--config", str(config)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "permissions 640" in err and "too open" in err


def test_cli_usage_names_the_subcommand_and_the_file_search_order(capsys):
    from dockroute.cli import main

    assert main(["internal-ca"]) == 2
    assert "dockroute internal-ca root" in capsys.readouterr().err
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "internal-ca root [--config FILE] [--resolver NAME]" in out
    assert "traefik.{yml,yaml,toml}" in out and "/etc/traefik/" in out and "$XDG_CONFIG_HOME" in out
