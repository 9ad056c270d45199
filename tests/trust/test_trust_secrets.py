"""Secrets: standard key files, old homes migrated, no core dumps, private files and folders."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from helpers import CA_NAMES, assert_refused, csr_pem, make_csr, run_cli

from tui_ca.engine import CertificateAuthority, InputError, KeyLockedError
from tui_ca.engine.keys import ENVELOPE_FORMAT, PBKDF2_ITERATIONS, kdf_iterations
from tui_ca.engine.reader import ISSUING_KEY, ROOT_KEY
from tui_ca.server.users import load_users, set_user

PASS = b"correct horse battery"


def _legacy_envelope(key, passphrase: bytes, n: int = 2**14) -> bytes:
    """A key file as homes made before standard PKCS#8 hold it (scrypt + AES-GCM JSON)."""
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    salt, nonce = os.urandom(16), os.urandom(12)
    secret = Scrypt(salt=salt, length=32, n=n, r=8, p=1).derive(passphrase)
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    return json.dumps({"format": ENVELOPE_FORMAT, "kdf": {"name": "scrypt", "n": n, "r": 8, "p": 1, "salt": b64(salt)},
                       "cipher": {"name": "aes-256-gcm", "nonce": b64(nonce)},
                       "ciphertext": b64(AESGCM(secret).encrypt(nonce, der, ENVELOPE_FORMAT.encode()))}).encode()  # fmt: skip


def _openssl_opens(path: Path, passfile: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["openssl", "pkey", "-in", str(path), "-passin", f"file:{passfile}", "-noout"],
                          capture_output=True, timeout=60)  # fmt: skip


@pytest.fixture
def passfile(tmp_path) -> Path:
    path = tmp_path / "pass"
    path.write_bytes(PASS + b"\n")
    return path


def test_key_files_are_standard_pkcs8_that_openssl_opens(tmp_path, passfile):
    home = tmp_path / "home"
    run_cli(home, "--passphrase-file", str(passfile), "init", "--cn", "Std CA", check=True)
    for rel in (ISSUING_KEY, ROOT_KEY):
        data = (home / rel).read_bytes()
        assert data.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----\n")
        assert kdf_iterations(data) == PBKDF2_ITERATIONS >= 600_000
        assert stat.S_IMODE((home / rel).stat().st_mode) == 0o600
        done = _openssl_opens(home / rel, passfile)
        assert done.returncode == 0, done.stderr
    wrong = tmp_path / "wrong"
    wrong.write_bytes(b"not the passphrase\n")
    assert _openssl_opens(home / ISSUING_KEY, wrong).returncode != 0
    with pytest.raises(KeyLockedError, match="wrong passphrase"):
        CertificateAuthority(home, passphrase=b"not the passphrase").unlock()
    CertificateAuthority(home, passphrase=PASS).unlock()


def test_a_legacy_key_is_migrated_on_first_unlock(tmp_path, passfile):
    home = tmp_path / "home"
    ca = CertificateAuthority(home, passphrase=PASS)
    ca.init(CA_NAMES)
    key = ca.signing_key()
    (home / ISSUING_KEY).write_bytes(_legacy_envelope(key, PASS))
    later = CertificateAuthority(home, passphrase=PASS)
    later.submit(csr_pem(make_csr(cn="m.example.net")))
    assert later.approve([1])[0].certificate is not None
    data = (home / ISSUING_KEY).read_bytes()
    assert data.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert _openssl_opens(home / ISSUING_KEY, passfile).returncode == 0
    assert any(r.action == "rekey-file" for r in later.audit_records())
    assert later.verify_audit() == []


def test_rekey_file_migrates_a_legacy_home_and_can_change_the_passphrase(tmp_path, passfile):
    home = tmp_path / "home"
    ca = CertificateAuthority(home, passphrase=PASS)
    ca.init(CA_NAMES)
    for rel in (ISSUING_KEY, ROOT_KEY):
        (home / rel).write_bytes(_legacy_envelope(ca.signing_key(rel), PASS))
    result = run_cli(home, "--passphrase-file", str(passfile), "rekey-file")
    assert result.returncode == 0, result.stderr
    for rel in (ISSUING_KEY, ROOT_KEY):
        assert _openssl_opens(home / rel, passfile).returncode == 0
    new = tmp_path / "new"
    new.write_bytes(b"a brand new passphrase\n")
    short = tmp_path / "short"
    short.write_bytes(b"short\n")
    assert_refused(run_cli(home, "--passphrase-file", str(passfile), "rekey-file", "--new-passphrase-file", str(short)),
                   2, "at least 8 characters")  # fmt: skip
    assert (
        run_cli(home, "--passphrase-file", str(passfile), "rekey-file", "--new-passphrase-file", str(new)).returncode
        == 0
    )
    assert _openssl_opens(home / ROOT_KEY, new).returncode == 0
    assert _openssl_opens(home / ROOT_KEY, passfile).returncode != 0


def test_a_passphrase_under_8_characters_is_refused_by_init(tmp_path):
    short = tmp_path / "short"
    short.write_bytes(b"seven77\n")
    home = tmp_path / "home"
    assert_refused(
        run_cli(home, "--passphrase-file", str(short), "init", "--cn", "Short CA"), 2, "at least 8 characters"
    )
    assert not (home / ISSUING_KEY).exists()
    with pytest.raises(InputError, match="at least 8"):
        CertificateAuthority(tmp_path / "h2", passphrase=b"1234567").init(CA_NAMES)


_PROBE = r"""
import ctypes, ctypes.util, resource, sys
from tui_ca.engine import CertificateAuthority
libc = ctypes.CDLL(ctypes.util.find_library("c"))
soft, hard = resource.getrlimit(resource.RLIMIT_CORE)
resource.setrlimit(resource.RLIMIT_CORE, (hard, hard))  # as generous as this machine allows
before = libc.prctl(3, 0, 0, 0, 0)  # PR_GET_DUMPABLE
CertificateAuthority(sys.argv[1], passphrase=sys.argv[2].encode()).unlock()
print(before, libc.prctl(3, 0, 0, 0, 0), resource.getrlimit(resource.RLIMIT_CORE)[0])
"""


def test_a_process_holding_the_unlocked_key_cannot_dump_core(tmp_path):
    home = tmp_path / "home"
    CertificateAuthority(home, passphrase=PASS).init(CA_NAMES)
    done = subprocess.run([sys.executable, "-c", _PROBE, str(home), PASS.decode()], capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "0", "0"]


def test_est_users_use_the_ca_key_scrypt_strength_and_private_files(tmp_path):
    users = tmp_path / "users"
    set_user(users, "phone-1", "a long password")
    assert users.read_text().split(":", 1)[1].startswith("scrypt$131072$8$1$")
    users.chmod(0o640)
    with pytest.raises(InputError, match="group or others"):
        load_users(users)
    users.chmod(0o600)
    assert list(load_users(users)) == ["phone-1"]


def test_the_users_file_is_never_written_through_a_planted_symlink(tmp_path):
    users = tmp_path / "users"
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    (tmp_path / "users.tmp").symlink_to(victim)
    set_user(users, "phone-2", "another long password")
    assert victim.read_text() == "precious\n"
    assert "phone-2:" in users.read_text() and not users.is_symlink()


def test_folders_made_by_init_are_0700_whatever_the_umask(tmp_path):
    home = tmp_path / "a" / "b" / "home"
    old = os.umask(0o002)
    try:
        CertificateAuthority(home).init(CA_NAMES)
    finally:
        os.umask(old)
    made = [tmp_path / "a", tmp_path / "a" / "b", home, home / "ca", home / "crl", home / "db"]
    assert {str(p): oct(stat.S_IMODE(p.stat().st_mode)) for p in made} == {str(p): "0o700" for p in made}
