import base64
import datetime as dt
import errno
import json
import logging
import os
import stat
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from acme_client.storage import (
    AcmeStorage,
    ResolverState,
    StorageError,
    StoredAccount,
    StoredCertificate,
)

NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


def _pkcs8(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def make_cert(main: str, sans=(), days=90) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, main)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in (main, *sans)]), False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


@pytest.fixture(scope="module")
def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def account(rsa_key):
    return StoredAccount(
        email="ops@example.com",
        registration_uri="https://acme.example/acct/42",
        registration_body={"status": "valid", "contact": ["mailto:ops@example.com"]},
        private_key_pem=_pkcs8(rsa_key),
        key_type="4096",
    )


def stored(main, sans=(), days=90) -> StoredCertificate:
    c, k = make_cert(main, sans, days)
    return StoredCertificate(main=main, sans=tuple(sans), certificate_pem=c, key_pem=k)


def write(path, obj, mode=0o600):
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj, indent=2))
    os.chmod(path, mode)


def b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def traefik_fixture(rsa_key, cert_pem, key_pem):
    """acme.json exactly as Traefik v2/v3 writes it (json.MarshalIndent, Go []byte -> base64)."""
    return {
        "letsencrypt": {
            "Account": {
                "Email": "ops@example.com",
                "Registration": {
                    "body": {"status": "valid", "contact": ["mailto:ops@example.com"]},
                    "uri": "https://acme-v02.api.letsencrypt.org/acme/acct/123456789",
                },
                # x509.MarshalPKCS1PrivateKey
                "PrivateKey": b64(
                    rsa_key.private_bytes(
                        serialization.Encoding.DER,
                        serialization.PrivateFormat.TraditionalOpenSSL,
                        serialization.NoEncryption(),
                    )
                ),
                "KeyType": "4096",
            },
            "Certificates": [
                {
                    "domain": {"main": "app.example.com", "sans": ["www.example.com"]},
                    "certificate": b64(cert_pem),
                    "key": b64(key_pem),
                    "Store": "default",
                },
                {
                    "domain": {"main": "empty.example.com"},
                    "certificate": None,
                    "key": None,
                    "Store": "default",
                },
            ],
        },
        "staging": {"Account": None, "Certificates": None},
    }


def test_missing_file_is_empty(tmp_path):
    assert AcmeStorage(str(tmp_path / "acme.json")).load() == {}


def test_empty_file_is_empty(tmp_path):
    p = tmp_path / "acme.json"
    write(p, "")
    assert AcmeStorage(str(p)).load() == {}


def test_traefik_file_loads(tmp_path, rsa_key):
    cert_pem, key_pem = make_cert("app.example.com", ["www.example.com"])
    p = tmp_path / "acme.json"
    write(p, traefik_fixture(rsa_key, cert_pem, key_pem))

    state = AcmeStorage(str(p)).load()

    le = state["letsencrypt"]
    assert le.account.email == "ops@example.com"
    assert le.account.registration_uri.endswith("/acct/123456789")
    assert le.account.registration_body["status"] == "valid"
    assert le.account.key_type == "4096"
    loaded = serialization.load_pem_private_key(le.account.private_key_pem, None)
    assert loaded.private_numbers() == rsa_key.private_numbers()
    assert len(le.certificates) == 1  # the empty one is dropped, like Traefik does
    c = le.certificates[0]
    assert (c.main, c.sans, c.store) == ("app.example.com", ("www.example.com",), "default")
    assert c.certificate_pem == cert_pem and c.key_pem == key_pem
    assert c.names == ("app.example.com", "www.example.com")
    assert c.not_after == NOW + dt.timedelta(days=90)
    assert state["staging"] == ResolverState(account=None, certificates=())


def test_written_file_is_what_traefik_reads(tmp_path, account, rsa_key):
    p = tmp_path / "acme.json"
    cert = stored("a.example.com", ["b.example.com"])
    s = AcmeStorage(str(p))
    s.put_account("le", account)
    s.put_certificate("le", cert)

    raw = json.loads(p.read_text())
    acc = raw["le"]["Account"]
    assert set(acc) == {"Email", "Registration", "PrivateKey", "KeyType"}
    assert acc["Registration"] == {"body": dict(account.registration_body), "uri": account.registration_uri}
    # Traefik: x509.ParsePKCS1PrivateKey(base64-decoded bytes)
    der = base64.b64decode(acc["PrivateKey"])
    assert der == rsa_key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    (entry,) = raw["le"]["Certificates"]
    assert entry == {
        "domain": {"main": "a.example.com", "sans": ["b.example.com"]},
        "certificate": b64(cert.certificate_pem),
        "key": b64(cert.key_pem),
        "Store": "default",
    }


def test_round_trip(tmp_path, account):
    p = tmp_path / "acme.json"
    state = {
        "le": ResolverState(account=account, certificates=(stored("a.example.com"), stored("c.example"))),
        "zerossl": ResolverState(account=None, certificates=(stored("z.example", ["y.example"]),)),
    }
    AcmeStorage(str(p)).save(state)
    assert AcmeStorage(str(p)).load() == state


def test_put_certificate_replaces_by_main(tmp_path, account):
    s = AcmeStorage(str(tmp_path / "acme.json"))
    s.put_account("le", account)
    s.put_certificate("le", stored("a.example.com"))
    s.put_certificate("le", stored("b.example.com"))
    newer = stored("a.example.com", ["x.example.com"], days=200)
    s.put_certificate("le", newer)
    le = s.load()["le"]
    assert [c.main for c in le.certificates] == ["a.example.com", "b.example.com"]
    assert le.certificates[0] == newer
    assert le.account == account


def test_mode_0644_refused(tmp_path):
    p = tmp_path / "acme.json"
    write(p, {}, mode=0o644)
    with pytest.raises(StorageError, match=r"permissions 644 for .*acme\.json are too open, please use 600"):
        AcmeStorage(str(p)).load()
    with pytest.raises(StorageError):
        AcmeStorage(str(p)).save({})


def test_group_bit_refused(tmp_path):
    p = tmp_path / "acme.json"
    write(p, {}, mode=0o640)
    with pytest.raises(StorageError, match="640"):
        AcmeStorage(str(p)).load()


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"le": '])
def test_corrupt_file_kept_aside(tmp_path, caplog, content):
    p = tmp_path / "acme.json"
    write(p, content)
    with caplog.at_level(logging.ERROR, logger="acme_client.storage"):
        assert AcmeStorage(str(p)).load() == {}
    assert not p.exists()
    (aside,) = tmp_path.glob("acme.json.corrupt-*")
    assert aside.read_text() == content
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and str(aside) in errors[0].getMessage()


def test_corrupt_twice_keeps_both(tmp_path):
    p = tmp_path / "acme.json"
    for content in ("{bad", "{worse"):
        write(p, content)
        AcmeStorage(str(p)).load()
    assert sorted(a.read_text() for a in tmp_path.glob("acme.json.corrupt-*")) == ["{bad", "{worse"]


def test_atomic_write_is_0600_and_leaves_no_temp(tmp_path, account):
    p = tmp_path / "acme.json"
    old_umask = os.umask(0)
    try:
        AcmeStorage(str(p)).put_account("le", account)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(p.stat().st_mode) == 0o600
    assert [f.name for f in tmp_path.iterdir()] == ["acme.json"]
    AcmeStorage(str(p)).load()  # our own file passes the permission check


def test_failed_write_keeps_old_file(tmp_path, account, monkeypatch):
    p = tmp_path / "acme.json"
    s = AcmeStorage(str(p))
    s.put_account("le", account)
    before = p.read_bytes()

    def boom(*a):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(StorageError, match="disk full"):
        s.put_certificate("le", stored("a.example.com"))
    assert p.read_bytes() == before
    assert [f.name for f in tmp_path.iterdir()] == ["acme.json"]


def test_other_resolvers_and_unknown_fields_preserved(tmp_path, rsa_key, account):
    cert_pem, key_pem = make_cert("app.example.com", ["www.example.com"])
    raw = traefik_fixture(rsa_key, cert_pem, key_pem)
    raw["letsencrypt"]["Account"]["Extra"] = "kept"
    raw["letsencrypt"]["Certificates"][0]["future"] = 1
    raw["letsencrypt"]["Hint"] = {"x": 1}
    raw["other"] = {"Account": None, "Certificates": None, "Weird": [1, 2]}
    p = tmp_path / "acme.json"
    write(p, raw)
    other_before = json.loads(p.read_text())["other"]

    s = AcmeStorage(str(p))
    s.put_certificate("letsencrypt", stored("new.example.com"))
    s.put_account("fresh", account)

    after = json.loads(p.read_text())
    assert after["other"] == other_before
    le = after["letsencrypt"]
    assert le["Hint"] == {"x": 1}
    assert le["Account"]["Extra"] == "kept"
    assert le["Account"]["PrivateKey"] == raw["letsencrypt"]["Account"]["PrivateKey"]
    assert [c["domain"]["main"] for c in le["Certificates"]] == ["app.example.com", "new.example.com"]
    assert le["Certificates"][0]["future"] == 1
    assert set(s.load()) == {"letsencrypt", "staging", "other", "fresh"}


def test_unreadable_entries_are_not_erased(tmp_path, account):
    p = tmp_path / "acme.json"
    bad_cert = {"domain": {"main": "bad.example"}, "certificate": b64(b"garbage"), "key": b64(b"k")}
    bad_account = {"Email": "x@example.com", "PrivateKey": b64(b"not a key"), "KeyType": "4096"}
    write(p, {"le": {"Account": bad_account, "Certificates": [bad_cert]}})
    s = AcmeStorage(str(p))

    le = s.load()["le"]
    assert le.account is None and le.certificates == ()

    s.put_certificate("le", stored("good.example"))
    after = json.loads(p.read_text())["le"]
    assert after["Account"] == bad_account
    assert bad_cert in after["Certificates"]
    assert [c.main for c in s.load()["le"].certificates] == ["good.example"]


def test_ec_account_key_round_trips(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    acc = StoredAccount("a@example.com", None, {}, _pkcs8(key), "P256")
    s = AcmeStorage(str(tmp_path / "acme.json"))
    s.put_account("le", acc)
    assert s.load()["le"].account == acc
    assert json.loads((tmp_path / "acme.json").read_text())["le"]["Account"]["Registration"] is None


def test_resolvers_sharing_one_file_never_lose_each_others_writes(tmp_path):
    # Two resolvers, two AcmeStorage objects, one acme.json, writing from their own threads at once.
    import threading

    path = str(tmp_path / "acme.json")
    pairs = {r: [make_cert(f"{r}{i}.example.com") for i in range(15)] for r in ("le", "alpn")}

    def write(resolver: str) -> None:
        store = AcmeStorage(path)
        for i, (cert_pem, key_pem) in enumerate(pairs[resolver]):
            store.put_certificate(
                resolver, StoredCertificate(f"{resolver}{i}.example.com", (), cert_pem, key_pem)
            )

    threads = [threading.Thread(target=write, args=(r,)) for r in pairs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    loaded = AcmeStorage(path).load()
    for resolver in pairs:
        assert len(loaded[resolver].certificates) == 15, resolver


def test_a_file_bind_mounted_on_its_own_is_rewritten_in_place(tmp_path, account):
    """Traefik's ``-v ./acme.json:/acme.json``: renaming over a mount point fails (EBUSY), so the file
    itself is rewritten, and the host's file (the mount's source) gets the certificate. A real bind mount;
    skipped where this process may not mount."""
    source, mounted = tmp_path / "host-acme.json", tmp_path / "in" / "acme.json"
    mounted.parent.mkdir()
    for f in (source, mounted):
        f.write_text("")
        f.chmod(0o600)
    if subprocess.run(["mount", "--bind", str(source), str(mounted)], capture_output=True).returncode:
        pytest.skip("cannot bind-mount here (not root, or no mount privilege)")
    try:
        AcmeStorage(str(mounted)).put_account("le", account)
        AcmeStorage(str(mounted)).put_certificate("le", stored("a.example.com"))
        assert AcmeStorage(str(source)).load()["le"].certificates[0].main == "a.example.com"
        assert [f.name for f in mounted.parent.iterdir()] == ["acme.json"]  # no temporary file left
    finally:
        subprocess.run(["umount", str(mounted)], check=True)


def test_a_folder_not_ours_to_write_in_keeps_the_file_writable(tmp_path, account, monkeypatch):
    """The mounted file is writable but its folder (``/`` in the container) is not: written in place."""
    p = tmp_path / "acme.json"
    AcmeStorage(str(p)).put_account("le", account)
    inode = p.stat().st_ino

    def no_temp(*a, **kw):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("tempfile.mkstemp", no_temp)
    AcmeStorage(str(p)).put_certificate("le", stored("b.example"))
    assert p.stat().st_ino == inode
    assert AcmeStorage(str(p)).load()["le"].certificates[0].main == "b.example"


def test_a_full_disk_never_turns_into_an_in_place_rewrite(tmp_path, account, monkeypatch):
    """No temporary file because the disk (or quota, or fd table) is full: the old file stays untouched
    and the error is reported; rewriting in place is only for a folder that is not ours."""
    p = tmp_path / "acme.json"
    AcmeStorage(str(p)).put_account("le", account)
    before = p.read_bytes()

    def full(*a, **kw):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("tempfile.mkstemp", full)
    with pytest.raises(StorageError, match="No space left"):
        AcmeStorage(str(p)).put_certificate("le", stored("c.example"))
    assert p.read_bytes() == before
