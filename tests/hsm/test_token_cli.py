"""The token through the real ``tui-ca`` command: init, the PIN, a token that goes away, key-to-token.

Every refusal is one line on stderr with a non-zero exit, and the home is
byte-for-byte what it was (helpers.snapshot_home).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from helpers import CA_NAMES, assert_refused, csr_pem, make_csr, run_cli, snapshot_home

from tests.hsm.softhsm import USER_PIN, SoftToken
from tui_ca.engine import CertificateAuthority, RevocationReason
from tui_ca.engine.errors import TokenError
from tui_ca.engine.home import ISSUING_KEY, ROOT_KEY
from tui_ca.engine.token_keys import TokenConfig, TokenSession

_SPKI = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _token_args(soft: SoftToken) -> list[str]:
    return ["--pkcs11", soft.module, "--token", soft.label]


def _init(home: Path, soft: SoftToken, *extra: str) -> subprocess.CompletedProcess:
    return run_cli(home, "init", "--cn", "Token CA", "--org", "Example Networks", *_token_args(soft),
                   "--pin-file", str(soft.pin_file), *extra)  # fmt: skip


def _submit(home: Path, tmp_path: Path, n: int) -> None:
    csr = tmp_path / f"r{n}.csr"
    csr.write_bytes(csr_pem(make_csr("ec-p256", cn=f"host-{n}.example.net", sans=[f"DNS:host-{n}.example.net"])))
    run_cli(home, "submit", str(csr), check=True)


def _pin(home: Path, soft: SoftToken) -> list[str]:
    return ["--passphrase-file", str(soft.pin_file)]


def _labels_in_token(soft: SoftToken) -> set[str]:
    from pkcs11.constants import Attribute

    session = TokenSession(TokenConfig(soft.module, soft.label), USER_PIN)
    try:
        with session.calls() as raw:
            return {obj[Attribute.LABEL] for obj in raw.get_objects()}
    finally:
        session.close()


def test_init_through_the_cli_keeps_the_keys_in_the_token_and_the_pin_file_unlocks_them(tmp_path, soft):
    home = tmp_path / "home"
    result = _init(home, soft)
    assert result.returncode == 0, result.stderr
    assert not (home / ISSUING_KEY).exists() and not (home / ROOT_KEY).exists()
    assert not [p for p in home.rglob("*") if p.is_file() and b"PRIVATE KEY" in p.read_bytes()]
    _submit(home, tmp_path, 1)
    approved = run_cli(home, *_pin(home, soft), "approve", "1")
    assert approved.returncode == 0, approved.stderr
    cert = x509.load_pem_x509_certificate(run_cli(home, "export", "1", check=True).stdout)
    issuing = x509.load_pem_x509_certificate(run_cli(home, "ca-cert", check=True).stdout)
    cert.verify_directly_issued_by(issuing)
    audit = run_cli(home, "audit", "--json", check=True).stdout.decode()
    assert '"token": "tui-ca-test"' in audit
    # The key files' command has nothing to do here, and says so.
    assert_refused(run_cli(home, *_pin(home, soft), "rekey-file"), 1, "no key files")


def test_wrong_pin_is_refused_in_one_line_and_the_right_one_then_works(tmp_path, soft):
    home = tmp_path / "home"
    assert _init(home, soft).returncode == 0
    _submit(home, tmp_path, 1)
    wrong = tmp_path / "wrong-pin"
    wrong.write_text("000000\n")
    before = snapshot_home(home)
    assert_refused(run_cli(home, "--passphrase-file", str(wrong), "approve", "1"), 1, "PIN", "wrong")
    assert snapshot_home(home) == before
    # Not a terminal and no file: refused, not a hang.
    assert_refused(run_cli(home, "approve", "1", input=b""), 1, "PIN")
    assert snapshot_home(home) == before
    done = run_cli(home, *_pin(home, soft), "approve", "1")
    assert done.returncode == 0, done.stderr


def test_a_token_gone_refuses_every_signing_command_and_changes_nothing(tmp_path, soft):
    home = tmp_path / "home"
    assert _init(home, soft, "--base-url", "http://127.0.0.1:8080").returncode == 0
    _submit(home, tmp_path, 1)
    _submit(home, tmp_path, 2)
    assert run_cli(home, *_pin(home, soft), "approve", "1").returncode == 0
    tokens = soft.conf.parent / "tokens"
    tokens.rename(soft.conf.parent / "elsewhere")
    before = snapshot_home(home)
    for command in (["approve", "2"], ["revoke", "1"], ["crl", "--publish"], ["server-setup"],
                    ["revoke-issuing-ca", "--reason", "keyCompromise"]):  # fmt: skip
        assert_refused(run_cli(home, *_pin(home, soft), *command), 1, "token")
        assert snapshot_home(home) == before, command
    (soft.conf.parent / "elsewhere").rename(tokens)
    assert run_cli(home, *_pin(home, soft), "approve", "2").returncode == 0


@pytest.mark.parametrize("how", ["session closed", "token folder moved away"])
def test_a_token_failing_mid_operation_undoes_the_whole_operation(tmp_path, soft, how):
    """The key is unlocked, then the token stops answering before the signature: nothing is stored."""
    home = tmp_path / "home"
    ca = CertificateAuthority(home, pin=USER_PIN.encode())
    ca.init(CA_NAMES, pkcs11=TokenConfig(soft.module, soft.label))
    for n in (1, 2, 3):
        ca.submit(csr_pem(make_csr("ec-p256", cn=f"h{n}.example.net", sans=[f"DNS:h{n}.example.net"])))
    assert ca.approve([1])[0].certificate is not None
    ca.unlock()
    if how == "session closed":
        ca._token.close()
    else:
        (soft.conf.parent / "tokens").rename(soft.conf.parent / "elsewhere")
    before = snapshot_home(home)
    with pytest.raises(TokenError, match="removed or stopped answering"):
        ca.approve([2, 3])
    with pytest.raises(TokenError):
        ca.revoke("1", RevocationReason.KEY_COMPROMISE)
    with pytest.raises(TokenError):
        ca.publish_crl()
    assert snapshot_home(home) == before


def test_init_refusals_leave_no_ca_and_no_keys_in_the_token(tmp_path, soft):
    home = tmp_path / "home"
    assert_refused(run_cli(home, "init", "--cn", "X", "--pkcs11", soft.module), 2, "--token")
    assert_refused(run_cli(home, "init", "--cn", "X", "--token", soft.label), 2, "--pkcs11")
    assert_refused(run_cli(home, "init", "--cn", "X", "--pkcs11", str(tmp_path / "no.so"), "--token", "t",
                           "--pin-file", str(soft.pin_file)), 2, "PKCS#11 module")  # fmt: skip
    assert_refused(run_cli(home, "init", "--cn", "X", "--pkcs11", soft.module, "--token", "no-such-token",
                           "--pin-file", str(soft.pin_file)), 1, "no-such-token")  # fmt: skip
    wrong = tmp_path / "wrong-pin"
    wrong.write_text("000000\n")
    assert_refused(run_cli(home, "init", "--cn", "X", *_token_args(soft), "--pin-file", str(wrong)), 1, "wrong")
    assert_refused(run_cli(home, "init", "--cn", "X", *_token_args(soft), "--pkcs11-key", "nope", "nope2",
                           "--pin-file", str(soft.pin_file)), 1, "nope")  # fmt: skip
    assert not (home / "ca").exists()
    # Keys generated and then refused (a leftover in the home) are destroyed again.
    (home / "ca").mkdir(parents=True)
    (home / "ca" / "root.crt.pem").write_bytes(b"left over\n")
    assert_refused(_init(home, soft), 1, "refusing to overwrite")
    assert _labels_in_token(soft) == set()
    (home / "ca" / "root.crt.pem").unlink()
    assert _init(home, soft).returncode == 0
    assert _labels_in_token(soft) == {"tui-ca-root", "tui-ca-issuing"}
    # A second CA cannot take the same token's keys by generating over them.
    assert_refused(_init(tmp_path / "other", soft), 2, "already holds")


def _file_home(home: Path, tmp_path: Path) -> Path:
    passphrase = tmp_path / "passphrase"
    passphrase.write_text("correct horse battery\n")
    run_cli(home, "--passphrase-file", str(passphrase), "init", "--cn", "File CA", "--org", "Example Networks",
            "--base-url", "http://127.0.0.1:8080", check=True)  # fmt: skip
    _submit(home, tmp_path, 1)
    run_cli(home, "--passphrase-file", str(passphrase), "approve", "1", check=True)
    return passphrase


def test_key_to_token_moves_a_file_key_home_and_it_keeps_issuing(tmp_path, soft):
    home = tmp_path / "home"
    passphrase = _file_home(home, tmp_path)
    spkis = {rel: serialization.load_pem_private_key((home / rel).read_bytes(), b"correct horse battery")
             .public_key().public_bytes(*_SPKI) for rel in (ROOT_KEY, ISSUING_KEY)}  # fmt: skip
    old_issuing_file = (home / ISSUING_KEY).read_bytes()
    moved = run_cli(home, "--passphrase-file", str(passphrase), "key-to-token", *_token_args(soft),
                    "--pin-file", str(soft.pin_file))  # fmt: skip
    assert moved.returncode == 0, moved.stderr
    assert not (home / ISSUING_KEY).exists() and not (home / ROOT_KEY).exists()
    assert not [p for p in home.rglob("*") if p.is_file() and b"PRIVATE KEY" in p.read_bytes()]
    audit = run_cli(home, "audit", check=True).stdout.decode()
    assert "key-to-token" in audit and "verify" not in audit
    assert run_cli(home, "audit", "--verify").returncode == 0
    # The token holds the same keys: what it signs now chains to the same certificates.
    _submit(home, tmp_path, 2)
    approved = run_cli(home, *_pin(home, soft), "approve", "2")
    assert approved.returncode == 0, approved.stderr
    issuing = x509.load_pem_x509_certificate(run_cli(home, "ca-cert", check=True).stdout)
    assert issuing.public_key().public_bytes(*_SPKI) == spkis[ISSUING_KEY]
    x509.load_pem_x509_certificate(run_cli(home, "export", "2", check=True).stdout).verify_directly_issued_by(issuing)
    assert run_cli(home, *_pin(home, soft), "revoke", "1").returncode == 0
    crl = x509.load_pem_x509_crl(run_cli(home, "crl", check=True).stdout)
    assert crl.is_signature_valid(issuing.public_key())
    session = TokenSession(TokenConfig(soft.module, soft.label), USER_PIN)
    try:
        assert session.key("tui-ca-root").public_key().public_bytes(*_SPKI) == spkis[ROOT_KEY]
    finally:
        session.close()
    # A run interrupted after its commit leaves a key file behind: the next run removes it.
    (home / ISSUING_KEY).write_bytes(old_issuing_file)
    (home / ISSUING_KEY).chmod(0o600)
    again = run_cli(home, "key-to-token", *_token_args(soft), "--pin-file", str(soft.pin_file))
    assert again.returncode == 0, again.stderr
    assert not (home / ISSUING_KEY).exists()
    # Done once: a second run refuses.
    assert_refused(run_cli(home, "key-to-token", *_token_args(soft), "--pin-file", str(soft.pin_file)), 1,
                   "already in a PKCS#11 token")  # fmt: skip


def test_key_to_token_refuses_a_token_holding_those_labels_and_a_wrong_pin(tmp_path, soft):
    home = tmp_path / "home"
    passphrase = _file_home(home, tmp_path)
    wrong = tmp_path / "wrong-pin"
    wrong.write_text("000000\n")
    before = snapshot_home(home)
    assert_refused(run_cli(home, "--passphrase-file", str(passphrase), "key-to-token", *_token_args(soft),
                           "--pin-file", str(wrong)), 1, "wrong")  # fmt: skip
    assert snapshot_home(home) == before
    # A wrong passphrase for the key files: refused before the token is touched.
    assert_refused(run_cli(home, "--passphrase-file", str(wrong), "key-to-token", *_token_args(soft),
                           "--pin-file", str(soft.pin_file)), 1)  # fmt: skip
    assert snapshot_home(home) == before
    session = TokenSession(TokenConfig(soft.module, soft.label), USER_PIN)
    try:
        session.generate("ec-p256", "tui-ca-issuing")
    finally:
        session.close()
    assert_refused(run_cli(home, "--passphrase-file", str(passphrase), "key-to-token", *_token_args(soft),
                           "--pin-file", str(soft.pin_file)), 1, "already holds tui-ca-issuing")  # fmt: skip
    assert snapshot_home(home) == before
    assert _labels_in_token(soft) == {"tui-ca-issuing"}
    assert shutil.which("softhsm2-util") is not None
